"""The judge: PASS / WARN / FAIL / UNKNOWN per requirement, worst wins, UNKNOWN of required is not ready."""

from __future__ import annotations

import pytest

from readiness.judge.verdicts import FAIL, PASS, UNKNOWN, WARN, Judgement, exit_code, judge, overall
from readiness.judge.requirements import Profile, Requirement
from readiness.result import CheckRecord, Result


def req(metric="net.up_mbps", severity="required", **bound) -> Requirement:
    return Requirement(metric=metric, severity=severity, why="w", fix="f", source="s", **bound)


def result(metrics: dict[str, object], status: str = "ok", error: str | None = None) -> Result:
    rec = CheckRecord(name="net", status=status, started_utc="2026-01-01T00:00:00Z", duration_s=1.0,
                      metrics={k: {"value": v, "unit": "Mbps"} for k, v in metrics.items()}, error=error)
    return Result(run_id="0" * 32, started_utc="2026-01-01T00:00:00Z", finished_utc="2026-01-01T00:00:01Z",
                  host={"hostname": "h", "os": "Linux"}, labels={}, profile={}, checks={"net": rec}, tool_version="t")


def profile(*reqs: Requirement) -> Profile:
    return Profile(name="p", title="p", description="", requirements=list(reqs), check_settings={}, origin="p.toml", sha256="0" * 64)


@pytest.mark.parametrize(
    "bound, severity, value, expected",
    [
        ({"min": 1.2}, "required", 1.2, PASS),
        ({"min": 1.2}, "required", 1.19, FAIL),
        ({"min": 4}, "recommended", 3.9, WARN),
        ({"max": 100}, "required", 100.0, PASS),
        ({"max": 100}, "required", 100.5, FAIL),
        ({"min": 1, "max": 2}, "required", 2.5, FAIL),
        ({"expect": True}, "required", True, PASS),
        ({"expect": False}, "recommended", True, WARN),
        ({"expect": True}, "required", 1, UNKNOWN),  # a number is not a yes/no answer
        ({"min": 1}, "required", True, UNKNOWN),  # and a yes/no is not a number
        ({"min": 1}, "required", "four", UNKNOWN),  # nor is text in a hand-edited file
    ],
)
def test_bounds(bound, severity, value, expected):
    j = judge(result({"up_mbps": value}), profile(req(severity=severity, **bound)))
    assert j.items[0].status == expected
    assert j.items[0].value == (value if expected != UNKNOWN else None)


def test_missing_metric_is_unknown_with_the_check_error_as_reason():
    j = judge(result({}, status="timeout", error="did not finish within its 5 s budget"), profile(req(min=1)))
    v = j.items[0]
    assert v.status == UNKNOWN and v.reason == "the net check timed out: did not finish within its 5 s budget"
    assert j.overall == UNKNOWN and not j.ready and exit_code(j) == 1


def test_check_that_did_not_run_is_unknown():
    j = judge(result({}), profile(req(metric="camera.fps", min=25)))
    assert j.items[0].reason == "the camera check did not run"


@pytest.mark.parametrize(
    "statuses, expected",
    [
        ([("required", PASS), ("recommended", PASS)], PASS),
        ([("required", PASS), ("recommended", WARN)], WARN),
        ([("required", PASS), ("recommended", UNKNOWN)], WARN),
        ([("required", UNKNOWN), ("recommended", WARN)], UNKNOWN),
        ([("required", UNKNOWN), ("required", FAIL)], FAIL),
        ([], UNKNOWN),  # nothing judged is not ready (as nagiosplugin)
    ],
)
def test_overall_worst_wins(statuses, expected):
    from readiness.judge.verdicts import Verdict

    items = [Verdict(req(severity=sev, min=0), st) for sev, st in statuses]
    assert overall(items) == expected
    assert (expected in (PASS, WARN)) == (exit_code(Judgement({}, expected, items)) == 0)


def test_only_checks_leaves_other_requirements_out():
    p = profile(req(min=1), req(metric="camera.fps", min=25))
    j = judge(result({"up_mbps": 5}), p, only_checks={"net"})
    assert [v.requirement.metric for v in j.items] == ["net.up_mbps"] and j.overall == PASS


def test_judgement_round_trips_through_json():
    j = judge(result({"up_mbps": 0.5}), profile(req(min=1.2)))
    again = Judgement.from_dict(j.to_dict())
    assert again.overall == FAIL and again.items[0].value == 0.5 and again.items[0].requirement.min == 1.2
