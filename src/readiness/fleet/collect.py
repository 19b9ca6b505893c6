"""The fleet, first stage: find and read many results, and keep each room's state.

``readiness aggregate`` is collect (this module) → figures (``fleet.figures``, pure functions
of what was collected) → render (``render.fleet``). This module reads result files
(``result.read_result``), takes each one's judgement (the one stored when it ran, or a new one
from ``judge.judge`` against a profile the user names) and keeps, per host — or per room when
a room label is set — **the latest measurement of each check**. A later run of ``--check
system`` alone updates the system figures of that room and nothing else: it cannot hide a
camera that failed the day before. Each kept row says which checks counted, which computer
and run each came from, how old the oldest counted measurement is, and which checks the
profile needs that never ran there (a partial state, never ready). The verdict of a row is the
judge's rule (``judge.overall_of``) over the verdicts of those latest measurements.

Bad input loses nothing and stops nothing: every file that cannot be used is listed with a
plain reason, and only regular files are ever opened (a FIFO or a device on a share would
block or never end).

Memory grows with the number of hosts kept, not with the number of files: a run is dropped as
soon as later runs of the same host hold a newer measurement of each of its checks; per file only its path and run id
stay (for finding duplicate copies), and per day one count (for the trend).

Speed: parsing JSON is most of the time. With many files, worker processes read and parse
them; each distinct requirement is built once, not once per file; the HTML is bounded (host
table and rooms per site capped, histograms binned) while the CSV and JSON hold everything.
``bench/fleet.py`` measures it on 10 000 generated results.
"""

from __future__ import annotations

import gc
import math
import os
import stat
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from readiness.fleet.step5 import facts_of
from readiness.i18n.format import word
from readiness.judge.requirements import Profile, Requirement
from readiness.judge.verdicts import FAIL, Judgement, PARTIAL, PASS, READY, UNKNOWN, WARN, judge, overall_of
from readiness.judge.wording import requirement_key
from readiness.result import CLOCK_TOLERANCE, ResultError, parse_utc, prepare_border, read_result
from readiness.versions import is_version
from readiness.textsafe import has_surrogate, shown_path
from readiness.plugins import described

FLEET_KIND = "readiness-fleet"
# 1: first version. 2: a site room's "failing" is a list of {label, status, units} (FAIL, then WARN,
# then UNKNOWN, counted apart) instead of labels; "tiles" and "apart" (the organisation's agent
# rows, and browser/partner rows counted apart); step5 "ready_before", "combination", and per
# action "ready_after", "together_with", "failing"; a partner site's "not_measured".
FLEET_SCHEMA_VERSION = 2
MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any result (a snapshot is ~100 kB); guards memory
STATUSES = (PASS, WARN, FAIL, UNKNOWN)
STATUS_RANK = {FAIL: 0, UNKNOWN: 1, PARTIAL: 2, WARN: 3, PASS: 4}
_CANONICAL = {s: s for s in STATUSES}


class Why(str):
    """Why a file or run was skipped: the English sentence (terminal, log, CSV) that also
    carries a code and its facts, so a report says it in its reader's language (catalog
    ``skip.<code>``, ``said``). A str, so it travels from worker processes and compares as text."""

    code: str
    args: dict[str, Any]

    def __new__(cls, code: str, text: str, **args: Any) -> "Why":
        self = super().__new__(cls, text)
        self.code, self.args = code, args
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_why_of, (self.code, str(self), self.args))


def _why_of(code: str, text: str, args: dict[str, Any]) -> Why:
    """How a Why is made again from its pickle (a worker's record)."""
    return Why(code, text, **args)


def invalid(text: str) -> Why:
    """A result the border refused (``result.ResultError``): its English detail, framed."""
    return Why("invalid_result", text, detail=text)


def said(reason: str, lang: str) -> str:
    """A skip reason in ``lang``: the catalog's words for its code, else the English sentence."""
    if isinstance(reason, Why):
        key = f"skip.{reason.code}"
        text = word(lang, key, **reason.args)
        if text != key:
            return text
    return str(reason)


@dataclass
class Skipped:
    path: str
    reason: str  # a Why where the reader can say it in other languages


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
    checks: tuple[str, ...] = ()  # the checks that ran
    needed: tuple[str, ...] = ()  # the checks its profile needs
    # Filled for a kept row: per check, where its figures came from (hostname, started, run id)
    sources: dict[str, tuple[str, datetime, str]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()  # checks the profile needs that never ran here
    oldest: datetime | None = None  # the oldest measurement counted in this row
    # A few facts for the step-5 sections (fleet.step5.facts_of): "by", "support", and per check
    # "<check>.<fact>" (the services reached), kept per check like ``values``
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        """One state per room when a room label is set, else per host. A browser self-test
        never joins an agent's state: whoever opens the page chooses its room label, so its
        results form the room's own browser state (one per browser run without a room label)
        and cannot become an agent-measured room's newest camera or bandwidth fact."""
        browser = self.facts.get("by") == "browser"
        if self.room:
            return ("browser room" if browser else "room", self.site, self.room)
        return ("browser" if browser else "host", self.hostname or self.run_id)

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    @property
    def verdict(self) -> str:
        """As ``Judgement.verdict``: PARTIAL when no fault was found but checks are missing."""
        return PARTIAL if self.partial and self.overall in READY else self.overall

    @property
    def verdict_group(self) -> str:
        v = self.verdict
        return "ready" if v in READY else "not_ready" if v == FAIL else "unknown"

    @property
    def hosts(self) -> list[str]:
        """The computers whose figures this row holds."""
        return sorted({h for h, _, _ in self.sources.values() if h} or ({self.hostname} if self.hostname else set()))


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


def _oserror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _unreadable(exc: OSError) -> Why:
    return Why("unreadable", f"cannot read it ({_oserror(exc)})", error=_oserror(exc))


def _too_large(size: int) -> Why:
    return Why("too_large", f"too large to be a result ({size // 1048576} MB)", mb=size // 1048576)


_NOT_REGULAR = Why("not_regular", "not a regular file (a pipe, device or socket); not opened")
# a name that is not UTF-8: readable, but no report, CSV or page could name it
_NAME_NOT_TEXT = Why("name_not_text", "its name is not UTF-8 text; rename it to read it")


def iter_result_files(paths: Iterable[str | os.PathLike[str]], skip: Callable[[str, str], None],
                      other: Callable[[], None]) -> Iterator[str]:
    """Regular files to read: each file given, and every ``*.json`` under each folder given.

    Folders are walked without following links to folders (no loops on a share). Anything
    that is not a regular file (pipe, device, socket, broken link) is skipped, never opened, and
    so is a file or folder whose name is not UTF-8 text (it is listed with its bytes escaped).
    """
    for p in paths:
        p = os.fspath(p)
        try:
            st = os.stat(p)
        except OSError as exc:
            skip(p, _unreadable(exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            found = yield from _walk(p, skip, other)
            if not found:
                skip(p, Why("no_result_files", "this folder holds no result files (*.json)"))
        elif stat.S_ISREG(st.st_mode):
            if st.st_size > MAX_FILE_BYTES:
                skip(p, _too_large(st.st_size))
            else:
                yield p
        else:
            skip(p, _NOT_REGULAR)


def _walk(top: str, skip: Callable[[str, str], None], other: Callable[[], None]) -> Iterator[str]:
    found = 0
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skip(folder, Why("unlistable", f"cannot list this folder ({_oserror(exc)})", error=_oserror(exc)))
            continue
        if not entries and folder != top:
            skip(folder, Why("empty_folder", "empty folder"))
        subfolders = []
        for e in entries:
            if has_surrogate(e.name):
                skip(shown_path(e.path), _NAME_NOT_TEXT)
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    subfolders.append(e.path)
                    continue
            except OSError as exc:
                skip(e.path, _unreadable(exc))
                continue
            if not e.name.lower().endswith(".json"):
                other()
                continue
            try:
                st = e.stat()  # follows a link to its target
            except OSError as exc:
                broken = e.is_symlink()
                skip(e.path, Why("broken_link", "a link to nothing (broken link)") if broken else _unreadable(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                skip(e.path, Why("folder_link", "a link to a folder; links to folders are not followed"))
            elif not stat.S_ISREG(st.st_mode):
                skip(e.path, _NOT_REGULAR)
            elif st.st_size > MAX_FILE_BYTES:
                skip(e.path, _too_large(st.st_size))
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
        self.noted: dict[str, set[int]] = {}  # profile -> indexes already in its profiles set

    def learn(self, key: tuple[Any, ...], req: Requirement) -> None:
        if key not in self.index:
            self.index[key] = len(self.requirements)
            self.requirements.append(req)
            self.profiles.append(set())

    def indexed(self, statuses: dict[tuple[Any, ...], str], profile: str) -> dict[int, str]:
        """A run's verdicts keyed by requirement index (each verdict one shared string), its
        profile noted for each (in C loops: 10 000 runs x 40 items)."""
        out = dict(zip(map(self.index.__getitem__, statuses), map(_CANONICAL.__getitem__, statuses.values())))
        if profile:
            noted = self.noted.setdefault(profile, set())
            for i in out.keys() - noted:
                self.profiles[i].add(profile)
                noted.add(i)
        return out


def _metric_values(result: Any, units: dict[str, str], names: dict[tuple[str, str], str] | None = None
                   ) -> dict[str, Any]:
    """Every number, yes/no or version a run measured, as "check.metric" -> value (the CSV's
    columns). ``names``: one string per name across runs (smaller when sent between processes)."""
    values: dict[str, Any] = {}
    names = {} if names is None else names
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
            if t is bool or t is int or (t is float and math.isfinite(v)) or (t is str and is_version(v)):
                name = names.get((cname, mname))
                if name is None:
                    name = names[(cname, mname)] = f"{cname}.{mname}"
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

    def __init__(self, profile: Profile | None, service_reporters: tuple[str, ...] | None = None) -> None:
        self.profile = profile
        # given to a worker process, which need not load the plugins for it
        self.service_reporters = described().service_reporters if service_reporters is None else service_reporters
        self.known: set[tuple[Any, ...]] = set()
        self.units: set[str] = set()
        # one object per distinct requirement key and metric name for all the runs this reader
        # makes: records sent back from a worker process pickle each once, not once per run
        self.keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.names: dict[tuple[str, str], str] = {}

    def __call__(self, path: str) -> tuple[Any, ...]:
        try:
            result = read_result(path)
            written = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
        except ResultError as exc:
            reason = str(exc)
            return ("skip", path, invalid(reason[len(path) + 2:] if reason.startswith(path + ": ") else reason), False)
        except OSError as exc:  # gone between reading and looking at its time
            return ("skip", path, _unreadable(exc), False)
        return self.from_result(result, path, written)

    def from_result(self, result: Any, path: str, written: datetime | None = None) -> tuple[Any, ...]:
        """The record of a Result already read (from a file, or from the collector's database).
        ``written``: when its file was last modified; a start later than that (by more than
        ``CLOCK_TOLERANCE``) is a clock ahead, and the run is skipped: it would otherwise stay its
        room's newest until that date and hide every later failure."""
        run_id = result.run_id if isinstance(result.run_id, str) else ""
        if not run_id:
            return ("skip", path, Why("no_run_id", "malformed result (no run_id)"), True)
        try:
            started = parse_utc(str(result.started_utc))
            if started.tzinfo is None:
                started = started.replace(tzinfo=timezone.utc)
        except ValueError:
            return ("skip", path, Why("bad_start", f"malformed result (start time {result.started_utc!r} is not a date and "
                                                   "time)", value=repr(result.started_utc)[:80]), True)
        if written is not None and started - written > CLOCK_TOLERANCE:
            stamp, file_time = started.strftime("%Y-%m-%dT%H:%M:%SZ"), written.strftime("%Y-%m-%dT%H:%M:%SZ")
            minutes = int(CLOCK_TOLERANCE.total_seconds() // 60)
            return ("skip", path, Why("clock_ahead", f"starts at {stamp} by its computer's clock, after its file was "
                                                     f"written ({file_time}; {minutes} minutes are tolerated): that "
                                                     "computer's clock is ahead; not counted",
                                      started=stamp, written=file_time, minutes=minutes), True)
        new: dict[tuple[Any, ...], Requirement] = {}
        try:
            if self.profile is not None:
                # each check's requirements are judged where that check ran; the room's state
                # takes every check from its latest run (see collect)
                j = judge(result, self.profile, only_checks=set(result.checks))
                needed = tuple(j.coverage.needed) if j.coverage else ()
                overall, name, statuses = self._judged(j, new)
            elif isinstance(result.judgement, dict):
                cov = result.judgement.get("coverage")
                needed = tuple(c for c in cov.get("needed", []) if isinstance(c, str)) if isinstance(cov, dict) else ()
                overall, name, statuses = self._stored(result.judgement, new)
            else:
                return ("skip", path, Why("not_judged", "holds no judgement; give --profile or --requirements to judge it"),
                        True)
            for status in (overall, *statuses.values()):
                if status not in STATUSES:
                    raise ValueError(f"unknown verdict {status!r}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            code, what = (("cannot_judge", "cannot be judged against the profile") if self.profile is not None else
                          ("bad_judgement", "malformed judgement in the result"))
            error = f"{type(exc).__name__}: {exc}"
            return ("skip", path, Why(code, f"{what} ({error})", error=error), True)
        self.known.update(new)
        units: dict[str, str] = {}
        values = _metric_values(result, units, self.names)
        new_units = {k: v for k, v in units.items() if k not in self.units}
        self.units.update(new_units)
        host = result.host if isinstance(result.host, dict) else {}
        labels = result.labels if isinstance(result.labels, dict) else {}
        checks = tuple(c for c in result.checks if isinstance(c, str))
        run = Run(path=path, run_id=run_id, started=started, hostname=_text(host.get("hostname")),
                  site=_text(labels.get("site")), room=_text(labels.get("room")), label=_text(labels.get("label")),
                  profile=name, overall=overall, statuses=statuses, values=values, checks=checks,
                  needed=needed or tuple(dict.fromkeys(k[0].partition(".")[0] for k in statuses)),
                  facts=facts_of(result, self.profile.summary() if self.profile is not None else
                                 (result.judgement or {}).get("profile"), self.service_reporters))
        return ("run", run, new, new_units)

    def _judged(self, j: Judgement, new: dict[tuple[Any, ...], Requirement]) -> tuple[str, str, dict[Any, str]]:
        statuses: dict[Any, str] = {}
        for v in j.items:
            key = requirement_key(v.requirement)
            key = self.keys.setdefault(key, key)
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
            key = (req["metric"], req["severity"], req.get("min"), req.get("max"), req.get("expect"),
                   req.get("min_version"), req.get("service"))
            key = self.keys.setdefault(key, key)
            if key not in self.known and key not in new:
                new[key] = Requirement.from_dict(req)
            status = item["status"]
            statuses[key] = _CANONICAL.get(status, status) if type(status) is str else status
        return data["overall"], name, statuses


_WORKER_READER: _Reader | None = None


def _worker_start(profile: Profile | None, service_reporters: tuple[str, ...]) -> None:
    global _WORKER_READER
    prepare_border()  # compiled once per worker (inherited when forked), not on its first file
    _WORKER_READER = _Reader(profile, service_reporters)


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
        prepare_border()  # compile the schema before forking: every worker inherits it
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                     initializer=_worker_start,
                                     initargs=(profile, described().service_reporters)) as pool:
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


def _state(req_checks: list[str], req_severity: list[str], slot: dict[str, Run]) -> Run:
    """One row of the fleet: each check's verdicts and figures from its latest run there.
    ``req_checks``: the check of each requirement (by index)."""
    runs = list({id(r): r for r in slot.values()}.values())
    latest = max(runs, key=lambda r: (r.started, r.run_id))
    sources = {check: (r.hostname, r.started, r.run_id) for check, r in slot.items() if check}
    if len(runs) == 1:  # the usual case: one run holds every check's latest measurement
        statuses, values = latest.statuses, latest.values
    else:
        statuses = {}
        values = {}
        for check, r in slot.items():
            statuses.update((i, s) for i, s in r.statuses.items() if req_checks[i] == check)
            values.update((k, v) for k, v in r.values.items() if k.partition(".")[0] == check)
        # verdicts of requirements whose check ran nowhere (an old result judged them "did not run")
        for i, s in latest.statuses.items():
            statuses.setdefault(i, s)
    facts = {k: v for k, v in latest.facts.items() if "." not in k}  # who measured, the support contact
    for check, r in slot.items():
        facts.update((k, v) for k, v in r.facts.items() if k.partition(".")[0] == check)
    needed = tuple(dict.fromkeys(c for r in runs for c in r.needed))
    missing = tuple(c for c in needed if c not in slot)
    overall = overall_of((req_severity[i], s) for i, s in statuses.items()) if len(runs) > 1 or not latest.statuses else latest.overall
    return Run(path=latest.path, run_id=latest.run_id, started=latest.started, hostname=latest.hostname,
               site=latest.site, room=latest.room, label=latest.label, profile=latest.profile,
               overall=_CANONICAL.get(overall, overall), statuses=statuses, values=values,
               checks=tuple(c for c in slot if c), needed=needed, sources=sources, missing=missing,
               oldest=min(r.started for r in runs), facts=facts)


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

    path_list = [os.fspath(p) for p in paths]
    files = list(iter_result_files(path_list, skip, count_other))
    fleet = gather(_read_all(files, profile, _auto_workers(len(files)) if workers is None else workers),
                   profile, all_runs, skip)
    fleet.skipped, fleet.other_files, fleet.paths = skipped, other_files, path_list
    return fleet


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a fleet is built: the fleet is tens of
    thousands of long-lived dicts and lists, and each collection of the old generation walked
    them all again (a quarter of the time of a 10 000-room fleet). Nothing built here holds a
    cycle; what does is collected when this ends."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def collect_results(results: Iterable[tuple[str, Any]], profile: Profile | None = None, all_runs: bool = False,
                    on_skip: Callable[[Skipped], None] | None = None) -> Fleet:
    """The same as ``collect`` over (origin, Result) pairs already read, e.g. streamed from the
    collector's database; ``origin`` stands where a file's path would."""
    reader = _Reader(profile)
    return collect_records((reader.from_result(result, origin) for origin, result in results), profile, all_runs,
                           on_skip)


def collect_records(records: Iterable[tuple[Any, ...]], profile: Profile | None = None, all_runs: bool = False,
                    on_skip: Callable[[Skipped], None] | None = None) -> Fleet:
    """The same over the reader's records (``_Reader.from_result``), made elsewhere (worker processes)."""
    skipped: list[Skipped] = []

    def skip(origin: str, reason: str) -> None:
        s = Skipped(origin, reason)
        skipped.append(s)
        if on_skip is not None:
            on_skip(s)

    fleet = gather(records, profile, all_runs, skip)
    fleet.skipped = skipped
    return fleet


def gather(records: Iterable[tuple[Any, ...]], profile: Profile | None, all_runs: bool,
           skip: Callable[[str, str], None]) -> Fleet:
    """Keep what the fleet needs of each reader record: per host or room, each check's latest
    run (or every run with ``all_runs``); count duplicates, skips and runs per day."""
    registry = _Registry()
    units: dict[str, str] = {}
    names: dict[str, str] = {}
    seen: set[str] = set()
    slots: dict[tuple[str, ...], dict[str, Run]] = {}  # per host or room: check -> its latest run
    every: list[Run] = []
    skipped_results: list[str] = []
    per_day: dict[date, Counter] = {}
    results_read = duplicates = superseded = 0

    for record in records:
        if record[0] == "skip":
            _, path, reason, was_result = record
            results_read += was_result
            if was_result:
                skipped_results.append(path)
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
            skip(run.path, Why("duplicate", f"a copy of run {run.run_id} that was already read", run_id=run.run_id))
            continue
        seen.add(run.run_id)
        # One string object per metric name and verdict for the whole fleet, not one per run
        # (runs from worker processes arrive with their own copies): a third of a run's memory.
        run.statuses = registry.indexed(run.statuses, run.profile)
        run.values = dict(zip(map(names.setdefault, run.values, run.values), run.values.values()))
        run.overall = _CANONICAL[run.overall]
        day = run.started.astimezone(timezone.utc).date()
        per_day.setdefault(day, Counter())[run.verdict if run.needed else run.overall] += 1
        if all_runs:
            every.append(run)
            continue
        slot = slots.setdefault(run.key, {})
        for check in run.checks or ("",):  # a run without any check still stands for its host
            previous = slot.get(check)
            if previous is None or (run.started, run.run_id) > (previous.started, previous.run_id):
                slot[check] = run

    req_checks = [r.check for r in registry.requirements]
    req_severity = [r.severity for r in registry.requirements]
    if all_runs:
        runs = [_state(req_checks, req_severity, {c: r for c in r.checks or ("",)}) for r in every]
    else:
        runs = [_state(req_checks, req_severity, slot) for slot in slots.values()]
        superseded = (results_read - duplicates - sum(1 for _ in skipped_results)) - len(
            {id(r) for slot in slots.values() for r in slot.values()})
    runs.sort(key=lambda r: (STATUS_RANK[r.verdict], r.site.casefold(), r.room.casefold(), r.hostname.casefold(), r.started))
    return Fleet(runs=runs, requirements=registry.requirements, requirement_profiles=registry.profiles, units=units,
                 skipped=[], results_read=results_read, duplicates=duplicates, superseded=superseded,
                 other_files=0, per_day=per_day, all_runs=all_runs,
                 rejudged_by=profile.summary() if profile is not None else None)
