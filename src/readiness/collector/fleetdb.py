"""The fleet from the database: the same collect → figures → render as ``aggregate`` over files.

Sits between the store and the fleet code (``readiness.fleet``, ``readiness.fleet.page``):
documents are streamed from the database in batches into ``fleet.collect_results`` (never all
in memory), so /fleet, /api/v1/fleet, /metrics and ``aggregate --db`` give what ``aggregate``
would give over the same results as files.

Judged as stored (the default), only the runs the fleet state can use are read: the ``latest``
table holds, per room (or host), its newest run and its newest run of each check, which is
exactly what the fleet code keeps from all runs, and of those only the record made at ingest
(``record_of``: labels, verdicts, values, a few facts; ``fleet_records``), so a cold view of
10 000 rooms parses 10 000 small records, not their documents. A run without a usable record
is read from its summary (the document without check details, requirements by reference:
``ingest.summary_of``). The counts of every stored run (runs read, runs per day for the
trend) are counted by the database from indexed columns or kept at ingest. Judged again against a profile, or
with every run, all documents are streamed.

The server keeps one built fleet and builds it again only when the data changed (a cheap
look at the row count and the newest arrival), at most every ``min_age_s`` seconds, so a
Prometheus scrape every 15 s does not rebuild a large fleet each time.
"""

from __future__ import annotations

import pickle
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import orjson

from readiness.collector.access import scoped
from readiness.collector.engine import StoreError, Unavailable, redacted, utcnow
from readiness.collector.jsontext import dumps
from readiness.collector.store import Store
from readiness.fleet import Fleet, Skipped, collect_records, collect_results, figures, gc_paused, with_rows
from readiness.fleet.compliance import NOT_REPORTING_AFTER_S, WINDOWS, Tally, lookback_days, over_time, per_room
from readiness.fleet.files import invalid
from readiness.fleet.model import CANONICAL_STATUS, Run
from readiness.fleet.read import _Reader, stored_key
from readiness.fleet.history import room_path
from readiness.fleet.page import render_html
from readiness.i18n import languages
from readiness.i18n.format import number, when
from readiness.plugins import described
from readiness.render.report import environment
from readiness.judge.requirements import Requirement
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


RECORD_FORMAT = 1  # ``fleet_records``' text: what ``record_of`` writes and ``_Records`` reads
_RECORDER: _Reader | None = None
_RECORDER_KEYS_MAX = 4096  # distinct requirements remembered by the ingest process's reader
_INT64 = (-(2**63), 2**64 - 1)  # the integers orjson reads as integers
# A record names each requirement by the first characters of its digest (a third of a record's
# bytes instead of most of them); a start that two stored requirements share is not used
# (``_Records``): such a run is read from its summary, never given another's requirement.
REF_CHARS = 16


def record_of(result: Result, refs: list[str]) -> str | None:
    """What the fleet keeps of a checked run (the fleet reader's record, ``_Reader.from_result``),
    as compact JSON text for ``fleet_records``: made once at ingest, so the view reads it instead
    of parsing the run's summary and building a Result each time the fleet is built. ``refs``:
    the requirement digest of each judgement item, in order (``ingest.summary_of``). None for a
    run the fleet would skip (no judgement, a malformed one): the view reads those the old way
    and lists them as it always did."""
    try:
        return _record_of(result, refs)
    except (KeyError, TypeError, ValueError, AttributeError):  # a cache, never a refusal: read the summary
        return None


def record_of_struct(doc: Any, requirements: list[bytes], refs: list[str]) -> str | None:
    """``record_of`` for a document the border checked in one typed decode
    (``onepass.clean_struct``: the typed document and each judgement item's requirement as its
    JSON bytes): the same text, from the fleet reader's typed path (``_Reader._record``, as
    ``aggregate`` reads a clean file) instead of a Result and its dicts."""
    try:
        reader = _recorder()
        record = reader._record(doc, requirements, "", None)
        if record is None or record[0] != "run" or len(doc.judgement.items) != len(refs):
            return None
        units: dict[str, str] = {}
        for cname, rec in doc.checks.items():  # each value's unit, as ``_record_of`` notes it
            for mname, entry in rec.metrics.items():
                if entry.unit:
                    units.setdefault(f"{cname}.{mname}", entry.unit)
        return _record_text(record[1], units, refs, [item.status for item in doc.judgement.items])
    except (KeyError, TypeError, ValueError, AttributeError):  # a cache, never a refusal: read the summary
        return None


def _recorder() -> _Reader:
    global _RECORDER
    if _RECORDER is None or len(_RECORDER.known) > _RECORDER_KEYS_MAX:
        _RECORDER = _Reader(None)
    return _RECORDER


def _record_of(result: Result, refs: list[str]) -> str | None:
    record = _recorder().from_result(result, "")
    items = (result.judgement or {}).get("items") if isinstance(result.judgement, dict) else None
    if record[0] != "run" or not isinstance(items, list) or len(items) != len(refs):
        return None
    run: Run = record[1]
    units: dict[str, str] = {}
    for cname, rec in result.checks.items():  # each value's unit, as the reader notes it once per fleet
        for mname, entry in rec.metrics.items() if type(rec.metrics) is dict else ():
            name = f"{cname}.{mname}"
            if name in run.values and isinstance(entry, dict) and entry.get("unit"):
                units.setdefault(name, str(entry["unit"]))
    return _record_text(run, units, refs, [item["status"] for item in items])


def _record_text(run: Run, units: dict[str, str], refs: list[str], statuses: list[str]) -> str | None:
    """The record's JSON text; ``units``: the unit of each metric (those of ``run.values`` are kept)."""
    if any(type(v) is int and not _INT64[0] <= v <= _INT64[1] for v in run.values.values()):
        return None  # orjson reads the record (``_Records``): no integer past 64 bits in it
    units = {name: unit for name, unit in units.items() if name in run.values}
    return dumps({"v": RECORD_FORMAT, "started": run.started.isoformat(), "hostname": run.hostname, "site": run.site,
                  "room": run.room, "label": run.label, "profile": run.profile, "overall": run.overall,
                  "refs": [ref[:REF_CHARS] for ref in refs], "statuses": statuses,
                  "values": run.values,
                  "units": units, "checks": list(run.checks), "needed": list(run.needed), "facts": run.facts})


class _Records:
    """Turns stored records (``record_of``) back into the fleet reader's records, exactly as
    ``_Reader.from_result`` makes them from the summaries: the same reader state (requirements
    and units already passed on), each distinct requirement built once from its stored text."""

    def __init__(self, reader: _Reader, texts: dict[str, Any]) -> None:
        self.reader = reader
        self.texts: dict[str, Any] = {}  # a digest's first characters -> requirement (``Store.requirement_texts``)
        shared = set()
        for digest, req in texts.items():
            ref = digest[:REF_CHARS]
            if ref in self.texts:
                shared.add(ref)
            self.texts[ref] = req
        for ref in shared:
            del self.texts[ref]
        # a judgement's digests (most runs of a profile have the same list) -> requirement keys
        self.by_refs: dict[tuple[str, ...], tuple[tuple[Any, ...], ...]] = {}

    def _keys(self, refs: tuple[str, ...]) -> tuple[tuple[Any, ...], ...]:
        reader = self.reader
        keys = []
        for ref in refs:
            req = self.texts[ref]
            key = stored_key(req)
            keys.append(reader.keys.setdefault(key, key))
        out = self.by_refs[refs] = tuple(keys)
        return out

    def __call__(self, run_id: str, text: str | None) -> tuple[Any, ...] | None:
        """The reader's record of a run, or None when its stored record cannot be used (none,
        another format, a requirement not stored): that run is then read from its summary."""
        if text is None:
            return None
        try:
            rec = orjson.loads(text)  # written by ``record_of``: nothing in it that json reads otherwise
            if rec.get("v") != RECORD_FORMAT:
                return None
            refs = tuple(rec["refs"])
            keys = self.by_refs.get(refs) or self._keys(refs)
            statuses = rec["statuses"]
            if len(statuses) != len(keys):
                return None
            reader = self.reader
            known = reader.known
            new = {}
            if not known.issuperset(keys):
                for ref, key in zip(refs, keys):  # each requirement built once, from the first item naming it
                    if key not in known and key not in new:
                        new[key] = Requirement.from_dict(self.texts[ref])
            statuses = dict(zip(keys, map(CANONICAL_STATUS.__getitem__, statuses)))
            units = rec["units"]
            if not reader.units.issuperset(units):
                units = {k: v for k, v in units.items() if k not in reader.units}
            else:
                units = {}
            run = Run(path=f"run {run_id}", run_id=run_id, started=datetime.fromisoformat(rec["started"]),
                      hostname=rec["hostname"], site=rec["site"], room=rec["room"], label=rec["label"],
                      profile=rec["profile"], overall=rec["overall"], statuses=statuses, values=rec["values"],
                      checks=tuple(rec["checks"]), needed=tuple(rec["needed"]), facts=rec["facts"])
        except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError):  # a hand-edited row
            return None
        known.update(new)
        reader.units.update(units)
        return ("run", run, new, units)


def _from_records(store: Store, bad: list[Skipped]) -> Iterator[tuple[Any, ...]]:
    """The fleet reader's record of each run the fleet state holds, in run id order (as
    ``_results`` reads them): from ``fleet_records``, or from the summary where a run has no
    usable record."""
    reqs = store.requirement_texts()
    reader = _Reader(None)
    records = _Records(reader, reqs)
    for run_id, text in store.fleet_records():
        record = records(run_id, text)
        if record is not None:
            yield record
            continue
        origin = f"run {run_id}"
        try:
            yield reader.from_result(Result.from_dict(_with_requirements(store.summary(run_id), reqs), origin), origin)
        except ResultError as exc:
            bad.append(Skipped(origin, invalid(str(exc).removeprefix(origin + ": "))))


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


class ComplianceCache:
    """The fleet's compliance (``fleet.compliance``) from the database, kept apart from the
    built fleet and brought up to date as runs arrive: only the rooms whose runs arrived since
    it last looked are read again (their ``room_days``), not the 10 000 rooms x 90 days. Read
    whole again only when it cannot tell what changed: the first time, on a new UTC day, after
    pruning, or when a run was stored with an arrival time older than one already seen (another
    replica's slow transaction)."""

    KEYS_MAX = 2000  # more rooms changed than this: everything is read again (one sweep)
    CHILD_RUNS = 20_000  # stored runs from which the first read is made in a child process (``prime``)
    CHILD_WAIT_S = 60.0

    def __init__(self, store: Store, after_s: float = NOT_REPORTING_AFTER_S) -> None:
        self.store, self.after_s = store, after_s
        self.lock = threading.Lock()
        self.tally: Tally | None = None
        self.stamp: tuple[Any, ...] | None = None  # (runs stored, newest arrival) the tally holds
        self.rooms_read = 0  # rooms read again by the last update (everything: all of them)
        self.full_reads = 0
        self.in_child = False  # the first read was made in a child process (``prime``)

    def at(self, now: datetime) -> dict[str, Any]:
        """The compliance at ``now``, with every run stored before this call."""
        with self.lock:
            stamp = self.store.change_stamp()
            tally = self.tally
            if tally is None or tally.today != now.astimezone(timezone.utc).date() or self.stamp is None:
                self._read_all(now, stamp)
            elif stamp != self.stamp:
                count, newest = self.stamp
                arrived, keys = (0, []) if newest is None else self.store.arrived_after(newest)
                if newest is None or stamp[0] - count != arrived or len(keys) > self.KEYS_MAX:
                    self._read_all(now, stamp)  # pruned, or a run arrived that is not "after" the newest seen
                else:
                    self._read_rooms(now, keys, stamp)
            assert self.tally is not None
            return self.tally.result(now)

    def _since(self, now: datetime) -> str:
        return (now.date() - timedelta(days=max(WINDOWS) - 1 + lookback_days(self.after_s))).isoformat()

    def _read_all(self, now: datetime, stamp: tuple[Any, ...]) -> None:
        self._took(_whole_tally(self.store, now, self.after_s, self._since(now)), stamp)

    def _took(self, tally: Tally, stamp: tuple[Any, ...]) -> None:
        self.tally, self.stamp, self.rooms_read = tally, stamp, len(tally.site_of)
        self.full_reads += 1

    def prime(self, now: datetime, child_url: str | None = None) -> None:
        """The first whole read, at the start. With ``CHILD_RUNS`` stored runs or more it is made
        in a child process (on another core, with its own interpreter), so that a first /fleet
        page built meanwhile is not slowed by it: at 100 000 runs it is half a second of CPU
        that page would otherwise share. A child that fails or does not answer within
        ``CHILD_WAIT_S`` leaves the read to this process, as for a small database.
        ``child_url``: the database the child opens (this store's; a test gives another)."""
        with self.lock:
            if self.tally is not None:
                return
            stamp = self.store.change_stamp()
            if stamp[0] >= self.CHILD_RUNS:
                got = _tally_elsewhere(child_url or self.store.url, now, self.after_s, self._since(now),
                                       self.CHILD_WAIT_S)
                if got is not None:
                    self._took(*got)
                    self.in_child = True
                    return
            self._read_all(now, stamp)

    def _read_rooms(self, now: datetime, keys: list[str], stamp: tuple[Any, ...]) -> None:
        assert self.tally is not None
        labels = self.store.room_labels(keys=keys)
        rows = dict(per_room(self.store.room_days(self._since(now), keys=keys)))
        for key in keys:
            self.tally.put(key, rows.get(key, []), labels.get(key))
        self.stamp, self.rooms_read = stamp, len(keys)


def _whole_tally(store: Store, now: datetime, after_s: float, since: str) -> Tally:
    """Every room's compliance read from its ``room_days`` since ``since``."""
    tally = Tally(now, after_s)
    labels = store.room_labels()
    for key, runs in per_room(store.room_days(since)):
        tally.put(key, runs, labels.get(key))
    return tally


def _tally_child(conn: Any, url: str, now: datetime, after_s: float, since: str) -> None:
    """In a child process (``ComplianceCache.prime``): (the whole tally, the change stamp taken
    before it was read) sent back, or None when it cannot be made here."""
    try:
        store = Store(url, create=False)
        try:
            stamp = store.change_stamp()
            conn.send((_whole_tally(store, now, after_s, since), stamp))
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - the parent reads it itself and meets the error in its own words
        conn.send(None)
    finally:
        conn.close()


def _tally_elsewhere(url: str, now: datetime, after_s: float, since: str, wait_s: float
                     ) -> tuple[Tally, tuple[Any, ...]] | None:
    """``_tally_child``'s answer from a spawned process (no fork of a threaded server), or None:
    it failed, died, or did not answer within ``wait_s`` (then it is killed)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_tally_child, args=(theirs, url, now, after_s, since), daemon=True,
                       name="readiness-compliance")
    try:
        proc.start()  # refused while this process is still importing its main module (no guard there)
    except (OSError, RuntimeError):
        ours.close()
        theirs.close()
        return None
    try:
        theirs.close()
        if not ours.poll(wait_s):
            return None
        got = ours.recv()
    except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError, pickle.UnpicklingError):
        return None  # it died, or its answer cannot be read
    finally:
        ours.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    return got if isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], Tally) else None


def judge_over_time(fleet: Fleet, store: Store, now: datetime | None = None,
                    after_s: float = NOT_REPORTING_AFTER_S, sites: frozenset[str] | None = None,
                    cache: ComplianceCache | None = None) -> datetime:
    """``fleet.compliance.over_time`` with the database's days (every run's state per day kept
    at ingest), unless the fleet was built from every document (judged again, or every run):
    then from the days it read, in its verdicts. When the answer next changes by time alone.
    ``cache``: the compliance kept up to date there (the live view's), not read whole again."""
    now = now or utcnow()
    every = fleet.all_runs or fleet.rejudged_by is not None
    if cache is not None and not every and sites is None:
        return over_time(fleet, now, after_s, comp=cache.at(now))
    return over_time(fleet, now, after_s, None if every else day_rows(store, now, after_s, sites))


def build_fleet(store: Store, profile: Any = None, all_runs: bool = False,
                on_skip: Callable[[Skipped], None] | None = None, workers: int | None = 1,
                not_reporting_after: float = NOT_REPORTING_AFTER_S, now: datetime | None = None,
                cache: ComplianceCache | None = None) -> Fleet:
    """The fleet state from the database, as ``fleet.collect`` would build it from files, at
    ``now`` (rooms silent longer than ``not_reporting_after`` seconds are not reporting).

    Judged as stored, the runs the state holds are read from the records kept at ingest
    (``fleet_records``: one small row per room, usually), here. ``workers`` > 1: read from
    their summaries instead, by that many processes over parts of the run ids (the way before
    the records, kept as a second reading the tests hold the records to); None or 1: the records."""
    bad: list[Skipped] = []
    every = all_runs or profile is not None
    total = store.count() if not every else 0
    # judged as stored, the runs per day and each room's state per day come from the database
    # (``per_day``, ``room_days``), not from the few runs read here: the fleet is built without them
    if not every and workers is not None and workers > 1:
        fleet = collect_records(_records(store, workers, bad), on_skip=on_skip, days=False)
    elif not every:
        fleet = collect_records(_from_records(store, bad), on_skip=on_skip, days=False, shared_names=True)
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
    judge_over_time(fleet, store, now, not_reporting_after, cache=cache)
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
        self.figs: dict[tuple[Any, ...], dict[str, Any]] = {}  # (sites, lang[, "rows"]) -> figures
        # the whole fleet's compliance, kept apart and brought up to date room by room as runs
        # arrive, not computed again over every room at each rebuild
        self.compliance = ComplianceCache(store, not_reporting_after)
        # set once a first page of the fleet was made: the start's slower warm-ups (the
        # regressions pass, the plotting library) wait for it rather than slow that page down
        self.served = threading.Event()

    SCOPES_MAX = 256  # distinct site sets kept at once

    def get(self, lang: str, sites: frozenset[str] | None = None, rows: bool = False) -> tuple[Fleet, dict[str, Any]]:
        """The fleet and its figures in ``lang``; of ``sites`` only when given (cut before the
        figures are computed: no count, action or name of another site is in them); with each
        row's state (``figures.with_rows``) only when ``rows`` (the JSON)."""
        with self.lock:  # one build at a time; readers arriving meanwhile get its result
            now = time.monotonic()
            if self.fleet is None or now - self.built >= self.min_age_s:
                count, notes = self.notes() if self.notes is not None else (0, [])
                stamp = (self.store.change_stamp(), count)
                if self.fleet is None or stamp != self.stamp:
                    with gc_paused():
                        fleet = build_fleet(self.store, not_reporting_after=self.not_reporting_after,
                                            cache=self.compliance)
                        if self.words is not None:
                            fleet = in_own_words(fleet, self.words)
                        fleet.skipped.extend(notes)
                        self.fleet, self.figs, self.scoped, self.stamp = fleet, {}, {}, stamp
                elif self.fleet.recheck is not None and utcnow() >= self.fleet.recheck:
                    # nothing arrived, but time moved on: a room fell silent, or a new day began
                    with gc_paused():
                        judge_over_time(self.fleet, self.store, after_s=self.not_reporting_after,
                                        cache=self.compliance)
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
            if (sites, lang) not in self.figs:  # a page's: without the rows, which only the JSON lists
                with gc_paused():
                    self.figs[(sites, lang)] = figures(fleet, lang, rows=False)
            figs = self.figs[(sites, lang)]
            if rows:
                full = self.figs.get((sites, lang, "rows"))
                if full is None:
                    with gc_paused():
                        full = self.figs[(sites, lang, "rows")] = with_rows(fleet, figs)
                figs = full
            return fleet, figs

    def warm(self) -> None:
        """Compile the page's templates (a fifth of a second), load the checks' descriptions
        the fleet's sections read and each language's number and date formats now, at start,
        not in the first request for /fleet."""
        environment().get_template("fleet.html")
        described()
        for lang in languages():
            number(0.5, lang)
            when(utcnow(), lang)
        # the compliance of every room read once now, beside the start, so that the first
        # /fleet finds it (it waits for this one if it comes first); a failure here is met again there
        threading.Thread(target=self._warm_compliance, name="fleet-compliance", daemon=True).start()

    def _warm_compliance(self) -> None:
        try:
            self.compliance.prime(utcnow())
        except (StoreError, Unavailable):
            pass

    def html(self, lang: str, sites: frozenset[str] | None = None, regressions: list[str] | None = None) -> str:
        with gc_paused():  # one pause for the build, the figures and the page (each young
            # collection after a pause walks every object made during it: once, not three times)
            try:
                return self._html(lang, sites, regressions)
            finally:
                self.served.set()

    def _html(self, lang: str, sites: frozenset[str] | None, regressions: list[str] | None) -> str:
        fleet, figs = self.get(lang, sites)
        # the page is /fleet: a row links its run's report at /runs/ID, its room's history at
        # /rooms/SITE/ROOM (a computer's at /hosts/NAME)
        return render_html(fleet, figs, "fleet.html", lang, link=lambda r: f"runs/{r.run_id}",
                           room_link=lambda r: None if r.facts.get("by") == "browser" or not (r.room or r.hostname) else
                           room_path(r.site, r.room, r.hostname).lstrip("/"), regressions=regressions or [])
