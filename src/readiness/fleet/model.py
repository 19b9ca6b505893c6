"""What the fleet keeps: each room's row (:class:`Run`), the whole (:class:`Fleet`), the files it
skipped (:class:`Skipped`), and the verdict order. Plain data; read by ``collect``, ``read``,
``figures``, ``step5`` and ``page``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from readiness.judge.requirements import Requirement
from readiness.judge.verdicts import FAIL, PARTIAL, PASS, READY, UNKNOWN, WARN

FLEET_KIND = "readiness-fleet"
# 1: first version. 2: a site room's "failing" is a list of {label, status, units} (FAIL, then WARN,
# then UNKNOWN, counted apart) instead of labels; "tiles" and "apart" (the organisation's agent
# rows, and browser/partner rows counted apart); step5 "ready_before", "combination", and per
# action "ready_after", "together_with", "failing"; a partner site's "not_measured".
FLEET_SCHEMA_VERSION = 2
MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any result (a snapshot is ~100 kB); guards memory
NOT_REPORTING = "NOT_REPORTING"  # a row's verdict when its newest run is older than the not-reporting age
STATUSES = (PASS, WARN, FAIL, UNKNOWN)
STATUS_RANK = {FAIL: 0, UNKNOWN: 1, PARTIAL: 2, WARN: 3, PASS: 4}
# each status word as the one shared string: rows read from many files or records hold it, not a copy each
CANONICAL_STATUS = {s: s for s in STATUSES}


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
    # Its newest run is older than the not-reporting age (``compliance.mark_not_reporting``):
    # counted as not reporting, whatever that run's verdict was
    silent: bool = False

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
    def shown_verdict(self) -> str:
        """What a reader is told: not reporting, or the verdict of what was last measured."""
        return NOT_REPORTING if self.silent else self.verdict

    @property
    def verdict_group(self) -> str:
        if self.silent:
            return "not_reporting"
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
    # the fleet over time (``compliance.compliance``), and what "not reporting" was judged by
    compliance: dict[str, Any] | None = None
    now: datetime | None = None
    not_reporting_after: float | None = None
    recheck: datetime | None = None  # when the above next changes by time alone
    # per room key (``Run.key``), per UTC day: its last run's (started, run id, verdict), from files
    room_days: dict[tuple[str, ...], dict[date, tuple[datetime, str, str | None]]] = field(default_factory=dict)
    room_labels: dict[tuple[str, ...], tuple[str, str, str]] = field(default_factory=dict)
