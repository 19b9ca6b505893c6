"""What changed in a room from one run to the next, and suspected regressions across rooms.

A room's runs (:class:`RoomRun`, oldest first, read from result documents or the collector's
summaries by :func:`room_run`) give its changes (:func:`changes`): a software version, a device
(the camera or microphone a check used), the verdict, and the figures that moved by more than
their declared repeatability (``check.Repeatability``, each figure's source beside it).

Across rooms, :func:`suspected_regressions` lists a figure that got worse in several rooms after
the same software or device change: "speech quality fell in 12 rooms after Microsoft Teams
24.1; 11 of them changed it the same day". Each has a stable ``key`` (figure and change), so an
alert can be raised once and cleared when it is no longer found.

Plain data in, plain data out: the collector's history pages, /fleet and ``aggregate --history``
use the same functions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from readiness.result import parse_utc
from readiness.versions import is_version

# two runs differ beyond chance when the move is larger than this many standard deviations of
# their difference (sqrt(2) x one run's spread): chance alone goes that far in 0.3 % of pairs
MOVED_SIGMAS = 3.0
# a figure that got worse this long after a software or device change is counted against it
AFTER = timedelta(days=7)
AGENT = "readiness"  # the version of the agent that measured, listed among the software


@dataclass
class RoomRun:
    """What the history keeps of one run."""

    run_id: str
    started: datetime
    verdict: str | None  # as judged when stored (PASS, WARN, FAIL, UNKNOWN, PARTIAL); None: not judged
    values: dict[str, float]  # "check.metric" -> number, for the figures followed
    versions: dict[str, str]  # "check.metric" (and "readiness") -> version
    devices: dict[str, str]  # check -> the device's name
    site: str = ""
    room: str = ""
    hostname: str = ""
    bounds: list[dict[str, Any]] = field(default_factory=list)  # the judgement's requirements (digests resolved)


@dataclass(frozen=True)
class Change:
    """One difference between a room's run and the one before it."""

    kind: str  # "version" | "device" | "verdict" | "figure"
    subject: str  # "check.metric" (version, figure), the check (device), "" (verdict)
    before: Any
    after: Any
    run_id: str
    before_run_id: str
    when: datetime
    worse: bool | None = None  # a figure or verdict: True got worse, False better; None: unknown


@dataclass(frozen=True)
class Regression:
    """A figure that got worse in several rooms after the same change."""

    key: str  # stable: "<figure>|<kind>:<subject>=<after>"
    figure: str
    change_kind: str  # "version" | "device"
    subject: str
    after: Any
    rooms: tuple[str, ...]  # the rooms (their keys' readable names) where the figure got worse
    changed_rooms: int  # rooms that made the same change (worse or not)
    same_day: int  # of ``rooms``, most that made the change on one UTC day
    day: str  # that day, YYYY-MM-DD


def _number(v: Any) -> float | None:
    t = type(v)
    if t is int or (t is float and math.isfinite(v)):
        return float(v)
    return None


def room_run(run_id: str, doc: Mapping[str, Any], followed: Iterable[str],
             requirements: Mapping[str, Any] | None = None) -> RoomRun:
    """A run's history record from its document (or the collector's summary of it, whose
    judgement items point into ``requirements`` by digest). Reads dicts only, no model: a room
    of 730 runs is read in a few milliseconds."""
    checks = doc.get("checks") if isinstance(doc.get("checks"), dict) else {}
    values: dict[str, float] = {}
    versions: dict[str, str] = {}
    devices: dict[str, str] = {}
    for cname, rec in checks.items():
        if not isinstance(rec, dict):
            continue
        metrics = rec.get("metrics") if isinstance(rec.get("metrics"), dict) else {}
        for mname, entry in metrics.items():
            v = entry.get("value") if isinstance(entry, dict) else None
            if type(v) is str and is_version(v):
                versions[f"{cname}.{mname}"] = v
        details = rec.get("details") if isinstance(rec.get("details"), dict) else {}
        name = details.get("device")
        if not isinstance(name, str):
            source = details.get("source")
            name = source.get("name") if isinstance(source, dict) else None
        if isinstance(name, str) and name.strip():
            devices[cname] = name.strip()
    for full in followed:
        cname, _, mname = full.partition(".")
        rec = checks.get(cname)
        entry = rec.get("metrics", {}).get(mname) if isinstance(rec, dict) and isinstance(rec.get("metrics"), dict) else None
        v = _number(entry.get("value")) if isinstance(entry, dict) else None
        if v is not None:
            values[full] = v
    tool = doc.get("tool_version")
    if isinstance(tool, str) and is_version(tool):
        versions[AGENT] = tool
    judgement = doc.get("judgement") if isinstance(doc.get("judgement"), dict) else {}
    verdict = judgement.get("verdict") or judgement.get("overall") if judgement else None
    bounds = []
    for item in judgement.get("items") or ():
        req = item.get("requirement") if isinstance(item, dict) else None
        if isinstance(req, str) and requirements is not None:
            req = requirements.get(req)
        if isinstance(req, dict):
            bounds.append(req)
    labels = doc.get("labels") if isinstance(doc.get("labels"), dict) else {}
    host = doc.get("host") if isinstance(doc.get("host"), dict) else {}
    started = doc.get("started_utc")
    return RoomRun(run_id=run_id, started=parse_utc(started) if isinstance(started, str) else datetime.min,
                   verdict=verdict if isinstance(verdict, str) else None, values=values, versions=versions,
                   devices=devices, site=str(labels.get("site", "")), room=str(labels.get("room", "")),
                   hostname=str(host.get("hostname", "")), bounds=bounds)


def history_record(run: RoomRun) -> dict[str, Any]:
    """What the collector keeps of a run for its room's history (``run_history``, a few hundred
    bytes instead of the summary's ~8 kB): everything of ``RoomRun`` but the ids, time, site and
    bounds, which are columns or read from the newest run's summary."""
    return {"verdict": run.verdict, "values": run.values, "versions": run.versions, "devices": run.devices,
            "room": run.room, "hostname": run.hostname}


def from_record(run_id: str, started: datetime, site: str, record: Mapping[str, Any]) -> RoomRun:
    """The ``RoomRun`` of a stored :func:`history_record`."""
    return RoomRun(run_id=run_id, started=started, verdict=record.get("verdict"), values=dict(record.get("values") or {}),
                   versions=dict(record.get("versions") or {}), devices=dict(record.get("devices") or {}),
                   site=site, room=str(record.get("room") or ""), hostname=str(record.get("hostname") or ""))


def directions(requirements: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Which way is better, per metric, as the requirements say: +1 (a ``min``: higher is
    better), -1 (a ``max``: lower is better). A metric with neither, or both ways, is left out."""
    seen: dict[str, set[int]] = defaultdict(set)
    for req in requirements:
        metric = req.get("metric")
        if not isinstance(metric, str):
            continue
        if _number(req.get("min")) is not None:
            seen[metric].add(1)
        if _number(req.get("max")) is not None:
            seen[metric].add(-1)
    return {m: next(iter(d)) for m, d in seen.items() if len(d) == 1}


VERDICT_RANK = {"FAIL": 0, "UNKNOWN": 1, "PARTIAL": 2, "WARN": 3, "PASS": 4}


def moved(before: float, after: float, repeatability: Any) -> bool:
    """True when ``after`` differs from ``before`` by more than chance, as the figure's declared
    repeatability (``check.Repeatability``) puts it: beyond ``MOVED_SIGMAS`` standard deviations
    of the difference of two runs."""
    sd = math.hypot(repeatability.spread(before), repeatability.spread(after))
    return abs(after - before) > MOVED_SIGMAS * sd if sd > 0 else after != before


def changes(runs: list[RoomRun], repeatability: Mapping[str, Any], better: Mapping[str, int]) -> list[Change]:
    """Every difference between consecutive runs of one room (``runs`` oldest first), oldest
    first: versions (one that appears or goes too), devices, the verdict, and each followed
    figure that moved beyond its repeatability (a figure missing from one of the two runs is
    not a move: it was not measured)."""
    out: list[Change] = []
    for prev, run in zip(runs, runs[1:]):
        at = dict(run_id=run.run_id, before_run_id=prev.run_id, when=run.started)
        for name in sorted(prev.versions.keys() | run.versions.keys()):
            a, b = prev.versions.get(name), run.versions.get(name)
            if a != b:
                out.append(Change("version", name, a, b, **at))
        for name in sorted(prev.devices.keys() & run.devices.keys()):  # a check that did not run named none
            a, b = prev.devices[name], run.devices[name]
            if a != b:
                out.append(Change("device", name, a, b, **at))
        if prev.verdict != run.verdict and prev.verdict is not None and run.verdict is not None:
            worse = VERDICT_RANK.get(run.verdict, 1) < VERDICT_RANK.get(prev.verdict, 1)
            out.append(Change("verdict", "", prev.verdict, run.verdict, worse=worse, **at))
        for name, rep in repeatability.items():
            a, b = prev.values.get(name), run.values.get(name)
            if a is None or b is None or not moved(a, b, rep):
                continue
            way = better.get(name)
            out.append(Change("figure", name, a, b, worse=None if way is None else (b - a) * way < 0, **at))
    return out


def suspected_regressions(rooms: Mapping[str, list[Change]], min_rooms: int = 3, after: timedelta = AFTER
                          ) -> list[Regression]:
    """Figures that got worse in at least ``min_rooms`` rooms within ``after`` of the same
    software or device change (the same subject changed to the same value) in that room.
    ``rooms``: each room's changes (:func:`changes`), keyed by a name to show. A figure that got
    worse in many rooms with no change in common is not listed: that is no suspect. Most rooms
    first; each (figure, change) once."""
    changed: dict[tuple[str, str, Any], dict[str, datetime]] = defaultdict(dict)  # change -> room -> when
    hits: dict[tuple[str, str, str, Any], dict[str, datetime]] = defaultdict(dict)  # (figure, change) -> room -> when changed
    for room, found in rooms.items():
        made = [c for c in found if c.kind in ("version", "device") and c.after is not None]
        for c in made:
            changed[(c.kind, c.subject, c.after)].setdefault(room, c.when)
        for fall in (c for c in found if c.kind == "figure" and c.worse):
            for c in made:
                if c.when <= fall.when <= c.when + after:
                    hits[(fall.subject, c.kind, c.subject, c.after)].setdefault(room, c.when)
    out = []
    for (figure, kind, subject, value), where in hits.items():
        if len(where) < min_rooms:
            continue
        per_day: dict[str, int] = defaultdict(int)
        for when in where.values():
            per_day[when.date().isoformat()] += 1
        day, same = max(per_day.items(), key=lambda kv: (kv[1], kv[0]))
        out.append(Regression(key=f"{figure}|{kind}:{subject}={value}", figure=figure, change_kind=kind,
                              subject=subject, after=value, rooms=tuple(sorted(where)),
                              changed_rooms=len(changed[(kind, subject, value)]), same_day=same, day=day))
    return sorted(out, key=lambda r: (-len(r.rooms), r.key))
