"""The fleet report and the fleet CSV: laying out what ``fleet.figures`` computed. Decides nothing.

Sits at the end of ``aggregate``: collect (``fleet.collect``) → figures (``fleet.figures``) →
render (here). The HTML is self-contained and bounded in size whatever the number of hosts
(rows and rooms per site capped, histograms binned); the CSV holds every row. Both are text
returned to ``render.writers``, which writes through the one atomic writer.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from readiness.fleet.model import STATUS_RANK, Fleet, Run
from readiness.fleet.step5 import csv_rows
from readiness.i18n.format import age, format_bound, languages, span
from readiness.judge.requirements import Requirement
from readiness.render.charts import histogram_svg, sparkline_svg, trend_svg
from readiness.render.report import environment, template_words
from readiness.render.writers import Writer
from readiness.textsafe import CSV_QUOTING, csv_cell as _csv_cell
_BOOL_TEXT = {True: "true", False: "false"}


def _bound_text(req: Requirement) -> str:
    if req.expect is not None:  # the metric's own value, as the CSV's metric columns hold it
        return "= yes" if req.expect else "= no"
    return format_bound(req, None, "en").replace("\u00a0", " ")


def report_link(run: Run, out_dir: Path) -> str | None:
    """Relative URL of the host's own report when its .html sits beside the .json."""
    html = Path(run.path).with_suffix(".html")
    if not html.is_file():
        return None
    try:
        rel = os.path.relpath(html.resolve(), out_dir.resolve())
    except ValueError:  # another drive on Windows: no relative path exists
        return html.resolve().as_uri()
    return quote(Path(rel).as_posix())


def fleet_csv(fleet: Fleet) -> bytes:
    """One row per host or room (or run): labels, verdict, which checks counted and where they
    came from, one column per metric and per requirement. UTF-8 with a BOM, as spreadsheets
    on Windows need to read it as UTF-8."""
    metric_names = sorted({m for r in fleet.runs for m in r.values})
    req_cols = [(i, f"verdict {req.metric} {_bound_text(req)} ({req.severity})") for i, req in enumerate(fleet.requirements)]
    header = ["site", "room", "label", "hostname", "started_utc", "run_id", "profile", "overall", "verdict", "ready",
              "checks_counted", "checks_missing", "oldest_counted_utc", "hosts",
              "result_file", "report_file", *metric_names, *[name for _, name in req_cols]]
    fh = io.StringIO(newline="")
    _write_rows(fh, header, fleet, metric_names, len(fleet.requirements))
    return ("\ufeff" + fh.getvalue()).encode("utf-8")


def fleet_csv_ahead(fleet: Fleet) -> Callable[[], bytes]:
    """``fleet_csv`` made in a forked process while this one goes on (the figures, the HTML:
    a 10 000-file fleet's CSV is a few tenths of a second of the serial end of ``aggregate``);
    call what it returns for the bytes. The fleet must not change meanwhile. Where fork is
    missing, with one CPU, or when the child fails, the CSV is made here when asked for: the
    same bytes, an error raised here in its usual words."""
    here: Callable[[], bytes] = lambda: fleet_csv(fleet)  # noqa: E731
    if not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2:
        return here
    import multiprocessing  # only here: most commands never start a process

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_csv_child, args=(fleet, send), daemon=True)
    try:
        child.start()
    except OSError:
        receive.close()
        send.close()
        return here
    send.close()

    def made() -> bytes:
        try:  # a child stuck (a lock another thread held at the fork) is given up, not waited for
            data: bytes | None = receive.recv_bytes() if receive.poll(CSV_CHILD_WAIT_S) else None
        except (EOFError, OSError):  # the child failed: make it here
            data = None
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join()
        return here() if data is None else data
    return made


CSV_CHILD_WAIT_S = 120.0  # the forked CSV's longest wait once asked for (10 000 rooms take ~0.4 s)


def _csv_child(fleet: Fleet, send: Any) -> None:
    try:
        send.send_bytes(fleet_csv(fleet))
    except BaseException:  # noqa: BLE001 - said by the parent, which makes it again and raises there
        pass
    finally:
        send.close()


def step5_csv(figs: dict[str, Any]) -> bytes:
    """The step-5 sections and the action list as one long table (``fleet.step5.csv_rows``)."""
    fh = io.StringIO(newline="")
    w = csv.writer(fh, quoting=CSV_QUOTING)
    for row in csv_rows(figs["step5"]):
        w.writerow([_csv_cell(v) for v in row])
    return ("\ufeff" + fh.getvalue()).encode("utf-8")


def _sources_text(r: Run) -> str:
    return " ".join(f"{c}@{h or '?'}/{t.strftime('%Y-%m-%dT%H:%M:%SZ')}" for c, (h, t, _) in sorted(r.sources.items()))


def _write_rows(fh: Any, header: list[str], fleet: Fleet, metric_names: list[str], n_reqs: int) -> None:
    req_index = range(n_reqs)
    w = csv.writer(fh, quoting=CSV_QUOTING)
    w.writerow([_csv_cell(h) for h in header])
    for r in fleet.runs:
        html = os.path.splitext(r.path)[0] + ".html"
        row = [_csv_cell(v) for v in (r.site, r.room, r.label, r.hostname)]
        row += [r.started.strftime("%Y-%m-%dT%H:%M:%SZ"), _csv_cell(r.run_id), _csv_cell(r.profile), r.overall,
                r.shown_verdict, "true" if r.verdict_group == "ready" else "false",
                " ".join(sorted(r.sources)), " ".join(r.missing),
                r.oldest.strftime("%Y-%m-%dT%H:%M:%SZ") if r.oldest else "", _csv_cell(_sources_text(r)),
                _csv_cell(r.path), _csv_cell(html) if os.path.isfile(html) else ""]
        values, statuses = r.values, r.statuses
        # metric values are numbers, yes/no or versions (see _metric_values); a version is text
        row += [_BOOL_TEXT[v] if type(v) is bool else ("" if v is None else _csv_cell(v) if type(v) is str else v)
                for v in map(values.get, metric_names)]
        row += [statuses.get(i, "") for i in req_index]
        w.writerow(row)


def _site_rows(sites: list[dict[str, Any]], rooms_per_site: int) -> list[dict[str, Any]]:
    """Per site: workstations first, then the rooms most in need (all rooms are in the JSON)."""
    out = []
    for s in sites:
        desks = [r for r in s["rooms"] if not r["room"]]
        rooms = sorted((r for r in s["rooms"] if r["room"]), key=lambda r: (-(r["not_ready"] + r["unknown"]), r["room"].casefold()))
        shown, hidden = rooms[:rooms_per_site], rooms[rooms_per_site:]
        out.append({**s, "shown": desks + shown, "hidden_rooms": len(hidden),
                    "hidden_ready": sum(1 for r in hidden if r["ready"] == r["total"])})
    return out


def render_html(fleet: Fleet, figs: dict[str, Any], out_path: str | os.PathLike[str], lang: str = "en",
                max_rows: int = 500, rooms_per_site: int = 12, link: Callable[[Run], str | None] | None = None,
                room_link: Callable[[Run], str | None] | None = None, regressions: list[str] | None = None) -> str:
    """The fleet report: self-contained HTML, bounded in size whatever the number of hosts.

    ``link`` gives a row's report URL (the collector links /runs/ID); by default the report
    file beside the result file, relative to ``out_path``. ``room_link``: a row's room history
    URL (None: no link); ``regressions``: the suspected regressions in words
    (``fleet.history.regression_items``), listed in a section of their own."""
    if lang not in languages():
        lang = "en"
    now = datetime.now(timezone.utc)
    out_dir = Path(out_path).resolve().parent
    reqs = fleet.requirements
    rows = []
    for r in fleet.runs[:max_rows]:
        failing = sorted(((i, s) for i, s in r.statuses.items() if s != "PASS"), key=lambda x: STATUS_RANK[x[1]])
        rows.append({"run": r, "link": link(r) if link is not None else report_link(r, out_dir),
                     "history": room_link(r) if room_link is not None else None,
                     "age": age((now - r.oldest).total_seconds(), lang) if r.oldest else "",
                     "sources": _sources_by_host(r),
                     "failing": [(s, reqs[i].text("label", lang) or reqs[i].metric) for i, s in failing[:4]],
                     "more": max(0, len(failing) - 4)})
    template = environment().get_template("fleet.html")
    return template.render(f=figs, fleet=fleet, rows=rows, sites=_site_rows(figs["sites"], rooms_per_site), hidden_rows=max(0, len(fleet.runs) - max_rows),
                           charts=[c for h in figs["histograms"] if (c := histogram_svg(h, lang=lang)) is not None],
                           trend_chart=trend_svg(figs["trend"], lang=lang), **template_words(lang),
                           spark=sparkline_svg,
                           not_reporting_after=span(fleet.not_reporting_after, lang) if fleet.not_reporting_after else "",
                           skipped=figs["skipped"][:max_rows], hidden_skipped=max(0, len(fleet.skipped) - max_rows),
                           regressions=regressions or [])




def _sources_by_host(r: Run) -> list[tuple[str, list[str]]]:
    """Which checks' figures came from which computer, when more than one computer is behind a row."""
    by_host: dict[str, list[str]] = {}
    for check, (host, _, _) in sorted(r.sources.items()):
        by_host.setdefault(host, []).append(check)
    return sorted(by_host.items()) if len(by_host) > 1 else []


# --- the fleet's writers (``readiness.render.writers``' registry shape) ----------------------


@dataclass(frozen=True)
class FleetDocument:
    fleet: Fleet
    figures: dict[str, Any]
    lang: str = "en"
    out_path: Path = Path("fleet.html")  # links to the hosts' own reports are relative to it
    max_rows: int = 500
    regressions: list[str] = field(default_factory=list)  # suspected regressions in words (``--history``)
    room_link: Callable[[Run], str | None] | None = None  # a row's room history page (``--history``)
    csv_made: Callable[[], bytes] | None = None  # the CSV being made already (``fleet_csv_ahead``)


def _fleet_json(doc: FleetDocument) -> str:
    # one line: json's C encoder does not indent, and a fleet's figures are megabytes (20 MB for
    # 10 000 rooms: 0.17 s this way, 0.58 s indented); `python -m json.tool` shows it indented
    return json.dumps(doc.figures, ensure_ascii=False) + "\n"


FLEET_WRITERS: dict[str, Writer] = {
    "html": Writer("html", ".html", lambda d: render_html(d.fleet, d.figures, d.out_path, d.lang, d.max_rows,
                                                          room_link=d.room_link, regressions=d.regressions)),
    "csv": Writer("csv", ".csv", lambda d: d.csv_made() if d.csv_made is not None else fleet_csv(d.fleet)),
    "sections_csv": Writer("sections_csv", ".csv", lambda d: step5_csv(d.figures)),
    "json": Writer("json", ".json", _fleet_json),
}
