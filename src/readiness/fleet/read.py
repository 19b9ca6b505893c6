"""Reading and judging result files for the fleet: one file becomes one record (its labels,
verdicts keyed by requirement, metric values, the few facts step 5 needs), in worker processes
when there are many files; each distinct requirement is built once, not once per file.

A worker sends each judged run back packed (``_Reader._pack``): plain values, its verdicts as
one letter each and its values as a tuple, each in the order of a shape (the requirement keys,
the metric names) that the worker sends once and then names by an id. The parent's
``Unpacker`` turns each shape once into requirement indexes and the fleet's metric names, and
each packed record into the Run that a Run record of the same run would give (``gather``)."""

from __future__ import annotations

import itertools
import math
import os
import sys
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any, Iterable, Iterator

from msgspec import UNSET

from readiness.fleet.files import Why, _unreadable, invalid
from readiness.fleet.model import CANONICAL_STATUS, STATUSES, Run
from readiness.fleet.step5 import facts_of
from readiness.judge.diagnose import reconcile
from readiness.judge.requirements import Profile, Requirement
from readiness.judge.verdicts import Judgement, judge
from readiness.judge.wording import requirement_key
from readiness.plugins import described
from readiness.atomic import NotAFile, read_regular_stat
from readiness.onepass import UNTYPED_DECODER, RawJudgement, clean_struct
from readiness.result import CLOCK_TOLERANCE, MAX_RESULT_BYTES, ResultError, parse_utc, read_result
from readiness.versions import is_version

_MAX_REMEMBERED = 4096  # distinct requirements a reader remembers by their bytes (bounds its memory)
_MAX_SHAPES = 4096  # distinct shapes (below) a worker and the parent remember (bounds their memory)
_MAX_SHAPE_LENGTH = 1000  # a longer shape is sent whole with each run, not remembered
_PACKING_READERS = itertools.count()  # (numbers packing readers: see _Reader.shape_base)
# runs of requirements (a file's, in order) a packing reader remembers, each at most so many
# bytes long: with the requirements kept as they are, their memory stays bounded whatever the files hold
_MAX_RUNS = 256
_MAX_RUN_BYTES = 256 * 1024
# A verdict as one letter in a packed record's verdicts (one string per run, not a dict)
_STATUS_CODE = {s: s[0] for s in STATUSES}
_STATUS_OF_CODE = {s[0]: CANONICAL_STATUS[s] for s in STATUSES}
_STATUS_OF = attrgetter("status")


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

    def note(self, indexes: Iterable[int], profile: str) -> None:
        """``profile`` noted as holding each requirement of ``indexes`` (as ``indexed`` does)."""
        noted = self.noted.setdefault(profile, set())
        for i in set(indexes) - noted:
            self.profiles[i].add(profile)
            noted.add(i)

    def indexed(self, statuses: dict[tuple[Any, ...], str], profile: str) -> dict[int, str]:
        """A run's verdicts keyed by requirement index (each verdict one shared string), its
        profile noted for each (in C loops: 10 000 runs x 40 items)."""
        out = dict(zip(map(self.index.__getitem__, statuses), map(CANONICAL_STATUS.__getitem__, statuses.values())))
        if profile:
            noted = self.noted.setdefault(profile, set())
            for i in out.keys() - noted:
                self.profiles[i].add(profile)
                noted.add(i)
        return out


def _kept(value: Any) -> bool:
    """A measured value the fleet keeps: a number (finite), yes/no, or a version."""
    t = type(value)
    return t is bool or t is int or (t is float and math.isfinite(value)) or (t is str and is_version(value))


def _metric_values(entries: Iterable[tuple[str, str, Any, Any]], units: dict[str, str],
                   names: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """Every number, yes/no or version a run measured, as "check.metric" -> value (the CSV's
    columns), from (check, metric, value, unit) entries. ``names``: one string per name across
    runs (smaller when sent between processes)."""
    values: dict[str, Any] = {}
    names = {} if names is None else names
    for cname, mname, v, unit in entries:
        if _kept(v):
            name = names.get((cname, mname))
            if name is None:
                name = names[(cname, mname)] = f"{cname}.{mname}"
            values[name] = v
            if unit and name not in units:
                units[name] = str(unit)
    return values


def _metric_entries(result: Any) -> Iterator[tuple[str, str, Any, Any]]:
    """(check, metric, value, unit) of each metric of a Result; an entry that is not an object is passed over."""
    for cname, record in result.checks.items():
        metrics = record.metrics
        if type(metrics) is not dict:
            continue
        for mname, entry in metrics.items():
            try:
                yield cname, mname, entry.get("value"), entry.get("unit")
            except AttributeError:
                continue


def _struct_values(doc: Any, units: dict[str, str], names: dict[str, dict[str, str]],
                   known: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """``_metric_values`` of ``onepass.clean_struct``'s typed document (its metrics typed, their
    units text), without building an entry per metric; ``names``: per check, metric -> name;
    ``known``: names whose unit is known already (not put in ``units`` again). ``_kept`` in
    line: the types hold each number finite (msgspec refuses NaN, Infinity and out of range)."""
    values: dict[str, Any] = {}
    for cname, record in doc.checks.items():
        named = names.get(cname)
        if named is None:
            named = names[cname] = {}
        for mname, m in record.metrics.items():
            v = m.value
            t = type(v)
            if t is float or t is int or t is bool or (t is str and is_version(v)):
                name = named.get(mname)
                if name is None:
                    name = named[mname] = f"{cname}.{mname}"
                values[name] = v
                if m.unit and name not in known and name not in units:
                    units[name] = m.unit
    return values


def _started(text: Any, path: str, written: datetime | None) -> Any:
    """A run's start as a datetime, or the reader's skip record: not a date and time, or (by
    ``written``, its file's modification time) a clock ahead."""
    try:
        started = parse_utc(str(text))
        if started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
    except ValueError:
        return ("skip", path, Why("bad_start", f"malformed result (start time {text!r} is not a date and "
                                               "time)", value=repr(text)[:80]), True)
    if written is not None and started - written > CLOCK_TOLERANCE:
        stamp, file_time = started.strftime("%Y-%m-%dT%H:%M:%SZ"), written.strftime("%Y-%m-%dT%H:%M:%SZ")
        minutes = int(CLOCK_TOLERANCE.total_seconds() // 60)
        return ("skip", path, Why("clock_ahead", f"starts at {stamp} by its computer's clock, after its file was "
                                                 f"written ({file_time}; {minutes} minutes are tolerated): that "
                                                 "computer's clock is ahead; not counted",
                                  started=stamp, written=file_time, minutes=minutes), True)
    return started


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class _Reader:
    """Reads one file into a Run whose verdicts are keyed by ``requirement_key``.

    Runs here or in a worker process; each Requirement and unit is passed on once per reader,
    not once per file. Returns ("skip", path, reason, was_a_result) or ("run", run, new
    requirements, new units).
    """

    def __init__(self, profile: Profile | None, service_reporters: tuple[str, ...] | None = None,
                 packed: bool = False) -> None:
        self.profile = profile
        # in a worker process: each judged run as a packed record (``_pack``), which costs a
        # fraction of a Run to send back and to unpack (``Unpacker``)
        self.packed = packed
        self.shapes: dict[tuple[Any, ...], int] = {}  # verdict keys or value names -> its shape id
        # the requirements of a file's items (JSON bytes, in order) -> their keys, their verdict shape id
        self.verdicts_of: dict[tuple[bytes, ...], tuple[tuple[Any, ...], int]] = {}
        # ids told apart across workers (their process ids) and readers (one process may make several)
        self.shape_base = (os.getpid() << 32) + ((next(_PACKING_READERS) & 0xFFFF) << 16) if packed else 0
        # given to a worker process, which need not load the plugins for it
        self.service_reporters = described().service_reporters if service_reporters is None else service_reporters
        self.known: set[tuple[Any, ...]] = set()
        self.units: set[str] = set()
        # one object per distinct requirement key and metric name for all the runs this reader
        # makes: records sent back from a worker process pickle each once, not once per run
        self.keys: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self.names: dict[tuple[str, str], str] = {}
        self.check_names: dict[str, dict[str, str]] = {}  # the same, per check (the one-decode path)
        # each requirement met in a clean file (its JSON bytes) -> (its key, its data)
        self.requirements: dict[bytes, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def __call__(self, path: str) -> tuple[Any, ...]:
        if self.profile is None:  # the usual case: the judgement stored in each file
            record = self._fast(path)
            if record is not None:
                return record
        try:
            result = read_result(path)
            written = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
        except ResultError as exc:
            reason = str(exc)
            return ("skip", path, invalid(reason[len(path) + 2:] if reason.startswith(path + ": ") else reason), False)
        except OSError as exc:  # gone between reading and looking at its time
            return ("skip", path, _unreadable(exc), False)
        return self.from_result(result, path, written)

    def _fast(self, path: str) -> tuple[Any, ...] | None:
        """The record of a clean file with a stored judgement from ONE typed decode
        (``onepass.clean_struct``), without building a Result; None: anything else (a file that
        cannot be read, a document the closed types refuse, no judgement), which takes the
        border's usual path and is read, skipped or refused in its words."""
        try:
            raw, st = read_regular_stat(path, MAX_RESULT_BYTES)
            written = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        except (OSError, NotAFile):
            return None
        clean = clean_struct(raw)
        return None if clean is None else self._record(*clean, path, written)

    def from_result(self, result: Any, path: str, written: datetime | None = None) -> tuple[Any, ...]:
        """The record of a Result already read (from a file, or from the collector's database).
        ``written``: when its file was last modified; a start later than that (by more than
        ``CLOCK_TOLERANCE``) is a clock ahead, and the run is skipped: it would otherwise stay its
        room's newest until that date and hide every later failure."""
        run_id = result.run_id if isinstance(result.run_id, str) else ""
        if not run_id:
            return ("skip", path, Why("no_run_id", "malformed result (no run_id)"), True)
        started = _started(result.started_utc, path, written)
        if type(started) is tuple:
            return started
        new: dict[tuple[Any, ...], Requirement] = {}
        try:
            if self.profile is not None:
                # each check's requirements are judged where that check ran; the room's state
                # takes every check from its latest run (see collect)
                j = reconcile(result, judge(result, self.profile, only_checks=set(result.checks)))
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
        host = result.host if isinstance(result.host, dict) else {}
        labels = result.labels if isinstance(result.labels, dict) else {}
        units: dict[str, str] = {}
        values = _metric_values(_metric_entries(result), units, self.names)
        return self._run(path, run_id, started, new, values, units, host,
                         (_text(labels.get("site")), _text(labels.get("room")), _text(labels.get("label"))),
                         name, overall, statuses, tuple(c for c in result.checks if isinstance(c, str)), needed,
                         facts_of(result, self.profile.summary() if self.profile is not None else
                                  (result.judgement or {}).get("profile"), self.service_reporters))

    def _record(self, doc: Any, requirements: list[bytes], path: str, written: datetime | None
                ) -> tuple[Any, ...] | None:
        """``from_result`` for a document checked by ``onepass.clean_struct`` and its stored
        judgement (``requirements``: each item's requirement, JSON bytes): the same record, read
        from the typed structure, whose types already hold what ``from_result`` checks (the run
        id, each verdict, the judgement's shape). None: it holds no judgement (``from_result`` says so)."""
        j = doc.judgement
        if not isinstance(j, RawJudgement):
            return None
        started = _started(doc.started_utc, path, written)
        if type(started) is tuple:
            return started
        new: dict[tuple[Any, ...], Requirement] = {}
        # the items' requirements met before in this order (a packing reader): their keys and
        # verdict shape as then, every key known (sent) already
        same = self.verdicts_of.get(tuple(requirements)) if self.packed else None
        codes: str | None = None
        verdict_shape = None
        statuses: Any = {}
        if same is not None:
            keys, verdict_shape = same
            try:  # the verdicts' letters (``_pack``), and only their keys: no dict of them
                codes = "".join(map(_STATUS_CODE.__getitem__, map(_STATUS_OF, j.items)))
                statuses = keys
            except KeyError:  # a verdict without a letter: a Run record, from the dict
                statuses = dict(zip(keys, map(_STATUS_OF, j.items)))
        else:
            read, known = self.requirements, self.known
            for item, req in zip(j.items, requirements):
                hit = read.get(req)
                if hit is None:  # as _stored reads it, from the JSON
                    data = UNTYPED_DECODER.decode(req)
                    key = stored_key(data)
                    hit = (self.keys.setdefault(key, key), data)
                    if len(read) < _MAX_REMEMBERED:
                        read[req] = hit
                key = hit[0]
                if key not in known and key not in new:
                    new[key] = Requirement.from_dict(hit[1])
                statuses[key] = item.status
        labels = doc.labels
        prof = j.profile
        units: dict[str, str] = {}
        values = _struct_values(doc, units, self.check_names, self.units)
        record = self._run(path, doc.run_id, started, new, values, units, doc.host,
                           (_text(labels.site), _text(labels.room), _text(labels.label)),
                           _text(prof.get("name")), j.overall, statuses, tuple(doc.checks),
                           tuple(j.coverage.needed) if j.coverage is not UNSET else (),
                           facts_of(doc, prof, self.service_reporters), verdict_shape, codes)
        if same is None and record[0] == "packed" and len(self.verdicts_of) < _MAX_RUNS and \
                sum(map(len, requirements)) <= _MAX_RUN_BYTES:
            shape = record[13]  # (its id, the keys) when sent first; one key per item (none twice)
            if type(shape) is tuple and shape[0] is not None and len(shape[1]) == len(requirements):
                self.verdicts_of[tuple(requirements)] = (shape[1], shape[0])
        return record

    def _run(self, path: str, run_id: str, started: datetime, new: dict[tuple[Any, ...], Requirement],
             values: dict[str, Any], units: dict[str, str], host: dict[str, Any], labels: tuple[str, str, str],
             name: str, overall: str, statuses: dict[Any, str], checks: tuple[str, ...], needed: tuple[str, ...],
             facts: dict[str, Any], verdict_shape: int | None = None, codes: str | None = None
             ) -> tuple[Any, ...]:
        """The reader's record of a judged run (``labels``: site, room, label; ``units``: of its
        values; ``verdict_shape``: the id of its verdicts' shape, when known; ``codes``: then
        its verdicts' letters, and ``statuses`` only their keys, in order: it is packed)."""
        self.known.update(new)
        new_units = {k: v for k, v in units.items() if k not in self.units}
        self.units.update(new_units)
        site, room, label = labels
        needed = needed or tuple(dict.fromkeys(k[0].partition(".")[0] for k in statuses))
        if self.packed:
            record = self._pack(path, run_id, started, _text(host.get("hostname")), site, room, label, name, overall,
                                checks, needed, facts, statuses, values, new, new_units, verdict_shape, codes)
            if record is not None:
                return record
        run = Run(path=path, run_id=run_id, started=started, hostname=_text(host.get("hostname")),
                  site=site, room=room, label=label,
                  profile=name, overall=overall, statuses=statuses, values=values, checks=checks,
                  needed=needed, facts=facts)
        return ("run", run, new, new_units)

    def _shape(self, keys: tuple[Any, ...]) -> Any:
        """A shape's id when this reader sent it before, else (its id or None, the shape)."""
        sid = self.shapes.get(keys)
        if sid is not None:
            return sid
        if len(self.shapes) >= _MAX_SHAPES or len(keys) > _MAX_SHAPE_LENGTH:
            return (None, keys)
        sid = self.shapes[keys] = self.shape_base + len(self.shapes)
        return (sid, keys)

    def _pack(self, path: str, run_id: str, started: datetime, hostname: str, site: str, room: str, label: str,
              name: str, overall: str, checks: tuple[str, ...], needed: tuple[str, ...], facts: dict[str, Any],
              statuses: dict[Any, str], values: dict[str, Any], new: dict[tuple[Any, ...], Requirement],
              new_units: dict[str, str], verdict_shape: int | None = None, codes: str | None = None
              ) -> tuple[Any, ...] | None:
        """A judged run as plain values, its verdicts and its values each as a shape (the
        requirement keys, the metric names: sent once per worker, then by an id: a fleet's runs
        share a few) and the verdicts' letters or the values in that order. None: a verdict
        that is not one of the four (a Run record then carries it as it is)."""
        if codes is None:
            try:
                codes = "".join(map(_STATUS_CODE.__getitem__, statuses.values()))
            except (KeyError, TypeError):
                return None
        return ("packed", path, run_id, started, hostname, site, room, label, name, overall, checks, needed, facts,
                self._shape(tuple(statuses)) if verdict_shape is None else verdict_shape, codes,
                self._shape(tuple(values)), tuple(values.values()), new,
                new_units)

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
            key = stored_key(req)
            key = self.keys.setdefault(key, key)
            if key not in self.known and key not in new:
                new[key] = Requirement.from_dict(req)
            status = item["status"]
            statuses[key] = CANONICAL_STATUS.get(status, status) if type(status) is str else status
        return data["overall"], name, statuses


def stored_key(req: dict[str, Any]) -> tuple[Any, ...]:
    """A stored judgement's requirement (its JSON form) as the fleet tells requirements apart."""
    return (req["metric"], req["severity"], req.get("min"), req.get("max"), req.get("expect"),
            req.get("min_version"), req.get("service"))


_WORKER_READER: _Reader | None = None


def _worker_start(profile: Profile | None, service_reporters: tuple[str, ...]) -> None:
    global _WORKER_READER
    _WORKER_READER = _Reader(profile, service_reporters, packed=True)


def _worker_read(path: str) -> tuple[Any, ...]:
    assert _WORKER_READER is not None
    return _WORKER_READER(path)


class Unpacker:
    """The parent's side of packed records (``_Reader._pack``): each shape turned once into what
    ``gather`` keeps (requirement indexes, the fleet's one string per metric name), and each
    packed record into the Run that ``gather`` would make of the same run's Run record."""

    def __init__(self, registry: _Registry, names: dict[str, str]) -> None:
        self.registry = registry
        self.names = names
        self.verdict_shapes: dict[int, tuple[tuple[int, ...], set[str]]] = {}  # and the profiles noted
        self.value_shapes: dict[int, tuple[str, ...]] = {}

    def shapes(self, record: tuple[Any, ...]) -> tuple[tuple[tuple[int, ...], set[str]], tuple[str, ...]]:
        """A packed record's shapes (its verdicts': the requirement indexes and the profiles
        noted for them; its values': the metric names), kept when it sends one first. Called
        for every packed record, a duplicate too: a later record may name its shapes by id."""
        verdict_shape, value_shape = record[13], record[15]
        if type(verdict_shape) is tuple:
            sid, keys = verdict_shape
            verdicts = (tuple(map(self.registry.index.__getitem__, keys)), set())
            if sid is not None:  # (each worker sends at most _MAX_SHAPES with an id)
                self.verdict_shapes[sid] = verdicts
        else:
            verdicts = self.verdict_shapes[verdict_shape]
        if type(value_shape) is tuple:
            sid, keys = value_shape
            metric_names = tuple(map(self.names.setdefault, keys, keys))
            if sid is not None:
                self.value_shapes[sid] = metric_names
        else:
            metric_names = self.value_shapes[value_shape]
        return verdicts, metric_names

    def run(self, record: tuple[Any, ...], shapes: tuple[tuple[tuple[int, ...], set[str]], tuple[str, ...]]) -> Run:
        """The Run of a packed record (``shapes``: its ``shapes``), its verdicts keyed by
        requirement index and its profile noted for each (``_Registry.indexed``), its metric
        names the fleet's (``gather``)."""
        (_, path, run_id, started, hostname, site, room, label, name, overall, checks, needed, facts,
         _, codes, _, values, _, _) = record
        (indexes, noted), metric_names = shapes
        if name and name not in noted:
            self.registry.note(indexes, name)
            noted.add(name)
        # its verdicts and values stay packed until ``fill``: most runs are superseded (by later
        # runs of their room) before anything reads them, and are dropped without being unpacked
        return Run(path=path, run_id=run_id, started=started, hostname=hostname, site=site, room=room, label=label,
                   profile=name, overall=CANONICAL_STATUS[overall], statuses=_Packed((indexes, codes)),
                   values=_Packed((metric_names, values)), checks=checks, needed=needed, facts=facts)

    @staticmethod
    def fill(runs: Iterable[Run]) -> None:
        """The verdicts (by requirement index) and values (by the fleet's metric names) of each
        run that ``run`` left packed, as the dicts ``gather`` keeps."""
        for r in runs:
            if type(r.statuses) is _Packed:
                indexes, codes = r.statuses
                r.statuses = dict(zip(indexes, map(_STATUS_OF_CODE.__getitem__, codes)))
            if type(r.values) is _Packed:
                metric_names, values = r.values
                r.values = dict(zip(metric_names, values))


class _Packed(tuple):
    """A run's verdicts or values not unpacked yet (``Unpacker.run``, ``Unpacker.fill``)."""

    __slots__ = ()


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
        # the schema is not compiled ahead (``prepare_border``): a clean file never needs it (the
        # one decode), and a worker compiles it on the first file that takes the full path
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                     initializer=_worker_start,
                                     initargs=(profile, described().service_reporters)) as pool:
                # big chunks: fewer round trips, each costing the parent (its pool threads) more
                # than the records; small enough that the workers end together
                chunk = max(8, min(128, len(files) // (workers * 8)))
                for record in pool.map(_worker_read, files, chunksize=chunk):
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
