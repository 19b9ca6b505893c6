"""The judge: one pure function from (result, requirement list) to verdicts.

Sits between the result (``result.py``) and the report (``report.py``). Nothing else in the
project decides pass or fail. Four verdicts, worst wins (as in nagiosplugin):

- PASS: measured and within the bound;
- WARN: a ``recommended`` bound is missed;
- FAIL: a ``required`` bound is missed;
- UNKNOWN: not measured (check failed, timed out, skipped, or the metric is missing).

The overall verdict: FAIL if any required item fails; else UNKNOWN if any required item is
unknown (not measured means not proven ready); else WARN if any item warns or a recommended
item is unknown; else PASS. Ready means PASS or WARN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .requirements import Profile, Requirement
from .result import Result

PASS, WARN, FAIL, UNKNOWN = "PASS", "WARN", "FAIL", "UNKNOWN"
READY = (PASS, WARN)


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

    @property
    def ready(self) -> bool:
        return self.overall in READY

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "overall": self.overall, "ready": self.ready,
                "items": [v.to_dict() for v in self.items]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Judgement":
        return cls(profile=data.get("profile", {}), overall=data["overall"],
                   items=[Verdict.from_dict(v) for v in data.get("items", [])])


def _within(req: Requirement, value: Any) -> bool:
    if req.expect is not None:
        return value is req.expect
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


def judge_one(result: Result, req: Requirement) -> Verdict:
    value, unit, _ = result.metric(req.metric)
    if req.expect is not None:
        usable = isinstance(value, bool)
    else:  # a number; a saved file may hold anything, and text or a yes/no is no measurement
        # NaN would pass every bound and inf fail every one: neither is a measurement
        usable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not usable:
        return Verdict(req, UNKNOWN, None, unit, _unknown_reason(result, req))
    if _within(req, value):
        return Verdict(req, PASS, value, unit)
    return Verdict(req, FAIL if req.severity == "required" else WARN, value, unit)


def overall(items: list[Verdict]) -> str:
    required = [v.status for v in items if v.requirement.severity == "required"]
    others = [v.status for v in items if v.requirement.severity != "required"]
    if FAIL in required:
        return FAIL
    if UNKNOWN in required:
        return UNKNOWN
    if WARN in others or UNKNOWN in others:
        return WARN
    return PASS


def judge(result: Result, profile: Profile, only_checks: set[str] | None = None) -> Judgement:
    """Judge ``result`` against ``profile``. With ``only_checks``, requirements of other checks
    are left out (the user asked for those checks alone)."""
    reqs = [r for r in profile.requirements if only_checks is None or r.check in only_checks]
    items = [judge_one(result, r) for r in reqs]
    return Judgement(profile=profile.summary(), overall=overall(items), items=items)


def exit_code(j: Judgement) -> int:
    """0 ready, 1 not ready (2 is for usage, configuration and internal errors, set by the CLI)."""
    return 0 if j.ready else 1
