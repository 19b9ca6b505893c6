"""A room's history as a page: the verdict per day, the followed figures over time as plots with
their requirement's bound drawn in, what changed from run to run, and every run with its link.

Sits beside ``fleet.page``: the collector's /rooms/... and /hosts/... pages
(``collector.history``) and ``aggregate --history DIR`` (static files) both lay out the same
:func:`room_page` from a room's runs (``fleet.changes.RoomRun``, oldest first). Decides
nothing: the verdicts are the stored judgements, the bounds the newest run's requirements (in
the organisation's words when ``words`` is given), the changes ``fleet.changes``'.

Every plot has its text alternative: a sentence per series (runs, range, latest, runs beyond
the bound) next to it, and the run table below holds every value.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

from readiness.atomic import write_atomic
from readiness.fleet.changes import (AGENT, VERDICT_RANK, Change, Regression, RoomRun, changes, directions, room_run,
                                     suspected_regressions)
from readiness.fleet.files import iter_result_files
from readiness.i18n.format import detail_key, format_bound, number, unit_text, when, word
from readiness.judge.diagnose import check_title
from readiness.judge.requirements import Requirement
from readiness.judge.verdicts import FAIL, READY
from readiness.measure.inventory import CLIENTS
from readiness.plugins import described
from readiness.render.plots import Bound, Series, bound_style, legend_style, line_svg
from readiness.render.report import environment, template_words
from readiness.result import ResultError, read_result

DAY_CLASS = {"PASS": "PASS", "WARN": "WARN", "PARTIAL": "PARTIAL", "FAIL": "FAIL", "UNKNOWN": "UNKNOWN"}


def room_path(site: str, room: str, hostname: str) -> str:
    """The page's path on the collector: /rooms/<site>/<room> for a labelled room, else
    /hosts/<hostname>; each part escaped whole (a "/" in a name stays inside its part)."""
    if room:
        return f"/rooms/{quote(site, safe='')}/{quote(room, safe='')}"
    return f"/hosts/{quote(hostname, safe='')}"


def room_file(site: str, room: str, hostname: str) -> str:
    """The page's file name in ``aggregate --history DIR``: readable, safe on every file system,
    and distinct per room (the escaped name, with "%" itself escaped)."""
    name = f"room-{quote(site, safe='')}--{quote(room, safe='')}" if room else f"host-{quote(hostname, safe='')}"
    return name.replace("%", "_")[:200] + ".html"


@dataclass
class Plot:
    id: str
    title: str
    svg: str
    summaries: list[str]  # the text alternative: a sentence per series and per bound
    legend: list[tuple[str, str]]  # (CSS of the mark, label)


def _requirements(runs: list[RoomRun], words: Any) -> list[Requirement]:
    """The newest judged run's requirements on numbers (one per metric and bound), reworded."""
    for run in reversed(runs):
        if run.bounds:
            reqs = []
            for data in run.bounds:
                try:
                    req = Requirement.from_dict(data)
                except TypeError:
                    continue
                if req.service is None and (req.min is not None or req.max is not None):
                    reqs.append(words.reword(req)[0] if words is not None else req)
            return reqs
    return []


@lru_cache(maxsize=8192)
def _number_of(value: float, lang: str) -> str:
    return number(value, lang)


def _num(value: float, lang: str) -> str:
    """``number``, remembered: a run table formats thousands of values, most of them repeated
    once rounded (Babel takes ~50 µs each). Rounded as ``number`` rounds, so the text is the same."""
    if value == 0 or isinstance(value, int):
        return _number_of(value, lang)
    decimals = max(0, 2 - math.floor(math.log10(abs(value)))) if abs(value) < 10 else 1
    return _number_of(round(value, decimals), lang)


def _label(metric: str, reqs: list[Requirement], lang: str) -> str:
    """A figure's name: its requirement's label, else the catalog's word for it, else the
    check's own description of it (words of last resort), else its key."""
    for r in reqs:
        if r.metric == metric and r.text("label", lang):
            return r.text("label", lang).split(" (")[0].strip()
    name = metric.partition(".")[2]
    shown = detail_key(name, lang)
    return described().descriptions.get(metric, shown) if shown == name else shown


def _software(metric: str, reqs: list[Requirement], lang: str) -> str:
    """A version's name: the agent, a meeting client by its product name (the client its check's
    fix updates, as the fleet's action list names it), else the figure's label."""
    if metric == AGENT:
        return word(lang, "history.agent")
    kind, subject = described().fixes.get(metric, ("", ""))
    if kind == "update" and subject in CLIENTS:
        return str(CLIENTS[subject]["title"])
    return _label(metric, reqs, lang)


def _worst(verdicts: Iterable[str | None]) -> str:
    seen = [v for v in verdicts if v]
    return min(seen, key=lambda v: VERDICT_RANK.get(v, 1)) if seen else ""


def _days(runs: list[RoomRun]) -> list[dict[str, Any]]:
    """Each UTC day from the first run to the last: its worst verdict ("" without a run)."""
    if not runs:
        return []
    per: dict[date, list[str | None]] = {}
    for r in runs:
        per.setdefault(r.started.date(), []).append(r.verdict)
    first, last = min(per), max(per)
    out, day = [], first
    while day <= last:
        out.append({"day": day.isoformat(), "verdict": _worst(per.get(day, ()))})
        day += timedelta(days=1)
    return out


def _plots(runs: list[RoomRun], reqs: list[Requirement], lang: str) -> list[Plot]:
    d = described()
    groups: dict[tuple[str, str], list[str]] = {}
    for metric in d.repeatability:
        groups.setdefault((metric.partition(".")[0], d.units.get(metric, "")), []).append(metric)
    plots = []
    for n, ((check, unit), metrics) in enumerate(groups.items()):
        series, sums, legend = [], [], []
        shown_unit = unit_text(unit, lang)
        for metric in metrics:
            points = [(r.started, r.values[metric]) for r in runs if metric in r.values]
            if not points:
                continue
            label = _label(metric, reqs, lang)
            legend.append((legend_style(len(series)), label))
            series.append(Series(label, [p[0] for p in points], [p[1] for p in points]))
            vals = [p[1] for p in points]
            required = [q for q in reqs if q.metric == metric and q.severity == "required"]
            missed = sum(1 for v in vals if any((q.min is not None and v < q.min) or (q.max is not None and v > q.max)
                                                for q in required))
            sums.append(word(lang, "history.plot_summary", label=label, n=len(vals),
                             first=when(points[0][0], lang), last=when(points[-1][0], lang),
                             low=f"{number(min(vals), lang)} {shown_unit}".strip(),
                             high=f"{number(max(vals), lang)} {shown_unit}".strip(),
                             latest=f"{number(vals[-1], lang)} {shown_unit}".strip(), missed=missed))
        if not series:
            continue
        bounds = []
        for q in reqs:
            if q.metric in metrics:
                value = q.min if q.min is not None else q.max
                bounds.append(Bound(float(value), word(lang, "history.bound", label=_label(q.metric, reqs, lang),
                                                            bound=format_bound(q, unit, lang),
                                                            severity=word(lang, f"history.severity_{q.severity}")),
                                    q.severity))
                sums.append(bounds[-1].label)
                legend.append((bound_style(q.severity), bounds[-1].label))
        title = f"{check_title(check, lang)}" + (f" ({shown_unit})" if shown_unit else "")
        plot_id = f"plot-{n}"
        plots.append(Plot(plot_id, title, line_svg(series, bounds, shown_unit, f"{plot_id}-title"), sums, legend))
    return plots


def change_text(c: Change, reqs: list[Requirement], lang: str) -> str:
    """One change in words."""
    if c.kind == "verdict":
        return word(lang, "history.change_verdict", before=word(lang, f"status_{c.before}"), after=word(lang, f"status_{c.after}"))
    if c.kind == "device":
        return word(lang, "history.change_device", check=check_title(c.subject, lang), before=c.before, after=c.after)
    if c.kind == "version":
        return word(lang, "history.change_version", name=_software(c.subject, reqs, lang), before=c.before or "—",
                    after=c.after or "—")
    unit = unit_text(described().units.get(c.subject, ""), lang)
    key = "history.change_worse" if c.worse else "history.change_better" if c.worse is False else "history.change_moved"
    return word(lang, key, name=_label(c.subject, reqs, lang), before=f"{number(c.before, lang)} {unit}".strip(),
                after=f"{number(c.after, lang)} {unit}".strip())


def regression_text(r: Regression, lang: str, reqs: list[Requirement] | None = None) -> str:
    """"speech quality got worse in 12 rooms after Microsoft Teams 24.1; 11 of them changed the same day"."""
    reqs = reqs or []
    what = check_title(r.subject, lang) if r.change_kind == "device" else _software(r.subject, reqs, lang)
    return word(lang, "history.regression", figure=_label(r.figure, reqs, lang), n=len(r.rooms), change=what,
                value=r.after, same=r.same_day, day=r.day, changed=r.changed_rooms)


def room_changes(runs: list[RoomRun], better: Mapping[str, int] | None = None) -> list[Change]:
    """The room's changes with each figure's declared repeatability and the direction
    ``better`` calls better (None: the room's newest requirements')."""
    if better is None:
        better = directions(next((r.bounds for r in reversed(runs) if r.bounds), []))
    return changes(runs, described().repeatability, better)


def room_page(runs: list[RoomRun], site: str, room: str, hostname: str, lang: str,
              link: Callable[[str], str | None], words: Any = None, back: str = "",
              max_changes: int = 200) -> str:
    """The whole page (self-contained HTML, no script). ``link``: a run id's report URL (None:
    no report to link); ``back``: the URL of the page listing the rooms ("" for none)."""
    reqs = _requirements(runs, words)
    days = _days(runs)
    counted = Counter(_group(d["verdict"]) for d in days if d["verdict"])
    found = room_changes(runs)
    shown = [{"when": when(c.when, lang), "text": change_text(c, reqs, lang), "kind": c.kind, "worse": c.worse,
              "run": c.run_id, "link": link(c.run_id)} for c in reversed(found[-max_changes:])]
    followed = [m for m in described().repeatability if any(m in r.values for r in runs)]
    rows = [{"run": r, "when": when(r.started, lang), "link": link(r.run_id),
             "values": [_num(r.values[m], lang) if m in r.values else "" for m in followed]} for r in reversed(runs)]
    name = room or hostname
    title = word(lang, "history.title_room", site=site, room=room) if room else word(lang, "history.title_host", host=hostname)
    return environment().get_template("room.html").render(
        title=title, name=name, site=site, days=days, counted=counted, plots=_plots(runs, reqs, lang),
        changes=shown, hidden_changes=max(0, len(found) - max_changes),
        columns=[_label(m, reqs, lang) + (f" ({u})" if (u := unit_text(described().units.get(m, ''), lang)) else "")
                 for m in followed],
        rows=rows, back=back, days_summary=word(lang, "history.days_summary", days=len(days), runs=len(runs),
                                                ready=counted["ready"], not_ready=counted["not_ready"],
                                                unknown=counted["unknown"], none=sum(1 for d in days if not d["verdict"])),
        **template_words(lang))


def _group(verdict: str) -> str:
    """As ``fleet.model.Run.verdict_group``."""
    return "ready" if verdict in READY else "not_ready" if verdict == FAIL else "unknown"


def index_page(rooms: list[dict[str, Any]], regressions: list[str], lang: str) -> str:
    """The static history's first page: each room (``site``, ``room``, ``hostname``, ``verdict``
    of its newest run, ``runs``, ``file``) and the suspected regressions in words."""
    return environment().get_template("history_index.html").render(
        rooms=rooms, regressions=regressions, **template_words(lang))


def regression_items(regressions: list[Regression], lang: str, reqs: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """The suspected regressions in words, for /fleet's small section."""
    parsed, seen = [], set()
    for data in reqs:  # one per metric is enough to name it (a fleet's rooms hold the same few dozen)
        if data.get("metric") in seen:
            continue
        try:
            parsed.append(Requirement.from_dict(dict(data)))
        except TypeError:
            continue
        seen.add(data.get("metric"))
    return [regression_text(r, lang, parsed) for r in regressions]


# --- aggregate --history DIR: the same pages as static files ----------------------------------

@dataclass
class Room:
    """One room's (or computer's) runs, oldest first, and where each run's own report is."""

    site: str
    room: str
    hostname: str
    runs: list[RoomRun]
    reports: dict[str, str]  # run id -> the report file's path (the .html beside its result)


def rooms_from_files(paths: Iterable[str], on_skip: Callable[[str, str], None]) -> dict[tuple[str, ...], Room]:
    """Every readable result under ``paths``, by room (``fleet.model.Run.key``'s rule: the room
    label when set, else the computer; a browser self-test apart), oldest run first. Files that
    are not results are passed to ``on_skip`` (path, reason), as ``aggregate`` lists them."""
    followed = tuple(described().repeatability)
    rooms: dict[tuple[str, ...], Room] = {}
    seen: set[str] = set()
    for path in iter_result_files(paths, on_skip, lambda: None):
        try:
            result = read_result(path)
        except ResultError as exc:
            on_skip(path, str(exc))
            continue
        if result.run_id in seen:  # the same run copied twice
            continue
        seen.add(result.run_id)
        run = room_run(result.run_id, result.to_dict(), followed)
        browser = (result.host or {}).get("measured_by") == "browser"
        key = (("browser room" if browser else "room", run.site, run.room) if run.room else
               ("browser" if browser else "host", run.hostname or run.run_id))
        room = rooms.setdefault(key, Room(run.site, run.room, run.hostname or run.run_id[:8], [], {}))
        room.runs.append(run)
        report = os.path.splitext(path)[0] + ".html"
        if os.path.isfile(report):
            room.reports[run.run_id] = report
    for room in rooms.values():
        room.runs.sort(key=lambda r: (r.started, r.run_id))
    return rooms


def write_history(rooms: Mapping[tuple[str, ...], Room], out_dir: str | os.PathLike[str], lang: str,
                  min_rooms: int = 3) -> list[Path]:
    """One page per room and an index (``index.html``) into ``out_dir``, each written whole or
    not at all (``atomic.write_atomic``); a run links its own report file when there is one
    (relative, so the folder can move with the share). Returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, index = [], []
    files = page_files(rooms)
    for key, room in sorted(rooms.items(), key=lambda kv: (kv[1].site.casefold(), kv[1].room.casefold(), kv[1].hostname)):
        file = files[key]

        def link(run_id: str, reports: dict[str, str] = room.reports) -> str | None:
            target = reports.get(run_id)
            if target is None:
                return None
            try:
                return quote(Path(os.path.relpath(os.path.abspath(target), out.resolve())).as_posix())
            except ValueError:  # another drive (Windows): no relative path
                return Path(os.path.abspath(target)).as_uri()

        page = room_page(room.runs, room.site, room.room, room.hostname, lang, link, back="index.html")
        write_atomic(out / file, page)
        written.append(out / file)
        latest = room.runs[-1] if room.runs else None
        index.append({"site": room.site, "room": room.room, "hostname": room.hostname, "runs": len(room.runs),
                      "verdict": latest.verdict if latest else "", "file": quote(file)})
    page = index_page(index, fleet_regressions(rooms, lang, min_rooms), lang)
    write_atomic(out / "index.html", page)
    written.append(out / "index.html")
    return written


def page_files(rooms: Mapping[tuple[str, ...], Room]) -> dict[tuple[str, ...], str]:
    """Each room's page file name in the history folder (``room_file``; two names that escape
    alike get a number), in a stable order: the fleet report links the same names."""
    names: set[str] = set()
    out = {}
    for key in sorted(rooms):
        room = rooms[key]
        file = room_file(room.site, room.room, room.hostname if not key[0].startswith("browser") else "browser-" + room.hostname)
        while file in names:
            file = file[:-5] + "-" + str(len(names)) + ".html"
        names.add(file)
        out[key] = file
    return out


def rooms_regressions(rooms: Mapping[tuple[str, ...], Room], min_rooms: int = 3) -> list[Regression]:
    """The suspected regressions among ``rooms`` (``fleet.changes.suspected_regressions``)."""
    found = {}
    for room in rooms.values():
        changed = [c for c in room_changes(room.runs) if c.kind in ("version", "device", "figure")]
        if changed:
            found[" / ".join(x for x in (room.site, room.room) if x) if room.room else room.hostname] = changed
    return suspected_regressions(found, min_rooms)


def fleet_regressions(rooms: Mapping[tuple[str, ...], Room], lang: str, min_rooms: int = 3) -> list[str]:
    """The suspected regressions among ``rooms`` in words, each figure named as the rooms'
    newest requirements name it (the fleet report's section and the index's)."""
    named_by = [b for room in rooms.values() for b in (room.runs[-1].bounds if room.runs else ())]
    return regression_items(rooms_regressions(rooms, min_rooms), lang, named_by)
