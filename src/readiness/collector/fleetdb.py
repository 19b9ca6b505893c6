"""The fleet from the database: the same collect → figures → render as ``aggregate`` over files.

Sits between the store and the fleet code (``readiness.fleet``, ``readiness.fleet.page``):
documents are streamed from the database in batches into ``fleet.collect_results`` (never all
in memory), so /fleet, /api/v1/fleet, /metrics and ``aggregate --db`` give what ``aggregate``
would give over the same results as files.

Judged as stored (the default), only the runs the fleet state can use are read: the ``latest``
table holds, per room (or host), its newest run and its newest run of each check, which is
exactly what the fleet code keeps from all runs, and of those only their summaries (the
document without check details, requirements by reference: ``ingest.summary_of``). The counts of every stored run (runs read,
runs per day for the trend) are counted by the database from indexed columns. Judged again against a profile, or
with every run, all documents are streamed.

The server keeps one built fleet and builds it again only when the data changed (a cheap
look at the row count and the newest arrival), at most every ``min_age_s`` seconds, so a
Prometheus scrape every 15 s does not rebuild a large fleet each time.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from readiness.collector.access import scoped
from readiness.collector.engine import redacted, utcnow
from readiness.collector.store import Store
from readiness.fleet import Fleet, Skipped, collect_records, collect_results, figures, gc_paused
from readiness.fleet.compliance import NOT_REPORTING_AFTER_S, WINDOWS, lookback_days, over_time
from readiness.fleet.files import invalid
from readiness.fleet.read import _Reader
from readiness.fleet.page import render_html
from readiness.result import Result, ResultError


def _results(store: Store, all_runs: bool, skip: list[Skipped], part: tuple[str | None, str | None] = (None, None)
             ) -> Iterator[tuple[str, Result]]:
    """Each stored run as a Result. The rows passed the border (``result.result_from_data``)
    when they arrived, so they are not validated again: ``Result.from_dict`` builds the same
    model and still refuses a row that is not a result (a hand-edited database), which is
    listed as skipped, never fatal. Judged as stored, the summaries are read (a fifth of the
    bytes, ``ingest.summary_of``) with each judgement item's requirement taken from the
    ``requirements`` table: one shared dict per distinct requirement."""
    if all_runs:
        rows, reqs = store.documents(all_runs=True), {}
    else:
        rows, reqs = store.summaries(part=part), store.requirement_texts()
    for run_id, doc in rows:
        origin = f"run {run_id}"
        try:
            yield origin, Result.from_dict(_with_requirements(doc, reqs), origin)
        except ResultError as exc:  # checked when it arrived; a hand-edited row is listed, not fatal
            skip.append(Skipped(origin, invalid(str(exc).removeprefix(origin + ": "))))


def _with_requirements(doc: Any, reqs: dict[str, Any]) -> Any:
    """A summary's judgement items with their requirements put back (a whole document: as it is)."""
    judgement = doc.get("judgement") if isinstance(doc, dict) else None
    items = judgement.get("items") if isinstance(judgement, dict) else None
    if not isinstance(items, list) or not any(isinstance(i, dict) and isinstance(i.get("requirement"), str)
                                               for i in items):
        return doc
    try:
        judgement["items"] = [{**i, "requirement": reqs[i["requirement"]]}
                              if isinstance(i, dict) and isinstance(i.get("requirement"), str) else i for i in items]
    except KeyError as exc:
        raise ResultError(f"malformed result (requirement {str(exc)[:70]} is not stored)") from None
    return doc


PARALLEL_FROM = 2000  # stored runs; below this, starting processes costs more than it saves


def _parts(n: int) -> list[tuple[str | None, str | None]]:
    """``n`` (at most 256) ranges of run ids of about the same size (run ids are random hex), cut
    at two hex digits; the first starts open and the last ends open, so every string is in
    exactly one part."""
    cuts = [format(i * 256 // n, "02x") for i in range(1, n)]
    return list(zip([None, *cuts], [*cuts, None]))


def _read_part(url: str, part: tuple[str | None, str | None]) -> tuple[list[tuple[Any, ...]], list[Skipped]]:
    """In a worker process: one part's runs as the fleet reader's records."""
    store = Store(url, create=False)
    try:
        bad: list[Skipped] = []
        reader = _Reader(None)
        records = [reader.from_result(result, origin) for origin, result in _results(store, False, bad, part)]
        return records, bad
    finally:
        store.close()


def _records(store: Store, workers: int, bad: list[Skipped]) -> Iterator[tuple[Any, ...]]:
    """The fleet reader's record of each run the fleet state holds, read and built by
    ``workers`` processes over parts of the run ids (reading the summaries and building each
    run's record is nearly all the time, and CPU-bound). A part at a time comes back, so memory
    stays with the fleet, not the documents; a pool that breaks leaves its parts to be read here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    parts = _parts(workers * 8)  # small parts: the first come back soon, and the last is short
    done = 0
    method = "fork" if sys.platform.startswith("linux") else "spawn"  # as fleet.collect does for files
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            for records, skipped in pool.map(_read_part, [store.url] * len(parts), parts):
                done += 1
                bad.extend(skipped)
                yield from records
        return
    except (BrokenProcessPool, OSError):
        pass
    reader = _Reader(None)
    for part in parts[done:]:
        for origin, result in _results(store, False, bad, part):
            yield reader.from_result(result, origin)


def day_rows(store: Store, now: datetime, after_s: float, sites: frozenset[str] | None = None) -> Any:
    """The ``room_days`` rows and the labels the compliance of the last days at ``now`` reads
    (``fleet.compliance``)."""
    since = (now.date() - timedelta(days=max(WINDOWS) - 1 + lookback_days(after_s))).isoformat()
    return store.room_days(since, sites), store.room_labels(sites)


def judge_over_time(fleet: Fleet, store: Store, now: datetime | None = None,
                    after_s: float = NOT_REPORTING_AFTER_S, sites: frozenset[str] | None = None) -> datetime:
    """``fleet.compliance.over_time`` with the database's days (every run's state per day kept
    at ingest), unless the fleet was built from every document (judged again, or every run):
    then from the days it read, in its verdicts. When the answer next changes by time alone."""
    now = now or utcnow()
    every = fleet.all_runs or fleet.rejudged_by is not None
    return over_time(fleet, now, after_s, None if every else day_rows(store, now, after_s, sites))


def build_fleet(store: Store, profile: Any = None, all_runs: bool = False,
                on_skip: Callable[[Skipped], None] | None = None, workers: int | None = 1,
                not_reporting_after: float = NOT_REPORTING_AFTER_S, now: datetime | None = None) -> Fleet:
    """The fleet state from the database, as ``fleet.collect`` would build it from files, at
    ``now`` (rooms silent longer than ``not_reporting_after`` seconds are not reporting).
    ``workers``: processes reading (judged as stored, the latest runs only; None: by the CPUs
    and the size of the database; 1: here)."""
    bad: list[Skipped] = []
    every = all_runs or profile is not None
    total = store.count() if not every else 0
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if total >= PARALLEL_FROM else 1
    if not every and workers > 1:
        fleet = collect_records(_records(store, workers, bad), on_skip=on_skip)
    else:
        fleet = collect_results(_results(store, every, bad), profile=profile, all_runs=all_runs, on_skip=on_skip)
    for s in bad:
        fleet.skipped.append(s)
        if on_skip is not None:
            on_skip(s)
    fleet.paths = [redacted(store.url)]
    if not every:
        # only the runs the state uses were read: the totals are every stored run's
        fed = fleet.results_read
        fleet.results_read = total
        fleet.superseded += fleet.results_read - fed
        fleet.per_day = {day: Counter(counts) for day, counts in store.per_day().items()}
    judge_over_time(fleet, store, now, not_reporting_after)
    return fleet


def in_own_words(fleet: Fleet, words: Any) -> Fleet:
    """The fleet's requirements and support contacts in the organisation's words
    (``judge.wording.OwnWords``): what a reader of /fleet takes as IT's advice never comes from
    an upload unmarked."""
    fleet.requirements = [words.reword(r)[0] for r in fleet.requirements]
    for run in fleet.runs:  # the support contact: the organisation's list's, never an upload's
        contact = words.support(run.profile)
        if contact:
            run.facts["support"] = contact
        else:
            run.facts.pop("support", None)
    return fleet


class FleetView:
    """One built fleet (and its figures per language), rebuilt when the database changed.
    ``words``: the organisation's words for requirements (``judge.wording.OwnWords``);
    ``notes``: uploads the collector refused that the fleet lists among its skipped (a clock ahead)."""

    def __init__(self, store: Store, min_age_s: float = 10.0, words: Any = None,
                 notes: Callable[[], tuple[int, list[Skipped]]] | None = None,
                 not_reporting_after: float = NOT_REPORTING_AFTER_S) -> None:
        self.store = store
        self.not_reporting_after = not_reporting_after
        self.words = words
        self.notes = notes  # () -> (a count that grows with each note, skipped entries to list)
        self.min_age_s = min_age_s
        self.lock = threading.Lock()
        self.stamp: Any = None
        self.built = 0.0
        self.fleet: Fleet | None = None
        self.scoped: dict[frozenset[str], Fleet] = {}  # the fleet of a set of sites (``access.scoped``)
        self.figs: dict[tuple[frozenset[str] | None, str], dict[str, Any]] = {}

    SCOPES_MAX = 256  # distinct site sets kept at once

    def get(self, lang: str, sites: frozenset[str] | None = None) -> tuple[Fleet, dict[str, Any]]:
        """The fleet and its figures in ``lang``; of ``sites`` only when given (cut before the
        figures are computed: no count, action or name of another site is in them)."""
        with self.lock:  # one build at a time; readers arriving meanwhile get its result
            now = time.monotonic()
            if self.fleet is None or now - self.built >= self.min_age_s:
                count, notes = self.notes() if self.notes is not None else (0, [])
                stamp = (self.store.change_stamp(), count)
                if self.fleet is None or stamp != self.stamp:
                    with gc_paused():
                        fleet = build_fleet(self.store, not_reporting_after=self.not_reporting_after)
                        if self.words is not None:
                            fleet = in_own_words(fleet, self.words)
                        fleet.skipped.extend(notes)
                        self.fleet, self.figs, self.scoped, self.stamp = fleet, {}, {}, stamp
                elif self.fleet.recheck is not None and utcnow() >= self.fleet.recheck:
                    # nothing arrived, but time moved on: a room fell silent, or a new day began
                    with gc_paused():
                        judge_over_time(self.fleet, self.store, after_s=self.not_reporting_after)
                    self.figs, self.scoped = {}, {}
                self.built = now
            fleet = self.fleet
            if sites is not None:
                if sites not in self.scoped:
                    if len(self.scoped) >= self.SCOPES_MAX:
                        self.scoped, self.figs = {}, {k: v for k, v in self.figs.items() if k[0] is None}
                    self.scoped[sites] = scoped(fleet, sites, self.store.count(sites), {
                        day: Counter(counts) for day, counts in self.store.per_day(sites).items()})
                    # its compliance from its own sites' days: nothing of another site is in it
                    if fleet.now is not None:
                        over_time(self.scoped[sites], fleet.now, self.not_reporting_after,
                                  day_rows(self.store, fleet.now, self.not_reporting_after, sites))
                fleet = self.scoped[sites]
            if (sites, lang) not in self.figs:
                with gc_paused():
                    self.figs[(sites, lang)] = figures(fleet, lang)
            return fleet, self.figs[(sites, lang)]

    def html(self, lang: str, sites: frozenset[str] | None = None) -> str:
        fleet, figs = self.get(lang, sites)
        # the page is /fleet: a row links its run's report at /runs/ID
        return render_html(fleet, figs, "fleet.html", lang, link=lambda r: f"runs/{r.run_id}")
