"""The fleet: many results, one picture (``readiness aggregate``).

Sits beside the workstation report at the end of the pipeline: it reads result files
(``result.read_result``), takes each one's judgement (the one stored when it ran, or a new one
from ``judge.judge`` against a profile the user names), keeps the latest run per host — or per
room when a room label is set — and lays out counts, failing requirements, metric
distributions and a trend. It never decides anything itself; the judge does.

Bad input loses nothing and stops nothing: every file that cannot be used is listed with a
plain reason, and only regular files are ever opened (a FIFO or a device on a share would
block or never end).

Memory grows with the number of hosts kept, not with the number of files: a superseded run is
dropped as soon as a later one for the same host is read; per file only its path and run id
stay (for finding duplicate copies), and per day one count (for the trend).

Speed: parsing JSON is most of the time. With many files, worker processes read and parse
them; each distinct requirement is built once, not once per file; the HTML is bounded (host
table and rooms per site capped, histograms binned) while the CSV and JSON hold everything.
``bench/fleet.py`` measures it on 10 000 generated results.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import repeat
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

from .judge import FAIL, PASS, UNKNOWN, WARN, Judgement, judge
from .requirements import Profile, Requirement
from .atomic import write_atomic
from .result import ResultError, parse_utc, read_result, utc_now
from .textsafe import CSV_QUOTING, csv_cell as _csv_cell
from .session import format_bound

FLEET_KIND = "readiness-fleet"
FLEET_SCHEMA_VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any result (a snapshot is ~100 kB); guards memory
STATUSES = (PASS, WARN, FAIL, UNKNOWN)
_STATUS_RANK = {FAIL: 0, UNKNOWN: 1, WARN: 2, PASS: 3}
_CANONICAL = {s: s for s in STATUSES}
# Distributions of these come first, in this order; any other metric a requirement names follows.
KEY_METRICS = ["bandwidth.upload_mbps", "bandwidth.download_mbps", "latency.rtt_median_ms", "latency.jitter_ms",
               "latency.loss_pct", "camera.height_px", "camera.fps"]


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Run:
    """What the fleet keeps of one run: labels, verdicts and metric values, nothing else."""

    path: str
    run_id: str
    started: datetime
    hostname: str
    site: str
    room: str
    label: str
    profile: str
    overall: str
    statuses: dict[Any, str]  # requirement index (Fleet.requirements) -> verdict; key while being read
    values: dict[str, Any]  # "check.metric" -> number or bool

    @property
    def key(self) -> tuple[str, ...]:
        """Latest run per room when a room label is set, else per host."""
        if self.room:
            return ("room", self.site, self.room)
        return ("host", self.hostname or self.run_id)

    @property
    def verdict_group(self) -> str:
        return "ready" if self.overall in (PASS, WARN) else "not_ready" if self.overall == FAIL else "unknown"


def requirement_key(req: Requirement) -> tuple[Any, ...]:
    """Two requirements are the same when metric, bound and severity are (texts may differ)."""
    return (req.metric, req.severity, req.min, req.max, req.expect)


@dataclass
class Fleet:
    """Everything ``collect`` found: kept runs, the requirements they were judged by, skips."""

    runs: list[Run]
    requirements: list[Requirement]
    requirement_profiles: list[set[str]]
    units: dict[str, str]
    skipped: list[Skipped]
    results_read: int
    duplicates: int
    superseded: int
    other_files: int
    per_day: dict[date, Counter]
    all_runs: bool
    rejudged_by: dict[str, Any] | None
    paths: list[str] = field(default_factory=list)


# --- finding files ----------------------------------------------------------------------------


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def iter_result_files(paths: Iterable[str | os.PathLike[str]], skip: Callable[[str, str], None],
                      other: Callable[[], None]) -> Iterator[str]:
    """Regular files to read: each file given, and every ``*.json`` under each folder given.

    Folders are walked without following links to folders (no loops on a share). Anything
    that is not a regular file (pipe, device, socket, broken link) is skipped, never opened.
    """
    for p in paths:
        p = os.fspath(p)
        try:
            st = os.stat(p)
        except OSError as exc:
            skip(p, f"cannot read it ({_why(exc)})")
            continue
        if stat.S_ISDIR(st.st_mode):
            found = yield from _walk(p, skip, other)
            if not found:
                skip(p, "this folder holds no result files (*.json)")
        elif stat.S_ISREG(st.st_mode):
            if st.st_size > MAX_FILE_BYTES:
                skip(p, f"too large to be a result ({st.st_size // 1048576} MB)")
            else:
                yield p
        else:
            skip(p, "not a regular file (a pipe, device or socket); not opened")


def _walk(top: str, skip: Callable[[str, str], None], other: Callable[[], None]) -> Iterator[str]:
    found = 0
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skip(folder, f"cannot list this folder ({_why(exc)})")
            continue
        if not entries and folder != top:
            skip(folder, "empty folder")
        subfolders = []
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    subfolders.append(e.path)
                    continue
            except OSError as exc:
                skip(e.path, f"cannot read it ({_why(exc)})")
                continue
            if not e.name.lower().endswith(".json"):
                other()
                continue
            try:
                st = e.stat()  # follows a link to its target
            except OSError as exc:
                broken = e.is_symlink()
                skip(e.path, "a link to nothing (broken link)" if broken else f"cannot read it ({_why(exc)})")
                continue
            if stat.S_ISDIR(st.st_mode):
                skip(e.path, "a link to a folder; links to folders are not followed")
            elif not stat.S_ISREG(st.st_mode):
                skip(e.path, "not a regular file (a pipe, device or socket); not opened")
            elif st.st_size > MAX_FILE_BYTES:
                skip(e.path, f"too large to be a result ({st.st_size // 1048576} MB)")
            else:
                found += 1
                yield e.path
        stack.extend(reversed(subfolders))
    return found


# --- reading and judging ----------------------------------------------------------------------


class _Registry:
    """The distinct requirements met in the fleet, each with the profiles that hold it."""

    def __init__(self) -> None:
        self.index: dict[tuple[Any, ...], int] = {}
        self.requirements: list[Requirement] = []
        self.profiles: list[set[str]] = []

    def learn(self, key: tuple[Any, ...], req: Requirement) -> None:
        if key not in self.index:
            self.index[key] = len(self.requirements)
            self.requirements.append(req)
            self.profiles.append(set())

    def use(self, key: tuple[Any, ...], profile: str) -> int:
        i = self.index[key]
        if profile:
            self.profiles[i].add(profile)
        return i


def _metric_values(result: Any, units: dict[str, str]) -> dict[str, Any]:
    """Every number or yes/no a run measured, as "check.metric" -> value (the CSV's columns)."""
    values: dict[str, Any] = {}
    for cname, record in result.checks.items():
        metrics = record.metrics
        if type(metrics) is not dict:
            continue
        for mname, entry in metrics.items():
            try:
                v = entry.get("value")
            except AttributeError:
                continue
            t = type(v)
            if t is bool or t is int or (t is float and math.isfinite(v)):
                name = f"{cname}.{mname}"
                values[name] = v
                if name not in units:
                    unit = entry.get("unit")
                    if unit:
                        units[name] = str(unit)
    return values


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class _Reader:
    """Reads one file into a Run whose verdicts are keyed by ``requirement_key``.

    Runs here or in a worker process; each Requirement and unit is passed on once per reader,
    not once per file. Returns ("skip", path, reason, was_a_result) or ("run", run, new
    requirements, new units).
    """

    def __init__(self, profile: Profile | None) -> None:
        self.profile = profile
        self.known: set[tuple[Any, ...]] = set()
        self.units: set[str] = set()

    def __call__(self, path: str) -> tuple[Any, ...]:
        try:
            result = read_result(path)
        except ResultError as exc:
            reason = str(exc)
            return ("skip", path, reason[len(path) + 2:] if reason.startswith(path + ": ") else reason, False)
        run_id = result.run_id if isinstance(result.run_id, str) else ""
        if not run_id:
            return ("skip", path, "malformed result (no run_id)", True)
        try:
            started = parse_utc(str(result.started_utc))
            if started.tzinfo is None:
                started = started.replace(tzinfo=timezone.utc)
        except ValueError:
            return ("skip", path, f"malformed result (start time {result.started_utc!r} is not a date and time)", True)
        new: dict[tuple[Any, ...], Requirement] = {}
        try:
            if self.profile is not None:
                overall, name, statuses = self._judged(judge(result, self.profile), new)
            elif isinstance(result.judgement, dict):
                overall, name, statuses = self._stored(result.judgement, new)
            else:
                return ("skip", path, "holds no judgement; give --profile or --requirements to judge it", True)
            for status in (overall, *statuses.values()):
                if status not in STATUSES:
                    raise ValueError(f"unknown verdict {status!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            what = "cannot be judged against the profile" if self.profile is not None else "malformed judgement in the result"
            return ("skip", path, f"{what} ({type(exc).__name__}: {exc})", True)
        self.known.update(new)
        units: dict[str, str] = {}
        values = _metric_values(result, units)
        new_units = {k: v for k, v in units.items() if k not in self.units}
        self.units.update(new_units)
        host = result.host if isinstance(result.host, dict) else {}
        labels = result.labels if isinstance(result.labels, dict) else {}
        run = Run(path=path, run_id=run_id, started=started, hostname=_text(host.get("hostname")),
                  site=_text(labels.get("site")), room=_text(labels.get("room")), label=_text(labels.get("label")),
                  profile=name, overall=overall, statuses=statuses, values=values)
        return ("run", run, new, new_units)

    def _judged(self, j: Judgement, new: dict[tuple[Any, ...], Requirement]) -> tuple[str, str, dict[Any, str]]:
        statuses: dict[Any, str] = {}
        for v in j.items:
            key = requirement_key(v.requirement)
            if key not in self.known:
                new[key] = v.requirement
            statuses[key] = v.status
        return j.overall, _text(j.profile.get("name")), statuses

    def _stored(self, data: dict[str, Any], new: dict[tuple[Any, ...], Requirement]) -> tuple[str, str, dict[Any, str]]:
        """The judgement stored in a result, read from its JSON form as ``Judgement.from_dict``
        reads it, but building each distinct Requirement once, not once per item and file
        (10 000 files x 20 items was half the run time)."""
        prof = data.get("profile")
        name = _text(prof.get("name")) if isinstance(prof, dict) else ""
        statuses: dict[Any, str] = {}
        for item in data.get("items", []):
            req = item["requirement"]
            key = (req["metric"], req["severity"], req.get("min"), req.get("max"), req.get("expect"))
            if key not in self.known and key not in new:
                new[key] = Requirement.from_dict(req)
            statuses[key] = item["status"]
        return data["overall"], name, statuses


_WORKER_READER: _Reader | None = None


def _worker_start(profile: Profile | None) -> None:
    global _WORKER_READER
    _WORKER_READER = _Reader(profile)


def _worker_read(path: str) -> tuple[Any, ...]:
    assert _WORKER_READER is not None
    return _WORKER_READER(path)


def _read_all(files: list[str], profile: Profile | None, workers: int) -> Iterator[tuple[Any, ...]]:
    """Each file's record, in order: in worker processes when there are many files (parsing
    JSON is most of the time, and it is CPU-bound), else here. A worker that dies (out of
    memory, killed) does not hang or lose anything: the files left are read here."""
    done = 0
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # fork starts in milliseconds; where it is unsafe or missing (macOS, Windows), spawn
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                     initializer=_worker_start, initargs=(profile,)) as pool:
                for record in pool.map(_worker_read, files, chunksize=32):
                    done += 1
                    yield record
            return
        except (BrokenProcessPool, OSError):
            pass
    reader = _Reader(profile)
    for path in files[done:]:
        yield reader(path)


def _auto_workers(n_files: int) -> int:
    if n_files < 400:  # starting processes would cost more than it saves
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def collect(paths: Iterable[str | os.PathLike[str]], profile: Profile | None = None, all_runs: bool = False,
            on_skip: Callable[[Skipped], None] | None = None, workers: int | None = None) -> Fleet:
    """Read every result under ``paths``; judge each (again, when ``profile`` is given).

    ``workers``: processes reading files (None: by the number of files and CPUs; 1: here).
    """
    skipped: list[Skipped] = []
    other_files = 0

    def skip(path: str, reason: str) -> None:
        s = Skipped(str(path), reason)
        skipped.append(s)
        if on_skip is not None:
            on_skip(s)

    def count_other() -> None:
        nonlocal other_files
        other_files += 1

    registry = _Registry()
    units: dict[str, str] = {}
    names: dict[str, str] = {}
    seen: set[str] = set()
    kept: dict[tuple[str, ...], Run] = {}
    every: list[Run] = []
    per_day: dict[date, Counter] = {}
    results_read = duplicates = superseded = 0
    path_list = [os.fspath(p) for p in paths]
    files = list(iter_result_files(path_list, skip, count_other))

    for record in _read_all(files, profile, _auto_workers(len(files)) if workers is None else workers):
        if record[0] == "skip":
            _, path, reason, was_result = record
            results_read += was_result
            skip(path, reason)
            continue
        _, run, new_reqs, new_units = record
        results_read += 1
        for key, req in new_reqs.items():
            registry.learn(key, req)
        for k, v in new_units.items():
            units.setdefault(k, v)
        if run.run_id in seen:
            duplicates += 1
            skip(run.path, f"a copy of run {run.run_id} that was already read")
            continue
        seen.add(run.run_id)
        # One string object per metric name and verdict for the whole fleet, not one per run
        # (runs from worker processes arrive with their own copies): a third of a run's memory.
        run.statuses = {registry.use(key, run.profile): _CANONICAL[s] for key, s in run.statuses.items()}
        run.values = {names.setdefault(k, k): v for k, v in run.values.items()}
        run.overall = _CANONICAL[run.overall]
        day = run.started.astimezone(timezone.utc).date()
        per_day.setdefault(day, Counter())[run.overall] += 1
        if all_runs:
            every.append(run)
            continue
        previous = kept.get(run.key)
        if previous is None:
            kept[run.key] = run
        elif (run.started, run.run_id) > (previous.started, previous.run_id):
            kept[run.key] = run
            superseded += 1
        else:
            superseded += 1

    runs = every if all_runs else list(kept.values())
    runs.sort(key=lambda r: (_STATUS_RANK[r.overall], r.site.casefold(), r.room.casefold(), r.hostname.casefold(), r.started))
    return Fleet(runs=runs, requirements=registry.requirements, requirement_profiles=registry.profiles, units=units,
                 skipped=skipped, results_read=results_read, duplicates=duplicates, superseded=superseded,
                 other_files=other_files, per_day=per_day, all_runs=all_runs,
                 rejudged_by=profile.summary() if profile is not None else None, paths=path_list)


# --- figures ------------------------------------------------------------------------------------


def _counts(runs: Iterable[Run]) -> dict[str, int]:
    c = {"total": 0, "ready": 0, "not_ready": 0, "unknown": 0, PASS: 0, WARN: 0, FAIL: 0, UNKNOWN: 0}
    for r in runs:
        c["total"] += 1
        c[r.verdict_group] += 1
        c[r.overall] += 1
    return c


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * 10 ** exp
        if step >= raw:
            return step
    return 10 ** (exp + 1)


def _bounds(req: Requirement) -> list[tuple[str, float]]:
    return [(k, float(getattr(req, k))) for k in ("min", "max") if getattr(req, k) is not None]


def _plain_label(label: str) -> str:
    """"Memory (8 GB)" -> "Memory": the metric's name, whatever bound each requirement sets."""
    return label.split(" (")[0].strip() or label


def histogram(values: list[float], bounds: list[float], bins: int = 20) -> dict[str, Any] | None:
    """Bin ``values``; the range covers the bounds and all values up to the 99th percentile
    (the few above fall into the last bin, counted as ``above``). Widely spread positive
    values (bandwidth: 0.5 to 900 Mbit/s) get logarithmic bins, so that a bound of 1.2 is not
    lost in the first bar; ``edges`` are the bins' limits either way."""
    if not values:
        return None
    vals = sorted(values)
    n = len(vals)
    top = vals[min(n - 1, int(math.ceil(0.99 * (n - 1))))] if n >= 100 else vals[-1]
    median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    lo = min([vals[0], *bounds])
    hi = max([top, *bounds])
    positive = [v for v in (*vals[: max(1, n // 100)], *bounds) if v > 0]
    scale = "linear"
    squeezed = median - lo < (hi - lo) / 8  # half the values in the first eighth of a linear axis
    if vals[0] >= 0 and positive and all(b > 0 for b in bounds) and squeezed and hi / max(min(positive), 1e-9) >= 100:
        scale = "log"
        step = _nice_step((math.log10(hi) - math.log10(min(positive))) / bins)
        start = math.floor(math.log10(min(positive)) / step) * step
        count = max(1, int(math.floor((math.log10(hi) - start) / step)) + 1)
        edges = [10 ** (start + i * step) for i in range(count + 1)]
        index = [int((math.log10(v) - start) // step) if v > 0 else 0 for v in vals]
    else:
        if hi - lo <= bins and all(float(v).is_integer() for v in vals):
            step, start = 1.0, math.floor(lo)
            count = int(hi - start) + 1
        else:
            step = _nice_step((hi - lo) / bins if hi > lo else 1.0)
            start = math.floor(lo / step) * step
            count = max(1, int(math.floor((hi - start) / step)) + 1)
        edges = [start + i * step for i in range(count + 1)]
        index = [int((v - start) // step) for v in vals]
    counts = [0] * count
    above = 0
    for i in index:
        if i >= count:
            above += 1
            i = count - 1
        counts[max(0, i)] += 1
    return {"scale": scale, "edges": [round(e, 10) for e in edges], "counts": counts, "above": above, "n": n,
            "median": median, "min": vals[0], "max": vals[-1]}


def _period(span_days: int) -> str:
    return "day" if span_days <= 45 else "week" if span_days <= 400 else "month"


def _period_start(d: date, period: str) -> date:
    if period == "week":
        return d - timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    return d


def trend(per_day: dict[date, Counter]) -> dict[str, Any] | None:
    """Runs per day, week or month by verdict; None unless runs span several days."""
    if len(per_day) < 2:
        return None
    days = sorted(per_day)
    period = _period((days[-1] - days[0]).days)
    buckets: dict[date, Counter] = {}
    for d in days:
        buckets.setdefault(_period_start(d, period), Counter()).update(per_day[d])
    points = []
    for start, c in sorted(buckets.items()):
        total = sum(c.values())
        ready = c[PASS] + c[WARN]
        points.append({"period": start.isoformat(), "runs": total, "ready": ready, "not_ready": c[FAIL],
                       "unknown": c[UNKNOWN], "ready_pct": round(100.0 * ready / total, 1) if total else None})
    return {"period": period, "points": points}


def figures(fleet: Fleet, lang: str = "en") -> dict[str, Any]:
    """The aggregate figures (what ``--json`` writes and the report shows)."""
    from . import __version__

    reqs = fleet.requirements
    per_req = [Counter() for _ in reqs]
    sites: dict[str, dict[str, Any]] = {}
    for r in fleet.runs:
        for i, s in r.statuses.items():
            per_req[i][s] += 1
        site = sites.setdefault(r.site, {"runs": [], "rooms": {}})
        site["runs"].append(r)
        site["rooms"].setdefault(r.room, []).append(r)

    def top_failures(runs: list[Run], limit: int = 3) -> list[str]:
        """What keeps these hosts from being ready most often (FAIL, UNKNOWN), then advice (WARN)."""
        blocking: Counter = Counter()
        advice: Counter = Counter()
        for r in runs:
            for i, s in r.statuses.items():
                if s == FAIL or s == UNKNOWN:
                    blocking[i] += 1
                elif s == WARN:
                    advice[i] += 1
        top = [i for i, _ in blocking.most_common(limit)]
        top += [i for i, _ in advice.most_common(limit) if i not in top][: limit - len(top)]
        return [reqs[i].text("label", lang) or reqs[i].metric for i in top]

    site_rows = []
    for name in sorted(sites, key=lambda s: (s == "", s.casefold())):
        entry = sites[name]
        rooms = [{"room": room, **_counts(runs), "failing": top_failures(runs)}
                 for room, runs in sorted(entry["rooms"].items(), key=lambda kv: (kv[0] == "", kv[0].casefold()))]
        site_rows.append({"site": name, **_counts(entry["runs"]), "rooms": rooms})

    req_rows = []
    for i, req in enumerate(reqs):
        c = per_req[i]
        req_rows.append({
            "metric": req.metric, "severity": req.severity, "min": req.min, "max": req.max, "expect": req.expect,
            "label": req.text("label", lang) or req.metric, "needed": format_bound(req, fleet.units.get(req.metric), lang), "why": req.text("why", lang), "fix": req.text("fix", lang),
            "source": req.source, "unit": fleet.units.get(req.metric), "profiles": sorted(fleet.requirement_profiles[i]),
            "missed": c[FAIL] + c[WARN], FAIL: c[FAIL], WARN: c[WARN], UNKNOWN: c[UNKNOWN], PASS: c[PASS],
            "judged": sum(c.values()),
        })
    order = sorted(range(len(req_rows)), key=lambda i: (-req_rows[i]["missed"], -req_rows[i][UNKNOWN], req_rows[i]["metric"]))
    req_rows = [req_rows[i] for i in order]

    hists = []
    metrics: dict[str, list[Requirement]] = {}
    for req in reqs:
        if req.expect is None:
            metrics.setdefault(req.metric, []).append(req)
    for metric in sorted(metrics, key=lambda m: (KEY_METRICS.index(m) if m in KEY_METRICS else len(KEY_METRICS), m)):
        values = [v for v in map(dict.get, (r.values for r in fleet.runs), repeat(metric)) if v is not None and type(v) is not bool]
        bounds = []
        for req in metrics[metric]:
            for kind, b in _bounds(req):
                entry = {"kind": kind, "value": b, "severity": req.severity}
                if entry not in bounds:
                    bounds.append(entry)
        h = histogram(values, [b["value"] for b in bounds])
        if h is None:
            continue
        label = min(_plain_label(r.text("label", lang) or metric) for r in metrics[metric])
        hists.append({"metric": metric, "label": label, "unit": fleet.units.get(metric),
                      "bounds": bounds, **h})

    return {
        "kind": FLEET_KIND,
        "schema_version": FLEET_SCHEMA_VERSION,
        "tool_version": __version__,
        "generated_utc": utc_now(),
        "mode": "all-runs" if fleet.all_runs else "latest-per-host",
        "judged_by": ({"as": "profile", **fleet.rejudged_by} if fleet.rejudged_by else {"as": "stored"}),
        "inputs": {"paths": fleet.paths, "results_read": fleet.results_read, "used": len(fleet.runs),
                   "superseded": fleet.superseded, "duplicates": fleet.duplicates, "skipped": len(fleet.skipped),
                   "other_files_ignored": fleet.other_files},
        "counts": _counts(fleet.runs),
        "sites": site_rows,
        "requirements": req_rows,
        "histograms": hists,
        "trend": trend(fleet.per_day),
        "skipped": [{"path": s.path, "reason": s.reason} for s in fleet.skipped],
    }


# --- output ---------------------------------------------------------------------------------------


_BOOL_TEXT = {True: "true", False: "false"}


def _bound_text(req: Requirement) -> str:
    text = format_bound(req, None, "en")
    return f"= {text}" if req.expect is not None else text


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


def write_csv(fleet: Fleet, path: str | os.PathLike[str]) -> None:
    """One row per host (or run): labels, overall verdict, one column per metric and per requirement."""
    metric_names = sorted({m for r in fleet.runs for m in r.values})
    req_cols = [(i, f"verdict {req.metric} {_bound_text(req)} ({req.severity})") for i, req in enumerate(fleet.requirements)]
    header = ["site", "room", "label", "hostname", "started_utc", "run_id", "profile", "overall", "ready",
              "result_file", "report_file", *metric_names, *[name for _, name in req_cols]]
    buf = io.StringIO()
    buf.write("\ufeff")  # a BOM, so spreadsheets read UTF-8
    _write_rows(buf, header, fleet, metric_names, len(fleet.requirements))
    write_atomic(Path(path), buf.getvalue())


def _write_rows(fh: Any, header: list[str], fleet: Fleet, metric_names: list[str], n_reqs: int) -> None:
    req_index = range(n_reqs)
    w = csv.writer(fh, quoting=CSV_QUOTING)
    w.writerow([_csv_cell(h) for h in header])
    for r in fleet.runs:
        html = os.path.splitext(r.path)[0] + ".html"
        row = [_csv_cell(v) for v in (r.site, r.room, r.label, r.hostname)]
        row += [r.started.strftime("%Y-%m-%dT%H:%M:%SZ"), _csv_cell(r.run_id), _csv_cell(r.profile), r.overall,
                "true" if r.overall in (PASS, WARN) else "false", _csv_cell(r.path),
                _csv_cell(html) if os.path.isfile(html) else ""]
        values, statuses = r.values, r.statuses
        # metric values are numbers or yes/no only (see _metric_values): no formula can hide there
        row += [_BOOL_TEXT[v] if type(v) is bool else ("" if v is None else v)
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
                max_rows: int = 500, rooms_per_site: int = 12) -> str:
    """The fleet report: self-contained HTML, bounded in size whatever the number of hosts."""
    from .report import LANGS, catalog, environment

    if lang not in LANGS:
        lang = "en"
    out_dir = Path(out_path).resolve().parent
    reqs = fleet.requirements
    rows = []
    for r in fleet.runs[:max_rows]:
        failing = sorted(((i, s) for i, s in r.statuses.items() if s != PASS), key=lambda x: _STATUS_RANK[x[1]])
        rows.append({"run": r, "link": report_link(r, out_dir),
                     "failing": [(s, reqs[i].text("label", lang) or reqs[i].metric) for i, s in failing[:4]],
                     "more": max(0, len(failing) - 4)})
    template = environment().get_template("fleet.html")
    return template.render(f=figs, fleet=fleet, rows=rows, sites=_site_rows(figs["sites"], rooms_per_site), hidden_rows=max(0, len(fleet.runs) - max_rows),
                           charts=[c for h in figs["histograms"] if (c := histogram_svg(h)) is not None],
                           trend_chart=trend_svg(figs["trend"]), lang=lang, t=catalog(lang),
                           skipped=fleet.skipped[:max_rows], hidden_skipped=max(0, len(fleet.skipped) - max_rows))


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def histogram_svg(h: dict[str, Any], width: int = 640, height: int = 180) -> dict[str, Any] | None:
    """Geometry of one histogram: bars, the requirement's bounds as lines, axis labels. Numbers only."""
    counts, edges = h["counts"], h["edges"]
    if not counts:
        return None
    pad_l, pad_r, pad_t, pad_b = 40, 12, 14, 26
    w, hgt = width - pad_l - pad_r, height - pad_t - pad_b
    log = h["scale"] == "log"
    f = math.log10 if log else float
    start, end = f(edges[0]), f(edges[-1])
    peak = max(counts) or 1

    def sx(x: float) -> float:
        x = max(edges[0], min(edges[-1], x))
        return round(pad_l + (f(x) - start) / (end - start) * w, 1)

    bars = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        misses = [(b["kind"] == "min" and hi <= b["value"]) or (b["kind"] == "max" and lo >= b["value"]) for b in h["bounds"]]
        # red: misses every bound drawn; amber: misses the bound of some profiles only
        out = "out" if misses and all(misses) else "some" if any(misses) else ""
        bh = round(c / peak * hgt, 1)
        bars.append({"x": sx(lo) + 0.5, "w": max(0.5, round(sx(hi) - sx(lo) - 1, 1)), "y": round(pad_t + hgt - bh, 1),
                     "h": bh, "count": c, "lo": _fmt(lo), "hi": _fmt(hi), "out": out})
    lines = []
    drawn: dict[tuple[str, float], dict[str, Any]] = {}
    for b in h["bounds"]:  # one line per bound; a required one wins over the same recommended one
        if (b["kind"], b["value"]) not in drawn or b["severity"] == "required":
            drawn[(b["kind"], b["value"])] = b
    for k, b in enumerate(sorted(drawn.values(), key=lambda b: b["value"])):
        x = sx(b["value"])
        right = x > width - pad_r - 50  # label on the left of a line near the right edge
        lines.append({"x": x, "label": ("≥ " if b["kind"] == "min" else "≤ ") + _fmt(b["value"]), "severity": b["severity"],
                      "tx": x - 3 if right else x + 3, "anchor": "end" if right else "start",
                      "ty": pad_t + 4 + 11 * (k % 4)})  # stacked, so close bounds stay readable
    if log:
        marks = [10.0 ** k for k in range(math.ceil(start - 1e-9), math.floor(end + 1e-9) + 1)]
    else:
        marks = [edges[0], (edges[0] + edges[-1]) / 2, edges[-1]]
    ticks = [{"x": sx(m), "label": _fmt(m), "anchor": "start" if sx(m) < pad_l + 15 else "end" if sx(m) > width - pad_r - 15 else "middle"}
             for m in marks]
    return {"h": h, "width": width, "height": height, "bars": bars, "lines": lines, "ticks": ticks,
            "x0": pad_l, "x1": width - pad_r, "y_top": pad_t, "y_bottom": pad_t + hgt, "peak": peak}


def trend_svg(tr: dict[str, Any] | None, width: int = 640, height: int = 170) -> dict[str, Any] | None:
    """Geometry of the share of ready runs per period, 0–100 %."""
    if not tr:
        return None
    pts = [p for p in tr["points"] if p["ready_pct"] is not None]
    if len(pts) < 2:
        return None
    pad_l, pad_r, pad_t, pad_b = 40, 12, 10, 24
    w, hgt = width - pad_l - pad_r, height - pad_t - pad_b
    n = len(pts)
    coords = [(round(pad_l + i / (n - 1) * w, 1), round(pad_t + hgt - p["ready_pct"] / 100 * hgt, 1)) for i, p in enumerate(pts)]
    return {"width": width, "height": height, "points": " ".join(f"{x},{y}" for x, y in coords),
            "dots": [{"x": x, "y": y, "p": p} for (x, y), p in zip(coords, pts)],
            "x0": pad_l, "x1": width - pad_r, "y_top": pad_t, "y_bottom": pad_t + hgt,
            "first": pts[0]["period"], "last": pts[-1]["period"]}
