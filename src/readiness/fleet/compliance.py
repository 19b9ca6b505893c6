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

from bisect import bisect_right
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
    # silent: started before ``now - step`` (the same as ``silent`` when the age is whole microseconds)
    exact = step.total_seconds() == after_s
    cut = now - step
    for r in runs:
        r.silent = r.started < cut if exact else silent(r.started, now, after_s)
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
    tally = Tally(now, after_s, windows)
    for key, runs in per_room(rows):
        tally.put(key, runs, labels.get(key))
    return tally.result(now)


def per_room(rows: Iterable[tuple[str, str, float, str | None]]) -> Iterator[tuple[str, list[tuple[str, float, str | None]]]]:
    """``rows`` (in order of room, then day) as (room key, [(day, started, verdict), ...])."""
    current: str | None = None
    runs: list[tuple[str, float, str | None]] = []
    for key, day, started, verdict in rows:
        if key != current:
            if current is not None:
                yield current, runs
            current, runs = key, []
        runs.append((day, started, verdict))
    if current is not None:
        yield current, runs


_NOT_YET = 4  # a day before the room's first run: not counted (a past day's state, in ``Tally``)
_FILL = [bytes([state]) for state in range(5)]
_STATE_OF = {v: _STATE[group_of(v)] for v in ("PASS", "WARN", "FAIL", "UNKNOWN", "PARTIAL", None)}


class Tally:
    """The compliance of the last days, kept room by room so that it can follow the fleet: a
    room whose runs changed is put again (``put``) and only its own days are counted again;
    the others stay as they were. The days before today are fixed once the day is (their ends
    are midnights); today's state of each room (its newest run, or not reporting) is taken at
    the time asked (``result``). Good for one UTC day (``today``) and one not-reporting age:
    a new day needs a new tally. Memory: per room its past days' states as bytes, not its runs."""

    def __init__(self, now: datetime, after_s: float = NOT_REPORTING_AFTER_S, windows: tuple[int, ...] = WINDOWS) -> None:
        self.after_s, self.windows = after_s, windows
        self.span = span = max(windows)
        self.today = now.astimezone(timezone.utc).date()
        dates = [self.today - timedelta(days=span - 1 - i) for i in range(span)]
        self.days = [d.isoformat() for d in dates]  # rows carry their day as YYYY-MM-DD: compared as text
        # the ends of the days before today (midnights), as seconds: compared a million times
        self.ends = [datetime.combine(d + timedelta(days=1), time(0), tzinfo=timezone.utc).timestamp() for d in dates[:-1]]
        self.index = {d: i for i, d in enumerate(self.days[:-1])}
        # room key -> (site, room, hostname, past states, newest run's start, its state); None: not counted
        self.rooms: dict[str, tuple[str, str, str, bytes, float, int] | None] = {}
        self.site_of: dict[str, str] = {}  # room key -> its site (counted or not)
        self.members: Counter = Counter()  # site -> room keys put for it (a site with none is not listed)
        self.patterns: dict[str, Counter] = {}  # site -> Counter of its counted rooms' past states

    def put(self, key: str, runs: list[tuple[str, float, str | None]], label: tuple[str, str, str] | None) -> None:
        """Room ``key``'s runs by day (oldest first: ``(day, started, verdict)``, its last run of
        each day, and first its newest run before the days looked at) and its labels (None: not a
        room the fleet knows), instead of what it had."""
        self.drop(key)
        if key.startswith(BROWSER_PREFIXES) or not runs or label is None:
            return
        site, room, host = label
        self.site_of[key] = site
        self.members[site] += 1
        patterns = self.patterns.setdefault(site, Counter())
        after_s, last, ends = self.after_s, self.span - 1, self.ends
        first, today, index = self.days[0], self.days[-1], self.index
        starts = []  # each run's first day (index) among the days before today; the runs before them: 0
        for d, _, _ in runs:
            if d > today:
                break  # a day ahead (a clock ahead by a little): not counted yet
            starts.append(0 if d < first else index.get(d, last))
        if not starts:  # no run by today: the room is not counted (its site is still listed)
            self.rooms[key] = None
            return
        # each run holds the days from its own to the next run's: its state, then (once the end of a
        # day is more than the age after its start) not reporting; the days before the first, not yet
        past = bytearray(_FILL[_NOT_YET] * last)
        n = len(starts)
        for j, lo in enumerate(starts):
            hi = starts[j + 1] if j + 1 < n else last
            if hi <= lo:
                continue
            started = runs[j][1]
            k = bisect_right(ends, started + after_s, lo, hi)  # then exactly as the definition compares
            while k > lo and ends[k - 1] - started > after_s:
                k -= 1
            while k < hi and not ends[k] - started > after_s:
                k += 1
            past[lo:k] = _FILL[_STATE_OF.get(runs[j][2], 2)] * (k - lo)
            past[k:hi] = _FILL[_NOT_REPORTING] * (hi - k)
        states = bytes(past)
        self.rooms[key] = (site, room, host, states, runs[n - 1][1], _STATE_OF.get(runs[n - 1][2], 2))
        patterns[states] += 1

    def drop(self, key: str) -> None:
        """Room ``key`` out of the tally (it had no runs left)."""
        if key not in self.site_of:
            return
        site = self.site_of.pop(key)
        entry = self.rooms.pop(key, None)
        if entry is not None:
            patterns = self.patterns[site]
            patterns[entry[3]] -= 1
            if not patterns[entry[3]]:
                del patterns[entry[3]]
        self.members[site] -= 1
        if not self.members[site]:
            del self.members[site]
            del self.patterns[site]

    def result(self, now: datetime) -> dict[str, Any]:
        """The compliance at ``now`` (a time of the tally's day), as ``compliance`` gives it."""
        span, windows, after_s = self.span, self.windows, self.after_s
        days = self.days
        end = _end_of(self.today, now).timestamp()
        per_site: dict[str, list[list[int]]] = {}
        for site, patterns in self.patterns.items():
            counts = per_site[site] = [[0, 0, 0, 0] for _ in days]
            for states, times in patterns.items():
                for c, state in zip(counts, states):
                    if state != _NOT_YET:
                        c[state] += times
        for site in self.members:
            per_site.setdefault(site, [[0, 0, 0, 0] for _ in days])
        rooms: list[dict[str, Any]] = []
        names = [(span - w, f"days_{w}", f"ready_{w}", f"ready_pct_{w}") for w in windows]
        for entry in self.rooms.values():
            if entry is None:
                continue
            site, room, host, past, started, state = entry
            now_state = _NOT_REPORTING if end - started > after_s else state
            per_site[site][-1][now_state] += 1
            out: dict[str, Any] = {"site": site, "room": room, "hostname": "" if room else host}
            for first, days_w, ready_w, pct_w in names:
                part = past[first:]
                counted = len(part) + 1 - part.count(_NOT_YET)
                ready = part.count(0) + (now_state == 0)
                out[days_w] = counted
                out[ready_w] = ready
                out[pct_w] = round(100.0 * ready / counted, 1) if counted else None
            rooms.append(out)

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
        return {"windows": list(windows), "first_day": days[0], "last_day": self.today.isoformat(),
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
              days: tuple[Iterable[tuple[str, str, float, str | None]], dict[str, tuple[str, str, str]]] | None = None,
              comp: dict[str, Any] | None = None) -> datetime:
    """Judge ``fleet`` at ``now``: which rows are not reporting, and its compliance (from
    ``days``: rows and labels, or from the days ``collect`` kept of files; ``comp``: computed
    already, at ``now``). Returns when the answer next changes
    by time alone (a row crossing the age, or a new UTC day), so a cached fleet is judged again then."""
    fleet.now, fleet.not_reporting_after = now, after_s
    nxt = None
    if not fleet.all_runs:  # with every run, each row is a run, not a room's standing state
        nxt = mark_not_reporting(fleet.runs, now, after_s)
        # a silent room right after the failing ones, as the rows are ordered in ``collect.gather``
        fleet.runs.sort(key=lambda r: (0.5 if r.silent else STATUS_RANK[r.verdict], r.site.casefold(),
                                       r.room.casefold(), r.hostname.casefold(), r.started))
    fleet.recheck = None
    if comp is None:
        rows, labels = day_rows(fleet.room_days, fleet.room_labels) if days is None else days
        comp = compliance(rows, labels, now, after_s)
    fleet.compliance = comp
    midnight = datetime.combine(now.astimezone(timezone.utc).date() + timedelta(days=1), time(0), tzinfo=timezone.utc)
    fleet.recheck = midnight if nxt is None or nxt > midnight else nxt
    return fleet.recheck
