"""The fleet over time: each room's state per UTC day, compliance per site over the last 30 and
90 days, and "not reporting" as a state of its own. Pure functions; read by ``collect`` (files),
``collector.fleetdb`` (the database's ``room_days`` table) and ``figures``.

A room's state on a day (UTC) is its state at the end of that day (for today: now):

- the verdict of its newest run started by then: ready (PASS, WARN), not ready (FAIL) or
  unknown (UNKNOWN, PARTIAL); on a day with runs that is the verdict of the day's last run;
- **not reporting** when that newest run started longer ago than the not-reporting age
  (``serve --not-reporting-after``, ``aggregate --not-reporting-after``; 3 days by default):
  an agent that went silent is a fault, not "ready as last seen";
- before its first run the room is not counted (it was not in the fleet yet).

So a day without a run carries the last state forward until the room counts as not reporting.
A site's share of a day is its rooms ready that day over its rooms counted that day; a room's
share is its days ready over its days counted (of the last 30 or 90). Browser self-tests are a
moment's test of one person's device, not a room's standing state: they are not counted here.

Input rows come per room, oldest day first, one per day the room ran (its last run that day):
``(key, site, room, hostname, day, started, verdict)``, the day as ``YYYY-MM-DD`` (UTC) and the
start in seconds since the epoch. Memory holds one room's rows at a time,
the per-site day counts and one small entry per room.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Iterator

from readiness.fleet.model import STATUS_RANK
from readiness.judge.verdicts import FAIL, READY

NOT_REPORTING_AFTER_S = 3 * 86400.0  # the default not-reporting age
WINDOWS = (30, 90)  # days of compliance shown
GROUPS = ("ready", "not_ready", "unknown", "not_reporting")
BROWSER_PREFIXES = ("browser room", "browser")  # ``Run.key``'s first part for browser self-tests


def group_of(verdict: str | None) -> str:
    """A run's verdict as one of the fleet's groups (as ``Run.verdict_group``)."""
    return "ready" if verdict in READY else "not_ready" if verdict == FAIL else "unknown"


def silent(started: datetime, now: datetime, after_s: float) -> bool:
    """Whether a room whose newest run started at ``started`` counts as not reporting at ``now``."""
    return (now - started).total_seconds() > after_s


def mark_not_reporting(runs: Iterable[Any], now: datetime, after_s: float) -> datetime | None:
    """Set each fleet row's ``silent`` (its newest run older than ``after_s`` at ``now``); the
    next time a row crosses that age (None: none will), so a cached fleet knows when to look again."""
    step = timedelta(seconds=after_s)
    nxt: datetime | None = None
    for r in runs:
        r.silent = silent(r.started, now, after_s)
        if not r.silent:
            when = r.started + step
            nxt = when if nxt is None or when < nxt else nxt
    return nxt


def lookback_days(after_s: float) -> int:
    """Days before a window's first day whose runs can still carry into it."""
    return int(after_s // 86400) + 2


def _end_of(day: date, now: datetime) -> datetime:
    return min(now, datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc))


_STATE = {"ready": 0, "not_ready": 1, "unknown": 2}  # GROUPS' indexes; not reporting is 3
_NOT_REPORTING = 3


def compliance(rows: Iterable[tuple[str, str, float, str | None]], labels: dict[str, tuple[str, str, str]],
               now: datetime, after_s: float = NOT_REPORTING_AFTER_S, windows: tuple[int, ...] = WINDOWS
               ) -> dict[str, Any]:
    """Per site the state counts of each of the last ``max(windows)`` days and the share of
    rooms ready over each window; per room its days counted and ready over each window. ``rows``
    in order of room, then day (see the module's docstring); ``labels``: each room key's site,
    room and hostname (as its newest run says them)."""
    span = max(windows)
    today = now.astimezone(timezone.utc).date()
    dates = [today - timedelta(days=span - 1 - i) for i in range(span)]
    ends = [_end_of(d, now).timestamp() for d in dates]  # times as seconds: compared a million times
    days = [d.isoformat() for d in dates]  # rows carry their day as YYYY-MM-DD: compared as text
    per_site: dict[str, list[list[int]]] = {}  # per day: rooms ready, not ready, unknown, not reporting
    rooms: list[dict[str, Any]] = []
    state_of = {v: _STATE[group_of(v)] for v in ("PASS", "WARN", "FAIL", "UNKNOWN", "PARTIAL", None)}
    steps = list(zip(range(span), days, ends))

    def finish(key: str, runs: list[tuple[str, float, int]]) -> None:
        if key.startswith(BROWSER_PREFIXES) or not runs or key not in labels:
            return
        site, room, host = labels[key]
        counts = per_site.get(site)
        if counts is None:
            counts = per_site[site] = [[0, 0, 0, 0] for _ in days]
        states: list[int] = []
        j, n = -1, len(runs)  # j: index of the newest run by the day being looked at
        for i, d, end in steps:
            while j + 1 < n and runs[j + 1][0] <= d:
                j += 1
            if j < 0:
                states.append(-1)  # not in the fleet yet
                continue
            run = runs[j]
            state = _NOT_REPORTING if end - run[1] > after_s else run[2]
            states.append(state)
            counts[i][state] += 1
        if states[-1] == -1:
            return
        entry: dict[str, Any] = {"site": site, "room": room, "hostname": "" if room else host}
        for w in windows:
            part = states[span - w:]
            counted = len(part) - part.count(-1)
            ready = part.count(0)
            entry[f"days_{w}"] = counted
            entry[f"ready_{w}"] = ready
            entry[f"ready_pct_{w}"] = round(100.0 * ready / counted, 1) if counted else None
        rooms.append(entry)

    current: str | None = None
    runs: list[tuple[str, float, int]] = []
    for key, day, started, verdict in rows:
        if key != current:
            if current is not None:
                finish(current, runs)
            current, runs = key, []
        runs.append((day, started, state_of.get(verdict, 2)))
    if current is not None:
        finish(current, runs)

    sites = []
    for name in sorted(per_site, key=lambda s: (s == "", s.casefold())):
        counts = per_site[name]
        points = []
        for d, c in zip(days, counts):
            total = sum(c)
            points.append({"day": d, "rooms": total, **dict(zip(GROUPS, c)),
                           "ready_pct": round(100.0 * c[0] / total, 1) if total else None})
        entry = {"site": name, "days": points}
        for w in windows:
            part = counts[span - w:]
            total = sum(sum(c) for c in part)
            entry[f"ready_pct_{w}"] = round(100.0 * sum(c[0] for c in part) / total, 1) if total else None
        sites.append(entry)
    rooms.sort(key=lambda r: (r["site"] == "", r["site"].casefold(), r["room"].casefold(), r["hostname"].casefold()))
    return {"windows": list(windows), "first_day": days[0], "last_day": today.isoformat(),
            "not_reporting_after_s": after_s, "sites": sites, "rooms": rooms}


def day_rows(latest_per_day: dict[tuple[str, ...], dict[date, tuple[datetime, str, str | None]]],
             labels: dict[tuple[str, ...], tuple[str, str, str]]
             ) -> tuple[Iterator[tuple[str, str, float, str | None]], dict[str, tuple[str, str, str]]]:
    """The rows and labels ``compliance`` reads, from what ``collect.gather`` kept of files: per
    room key (``Run.key``), per day its last run's (started, run id, verdict); ``labels``: site,
    room, hostname of its newest run."""
    def rows() -> Iterator[tuple[str, str, float, str | None]]:
        for key in sorted(latest_per_day, key="\x1f".join):
            name = "\x1f".join(key)
            for day in sorted(latest_per_day[key]):
                started, _, verdict = latest_per_day[key][day]
                yield name, day.isoformat(), started.timestamp(), verdict

    return rows(), {"\x1f".join(k): v for k, v in labels.items()}


def over_time(fleet: Any, now: datetime, after_s: float = NOT_REPORTING_AFTER_S,
              days: tuple[Iterable[tuple[str, str, float, str | None]], dict[str, tuple[str, str, str]]] | None = None
              ) -> datetime:
    """Judge ``fleet`` at ``now``: which rows are not reporting, and its compliance (from
    ``days``: rows and labels, or from the days ``collect`` kept of files). Returns when the answer next changes
    by time alone (a row crossing the age, or a new UTC day), so a cached fleet is judged again then."""
    fleet.now, fleet.not_reporting_after = now, after_s
    nxt = None
    if not fleet.all_runs:  # with every run, each row is a run, not a room's standing state
        nxt = mark_not_reporting(fleet.runs, now, after_s)
        # a silent room right after the failing ones, as the rows are ordered in ``collect.gather``
        fleet.runs.sort(key=lambda r: (0.5 if r.silent else STATUS_RANK[r.verdict], r.site.casefold(),
                                       r.room.casefold(), r.hostname.casefold(), r.started))
    fleet.recheck = None
    rows, labels = day_rows(fleet.room_days, fleet.room_labels) if days is None else days
    fleet.compliance = compliance(rows, labels, now, after_s)
    midnight = datetime.combine(now.astimezone(timezone.utc).date() + timedelta(days=1), time(0), tzinfo=timezone.utc)
    fleet.recheck = midnight if nxt is None or nxt > midnight else nxt
    return fleet.recheck
