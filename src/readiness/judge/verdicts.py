"""The judge: one pure function from (result, requirement list) to verdicts.

Sits between the result (``result.py``) and the report (``report.py``). Nothing else in the
project decides pass or fail. Four verdicts, worst wins (as in nagiosplugin):

- PASS: measured and within the bound (a version bound compares versions, not text);
- WARN: a ``recommended`` bound is missed;
- FAIL: a ``required`` bound is missed;
- UNKNOWN: not measured (check failed, timed out, skipped, or the metric is missing).

The overall verdict: FAIL if any required item fails; else UNKNOWN if any required item is
unknown (not measured means not proven ready) or nothing was judged at all (an empty list, a
profile without requirements); else WARN if any item warns or a recommended item is unknown;
else PASS.

Coverage is part of every judgement: the checks the profile needs, the checks that ran and
the checks that measured (status ok). A run that left out a check the profile needs (``--check
system``) is **partial**: its verdict word is ``PARTIAL`` when it found no fault ("no fault
found in what was checked"), never the bare word ready, and its exit code is 3 (see
``exit_code``). A fault found is a fault whatever the coverage: FAIL stays FAIL.

Ready means PASS or WARN over the whole profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from readiness.judge.requirements import Profile, Requirement
from readiness.result import Result
from readiness.versions import compare, is_version

PASS, WARN, FAIL, UNKNOWN = "PASS", "WARN", "FAIL", "UNKNOWN"
PARTIAL = "PARTIAL"  # a verdict word only (no item is ever PARTIAL): no fault found in part of the list
READY = (PASS, WARN)
EXIT_READY, EXIT_NOT_READY, EXIT_PARTIAL = 0, 1, 3  # 2 is the CLI's: usage, configuration, internal error


@dataclass
class Coverage:
    """Which checks the profile needs, which ran and which measured (status ok)."""

    needed: list[str]
    ran: list[str]
    measured: list[str]

    @property
    def missing(self) -> list[str]:
        """Checks the profile needs that did not run at all (left out by the user)."""
        return [c for c in self.needed if c not in self.ran]

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def to_dict(self) -> dict[str, Any]:
        return {"needed": list(self.needed), "ran": list(self.ran), "measured": list(self.measured)}

    @classmethod
    def from_dict(cls, data: Any) -> "Coverage | None":
        if not isinstance(data, dict):
            return None
        lists = [data.get(k) for k in ("needed", "ran", "measured")]
        if not all(isinstance(x, list) and all(isinstance(c, str) for c in x) for x in lists):
            return None
        return cls(*lists)


@dataclass
class Verdict:
    requirement: Requirement
    status: str
    value: Any = None
    unit: str | None = None
    reason: str | None = None  # why UNKNOWN, in plain words

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "value": self.value, "unit": self.unit, "reason": self.reason,
                "requirement": self.requirement.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        return cls(requirement=Requirement.from_dict(data["requirement"]), status=data["status"],
                   value=data.get("value"), unit=data.get("unit"), reason=data.get("reason"))


@dataclass
class Judgement:
    profile: dict[str, Any]
    overall: str
    items: list[Verdict]
    coverage: Coverage | None = None  # None: read from a result written before coverage was recorded

    @property
    def partial(self) -> bool:
        return self.coverage is not None and self.coverage.partial

    @property
    def verdict(self) -> str:
        """The word a person reads: the overall verdict, or PARTIAL for a partial run with no fault."""
        if self.partial and self.overall in READY:
            return PARTIAL
        return self.overall

    @property
    def ready(self) -> bool:
        return self.overall in READY and not self.partial

    def to_dict(self) -> dict[str, Any]:
        out = {"profile": self.profile, "overall": self.overall, "verdict": self.verdict, "ready": self.ready,
               "items": [v.to_dict() for v in self.items]}
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Judgement":
        items = [Verdict.from_dict(v) for v in data.get("items", [])]
        # a stored judgement over nothing (0.1.0 called it PASS) is read as what it is: unknown
        overall = data["overall"] if items else UNKNOWN
        return cls(profile=data.get("profile", {}), overall=overall, items=items,
                   coverage=Coverage.from_dict(data.get("coverage")))


def _within(req: Requirement, value: Any) -> bool:
    if req.expect is not None:
        return value is req.expect
    if req.min_version is not None:
        return compare(value, req.min_version) >= 0
    if req.min is not None and value < req.min:
        return False
    if req.max is not None and value > req.max:
        return False
    return True


def _unknown_reason(result: Result, req: Requirement) -> str:
    record = result.checks.get(req.check)
    if record is None:
        return f"the {req.check} check did not run"
    if record.status == "timeout":
        return f"the {req.check} check timed out: {record.error}"
    if record.status == "skipped":
        return f"the {req.check} check was skipped: {record.error}"
    if record.status == "error":
        return f"the {req.check} check failed: {record.error}"
    return f"the {req.check} check could not measure this"


def service_value(result: Result, req: Requirement) -> Any:
    """The figure a check measured for ``req.service`` (``details.services.<name>.<metric>``)."""
    record = result.checks.get(req.check)
    services = record.details.get("services") if record is not None and isinstance(record.details, dict) else None
    entry = services.get(req.service) if isinstance(services, dict) else None
    return entry.get(req.metric.partition(".")[2]) if isinstance(entry, dict) else None


def judge_one(result: Result, req: Requirement) -> Verdict:
    value, unit, _ = result.metric(req.metric)
    if req.service is not None:  # that service's own figure, not the best of all services
        value = service_value(result, req)
    if req.expect is not None:
        usable = isinstance(value, bool)
    elif req.min_version is not None:
        usable = is_version(value)
    else:  # a number; a saved file may hold anything, and text or a yes/no is no measurement
        # NaN would pass every bound and inf fail every one: neither is a measurement
        usable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not usable:
        return Verdict(req, UNKNOWN, None, unit, _unknown_reason(result, req))
    if _within(req, value):
        return Verdict(req, PASS, value, unit)
    return Verdict(req, FAIL if req.severity == "required" else WARN, value, unit)


def overall(items: list[Verdict]) -> str:
    return overall_of((v.requirement.severity, v.status) for v in items)


def overall_of(pairs: Any) -> str:
    """The worst of (severity, status) pairs; nothing judged is UNKNOWN (never ready)."""
    pairs = list(pairs)
    if not pairs:
        return UNKNOWN
    required = [s for sev, s in pairs if sev == "required"]
    others = [s for sev, s in pairs if sev != "required"]
    if FAIL in required:
        return FAIL
    if UNKNOWN in required:
        return UNKNOWN
    if WARN in others or UNKNOWN in others:
        return WARN
    return PASS


def coverage(result: Result, profile: Profile) -> Coverage:
    ran = list(result.checks)
    return Coverage(needed=profile.checks(), ran=ran, measured=[c for c in ran if result.checks[c].status == "ok"])


def judge(result: Result, profile: Profile, only_checks: set[str] | None = None) -> Judgement:
    """Judge ``result`` against ``profile``. With ``only_checks``, requirements of other checks
    are left out (the user asked for those checks alone); the coverage says so, and the
    verdict of such a run is partial."""
    reqs = [r for r in profile.requirements if only_checks is None or r.check in only_checks]
    items = [judge_one(result, r) for r in reqs]
    return Judgement(profile=profile.summary(), overall=overall(items), items=items,
                     coverage=coverage(result, profile))


def exit_code(j: Judgement) -> int:
    """0 ready; 1 not ready (a fault, or something required could not be measured); 3 partial:
    no fault found in what was checked, but the profile needs checks that did not run.
    (2 is for usage, configuration and internal errors, set by the CLI.)"""
    if j.ready:
        return EXIT_READY
    if j.verdict == PARTIAL:
        return EXIT_PARTIAL
    return EXIT_NOT_READY
