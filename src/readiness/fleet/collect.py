"""The fleet, first stage: find and read many results, and keep each room's state.

``readiness aggregate`` is collect (this module, with ``files`` finding the files, ``read``
reading and judging each, ``model`` what is kept) → figures (``fleet.figures``, pure functions
of what was collected) → step 5 → page. This module takes each result's judgement (the one stored when it ran, or a new one
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

Speed: parsing JSON is most of the time. A clean file with a stored judgement is read in one
typed decode (``onepass.clean_struct``: it checks the document as the border does, and its
record is built from the typed structure, without a Result); each requirement's JSON is checked
and built once per distinct requirement, not once per file; anything else takes the border's
usual path. With many files, worker processes read them; the HTML is bounded (host table and
rooms per site capped, histograms binned) while the CSV and JSON hold everything.
``bench/fleet.py`` measures it on 10 000 generated results, beside orjson's parse of them.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from contextlib import contextmanager
from datetime import date, timezone
from typing import Any, Callable, Iterable, Iterator

from readiness.fleet.files import Why, iter_result_files
from readiness.fleet.model import CANONICAL_STATUS, STATUS_RANK, Fleet, Run, Skipped
from readiness.fleet.read import Unpacker, _auto_workers, _read_all, _Reader, _Registry
from readiness.judge.requirements import Profile
from readiness.judge.verdicts import overall_of

def _state(req_checks: list[str], req_severity: list[str], slot: dict[str, Run]) -> Run:
    """One row of the fleet: each check's verdicts and figures from its latest run there.
    ``req_checks``: the check of each requirement (by index)."""
    runs = list({id(r): r for r in slot.values()}.values())
    if len(runs) == 1:
        return _state_of_one(runs[0], slot)
    latest = max(runs, key=lambda r: (r.started, r.run_id))
    sources = {check: (r.hostname, r.started, r.run_id) for check, r in slot.items() if check}
    statuses = {}
    values = {}
    for check, r in slot.items():
        statuses.update((i, s) for i, s in r.statuses.items() if req_checks[i] == check)
        values.update((k, v) for k, v in r.values.items() if k.partition(".")[0] == check)
    # verdicts of requirements whose check ran nowhere (an old result judged them "did not run")
    for i, s in latest.statuses.items():
        statuses.setdefault(i, s)
    facts = {k: v for k, v in latest.facts.items() if "." not in k}  # who measured, the support contact
    per_check: dict[int, dict[str, list[tuple[str, Any]]]] = {}  # per run: its facts by what precedes a "."
    for r in runs:  # once per run, not once per run and check
        grouped = per_check[id(r)] = {}
        for k, v in r.facts.items():
            grouped.setdefault(k.partition(".")[0], []).append((k, v))
    for check, r in slot.items():  # each check's facts from the run its figures came from
        facts.update(per_check[id(r)].get(check, ()))
    needed = tuple(dict.fromkeys(c for r in runs for c in r.needed))
    missing = tuple(c for c in needed if c not in slot)
    overall = overall_of((req_severity[i], s) for i, s in statuses.items())
    return Run(path=latest.path, run_id=latest.run_id, started=latest.started, hostname=latest.hostname,
               site=latest.site, room=latest.room, label=latest.label, profile=latest.profile,
               overall=CANONICAL_STATUS.get(overall, overall), statuses=statuses, values=values,
               checks=tuple(c for c in slot if c), needed=needed, sources=sources, missing=missing,
               oldest=min(r.started for r in runs), facts=facts)


def _state_of_one(run: Run, slot: dict[str, Run]) -> Run:
    """``_state`` in the usual case: one run holds every check's latest measurement there. Its
    verdicts, values and overall are the row's as they are (shared, not copied), and each check's
    source is one tuple (the run's)."""
    checks = tuple(c for c in slot if c)
    source = (run.hostname, run.started, run.run_id)
    facts = {k: v for k, v in run.facts.items() if "." not in k}  # who measured, the support contact
    if len(facts) < len(run.facts):  # each check's facts, in the order of the checks
        grouped: dict[str, list[tuple[str, Any]]] = {}
        for k, v in run.facts.items():
            grouped.setdefault(k.partition(".")[0], []).append((k, v))
        for check in slot:
            facts.update(grouped.get(check, ()))
    needed = tuple(dict.fromkeys(run.needed))
    overall = run.overall if run.statuses else overall_of(())
    return Run(path=run.path, run_id=run.run_id, started=run.started, hostname=run.hostname,
               site=run.site, room=run.room, label=run.label, profile=run.profile,
               overall=CANONICAL_STATUS.get(overall, overall), statuses=run.statuses, values=run.values,
               checks=checks, needed=needed, sources=dict.fromkeys(checks, source),
               missing=tuple(c for c in needed if c not in slot), oldest=run.started, facts=facts)


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
                    on_skip: Callable[[Skipped], None] | None = None, days: bool = True,
                    shared_names: bool = False) -> Fleet:
    """The same over the reader's records (``_Reader.from_result``), made elsewhere (worker processes).
    ``days``: False when the caller has the runs per day and each room's state per day from
    elsewhere (the collector's database keeps them at ingest): the fleet is then built without
    them (``Fleet.per_day``, ``room_days`` and ``room_labels`` left empty). ``shared_names``: the
    records were made in this process, their metric names already one string object each (see
    ``gather``)."""
    skipped: list[Skipped] = []

    def skip(origin: str, reason: str) -> None:
        s = Skipped(origin, reason)
        skipped.append(s)
        if on_skip is not None:
            on_skip(s)

    fleet = gather(records, profile, all_runs, skip, days, shared_names)
    fleet.skipped = skipped
    return fleet


def gather(records: Iterable[tuple[Any, ...]], profile: Profile | None, all_runs: bool,
           skip: Callable[[str, str], None], days: bool = True, shared_names: bool = False) -> Fleet:
    """Keep what the fleet needs of each reader record: per host or room, each check's latest
    run (or every run with ``all_runs``); count duplicates and skips, and with ``days`` the runs
    per day and each room's state per day (the trend and the compliance)."""
    registry = _Registry()
    units: dict[str, str] = {}
    names: dict[str, str] = {}
    unpacker = Unpacker(registry, names)
    seen: set[str] = set()
    slots: dict[tuple[str, ...], dict[str, Run]] = {}  # per host or room: check -> its latest run
    every: list[Run] = []
    skipped_results: list[str] = []
    per_day: dict[date, Counter] = {}
    room_days: dict[tuple[str, ...], dict[date, tuple[Any, str, str | None]]] = {}
    labels: dict[tuple[str, ...], tuple[Any, tuple[str, str, str]]] = {}
    results_read = duplicates = superseded = 0

    for record in records:
        if record[0] == "skip":
            _, path, reason, was_result = record
            results_read += was_result
            if was_result:
                skipped_results.append(path)
            skip(path, reason)
            continue
        # ("run", Run, new requirements, new units), or a worker's ("packed", ..., the same two)
        packed = record[0] == "packed"
        run = None if packed else record[1]
        new_reqs, new_units = record[-2], record[-1]
        results_read += 1
        for key, req in new_reqs.items():
            registry.learn(key, req)
        for k, v in new_units.items():
            units.setdefault(k, v)
        # a packed record's shapes are kept first, a duplicate's too: later records name them by id
        shapes = unpacker.shapes(record) if packed else None
        run_id = record[2] if packed else run.run_id
        if run_id in seen:
            duplicates += 1
            skip(record[1] if packed else run.path,
                 Why("duplicate", f"a copy of run {run_id} that was already read", run_id=run_id))
            continue
        seen.add(run_id)
        if packed:  # the same Run as below, from its shapes
            run = unpacker.run(record, shapes)
        else:
            # One string object per metric name and verdict for the whole fleet, not one per run
            # (runs from worker processes arrive with their own copies): a third of a run's memory.
            # Records made here share their names already (the reader's own, or orjson's key cache).
            run.statuses = registry.indexed(run.statuses, run.profile)
            if not shared_names:
                run.values = dict(zip(map(names.setdefault, run.values, run.values), run.values.values()))
            run.overall = CANONICAL_STATUS[run.overall]
        key = run.key
        if days:
            day = run.started.astimezone(timezone.utc).date()
            verdict = run.verdict if run.needed else run.overall
            counts = per_day.get(day)
            if counts is None:  # a Counter made once per day, not once per run
                counts = per_day[day] = Counter()
            counts[verdict] += 1
            # the room's state that day (``compliance``): the day's last run
            on_day = room_days.get(key)
            if on_day is None:
                on_day = room_days[key] = {}
            had = on_day.get(day)
            if had is None or (run.started, run.run_id) > had[:2]:
                on_day[day] = (run.started, run.run_id, verdict)
                if key not in labels or labels[key][0] <= (run.started, run.run_id):
                    labels[key] = ((run.started, run.run_id), (run.site, run.room, run.hostname))
        if all_runs:
            every.append(run)
            continue
        slot = slots.get(key)
        if slot is None:
            slot = slots[key] = {}
        for check in run.checks or ("",):  # a run without any check still stands for its host
            previous = slot.get(check)
            if previous is None or (run.started, run.run_id) > (previous.started, previous.run_id):
                slot[check] = run

    unpacker.fill(every if all_runs else (r for slot in slots.values() for r in slot.values()))
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
                 rejudged_by=profile.summary() if profile is not None else None, room_days=room_days,
                 room_labels={k: v for k, (_, v) in labels.items()})
