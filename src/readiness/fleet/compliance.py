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


def compliance(rows: Iterable[tuple[str, str, str, str, str, float, str | None]], now: datetime,
               after_s: float = NOT_REPORTING_AFTER_S, windows: tuple[int, ...] = WINDOWS) -> dict[str, Any]:
    """Per site the state counts of each of the last ``max(windows)`` days and the share of
    rooms ready over each window; per room its days counted and ready over each window. ``rows``
    in order of room, then day (see the module's docstring)."""
    span = max(windows)
    today = now.astimezone(timezone.utc).date()
    dates = [today - timedelta(days=span - 1 - i) for i in range(span)]
    ends = [_end_of(d, now).timestamp() for d in dates]  # times as seconds: compared a million times
    days = [d.isoformat() for d in dates]  # rows carry their day as YYYY-MM-DD: compared as text
    per_site: dict[str, list[Counter]] = {}
    rooms: list[dict[str, Any]] = []

    def finish(key: str, site: str, room: str, host: str, runs: list[tuple[str, float, str]]) -> None:
        if key.startswith(BROWSER_PREFIXES) or not runs:
            return
        counts = per_site.setdefault(site, [Counter() for _ in days])
        states: list[str | None] = []
        j, n = -1, len(runs)  # j: index of the newest run by the day being looked at
        for i, d in enumerate(days):
            while j + 1 < n and runs[j + 1][0] <= d:
                j += 1
            if j < 0:
                states.append(None)
                continue
            _, started, group = runs[j]
            state = "not_reporting" if ends[i] - started > after_s else group
            states.append(state)
            counts[i][state] += 1
        entry: dict[str, Any] = {"site": site, "room": room, "hostname": "" if room else host}
        for w in windows:
            counted = [s for s in states[span - w:] if s is not None]
            ready = counted.count("ready")
            entry[f"days_{w}"] = len(counted)
            entry[f"ready_{w}"] = ready
            entry[f"ready_pct_{w}"] = round(100.0 * ready / len(counted), 1) if counted else None
        if any(s is not None for s in states):
            rooms.append(entry)

    current: tuple[str, str, str, str] | None = None
    runs: list[tuple[str, float, str]] = []
    for key, site, room, host, day, started, verdict in rows:
        if current is None or key != current[0]:
            if current is not None:
                finish(*current, runs)
            current, runs = (key, site, room, host), []
        runs.append((day, started, group_of(verdict)))
    if current is not None:
        finish(*current, runs)

    sites = []
    for name in sorted(per_site, key=lambda s: (s == "", s.casefold())):
        counts = per_site[name]
        points = []
        for d, c in zip(days, counts):
            total = sum(c.values())
            points.append({"day": d, "rooms": total, **{g: c[g] for g in GROUPS},
                           "ready_pct": round(100.0 * c["ready"] / total, 1) if total else None})
        entry = {"site": name, "days": points}
        for w in windows:
            part = counts[span - w:]
            total = sum(sum(c.values()) for c in part)
            entry[f"ready_pct_{w}"] = round(100.0 * sum(c["ready"] for c in part) / total, 1) if total else None
        sites.append(entry)
    rooms.sort(key=lambda r: (r["site"] == "", r["site"].casefold(), r["room"].casefold(), r["hostname"].casefold()))
    return {"windows": list(windows), "first_day": days[0], "last_day": today.isoformat(),
            "not_reporting_after_s": after_s, "sites": sites, "rooms": rooms}


def day_rows(latest_per_day: dict[tuple[str, ...], dict[date, tuple[datetime, str, str | None]]],
             labels: dict[tuple[str, ...], tuple[str, str, str]]) -> Iterator[tuple[str, str, str, str, str, float, str | None]]:
    """The rows ``compliance`` reads, from what ``collect.gather`` kept of files: per room key
    (``Run.key``), per day its last run's (started, run id, verdict); ``labels``: site, room, hostname."""
    for key in sorted(latest_per_day):
        site, room, host = labels[key]
        name = "\x1f".join(key)
        for day in sorted(latest_per_day[key]):
            started, _, verdict = latest_per_day[key][day]
            yield name, site, room, host, day.isoformat(), started.timestamp(), verdict


def over_time(fleet: Any, now: datetime, after_s: float = NOT_REPORTING_AFTER_S,
              rows: Iterable[tuple[str, str, str, str, str, float, str | None]] | None = None) -> datetime:
    """Judge ``fleet`` at ``now``: which rows are not reporting, and its compliance (from
    ``rows``, or from the days ``collect`` kept of files). Returns when the answer next changes
    by time alone (a row crossing the age, or a new UTC day), so a cached fleet is judged again then."""
    fleet.now, fleet.not_reporting_after = now, after_s
    nxt = None
    if not fleet.all_runs:  # with every run, each row is a run, not a room's standing state
        nxt = mark_not_reporting(fleet.runs, now, after_s)
        # a silent room right after the failing ones, as the rows are ordered in ``collect.gather``
        fleet.runs.sort(key=lambda r: (0.5 if r.silent else STATUS_RANK[r.verdict], r.site.casefold(),
                                       r.room.casefold(), r.hostname.casefold(), r.started))
    fleet.recheck = None
    fleet.compliance = compliance(day_rows(fleet.room_days, fleet.room_labels) if rows is None else rows, now, after_s)
    midnight = datetime.combine(now.astimezone(timezone.utc).date() + timedelta(days=1), time(0), tzinfo=timezone.utc)
    fleet.recheck = midnight if nxt is None or nxt > midnight else nxt
    return fleet.recheck
