"""Diagnoses by construction (``judge/diagnose.py``), over generated runs: every cause × check.

Hypothesis builds results for the shipped profiles' checks — each check ok, failed, timed out,
skipped or missing, with any finding of the cause model (and a plugin's unknown one), and each
requirement's figure absent, within or outside its bound — and judges them with the real judge.
Whatever the mix:

- every requirement that is not PASS sits under exactly one headline, and no PASS under any;
- a cause shared by the whole computer (PortAudio missing, no network, DNS, UDP blocked) is
  one headline, however many checks name it;
- no headline stands beside a PASS of its own requirement, and no advice is given twice;
- every headline has advice in the reader's words, in English and Swedish.

The real-fault counterpart is tests/test_faults.py.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readiness.judge.diagnose import CAUSES, describe, diagnose, reconcile
from readiness.judge.requirements import Requirement, load_profile
from readiness.judge.verdicts import PASS, UNKNOWN, judge
from readiness.i18n.format import catalog
from readiness.render.report import render_report, summary_text, view
from readiness.result import CheckRecord, Result
from readiness.plugins import load_plugins

PLUGINS = load_plugins()
PROFILES = {name: load_profile(name, checks=PLUGINS.checks) for name in ("video-call", "meeting-room", "audio-call")}
CHECKS = sorted({r.check for p in PROFILES.values() for r in p.requirements})
FINDINGS = sorted({f for c in CAUSES for f in c.findings}) + ["a_plugins_own_fact"]


def _value(req: Requirement, within: bool):
    if req.expect is not None:
        return req.expect if within else not req.expect
    if req.min_version is not None:
        return "9999.0" if within else "0.1"
    if req.min is not None:
        return req.min + 1 if within else req.min - 1
    return req.max - 1 if within else req.max + 1


@st.composite
def runs(draw):
    profile = PROFILES[draw(st.sampled_from(sorted(PROFILES)))]
    checks: dict[str, CheckRecord] = {}
    for name in CHECKS:
        status = draw(st.sampled_from(["ok", "ok", "ok", "error", "timeout", "skipped", "missing"]))
        if status == "missing":
            continue
        found = draw(st.lists(st.sampled_from(FINDINGS), max_size=2, unique=True))
        args = {"service": "Microsoft Teams", "services": "Microsoft Teams", "url": "http://server.example",
                "device": "USB", "error": "x", "source": "environment", "proxy": "http://proxy:3128"}
        details = {"findings": [{"code": f, "args": dict(args)} for f in found]}
        metrics = {}
        if status == "ok":
            for req in profile.requirements:
                if req.check != name or req.service is not None:
                    continue
                choice = draw(st.sampled_from(["within", "outside", "absent"]))
                if choice != "absent":
                    metrics[req.metric.partition(".")[2]] = {"value": _value(req, choice == "within"), "unit": ""}
        checks[name] = CheckRecord(name=name, status=status, started_utc="2026-12-01T10:00:00.000Z", duration_s=1.0,
                                   title=name, metrics=metrics, details=details,
                                   error=None if status == "ok" else f"{name} {status}")
    result = Result(run_id="r", started_utc="2026-12-01T10:00:00.000Z", finished_utc="2026-12-01T10:00:10.000Z",
                    host={"hostname": "h"}, labels={}, profile=profile.summary(), checks=checks, tool_version="t")
    return result, judge(result, profile)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs())
def test_every_requirement_under_one_headline_and_no_contradiction(run):
    result, raw = run
    judgement = reconcile(result, raw)  # what is stored, counted and shown
    found = diagnose(result, judgement)
    placed = [id(v) for d in found for v in d.items]
    assert len(placed) == len(set(placed))  # no requirement under two headlines
    assert sorted(placed) == sorted(id(v) for v in judgement.items if v.status != PASS)  # every one under one
    assert not [v for d in found for v in d.items if v.status == PASS]
    shared = [d.cause for d in found if any(c.code == d.cause and c.shared for c in CAUSES)]
    assert len(shared) == len(set(shared))  # one cause for the whole computer: one headline
    for d in found:
        assert d.lead is None or d.lead.status != PASS  # no headline beside its own PASS
        assert d.lead is not None or all(v.status == UNKNOWN for v in d.items)
        for lang in ("en", "sv"):
            words = describe(d, result, lang)
            assert words.advice and not words.advice.startswith(("advice.", "unmeasured.")), (d.to_dict(), words)
            assert words.title and not words.cause.startswith("cause.")
    # no cause beside a PASS of a metric it explains (advice "you did not hear the tone" under
    # "Speakers play sound: PASS"); a finding that outranks its figure makes that figure a fault
    passed = {v.requirement.metric for v in judgement.items if v.status == PASS}
    for d in found:
        cause = next((c for c in CAUSES if c.code == d.cause), None)
        assert cause is None or not passed & set(cause.named()), (d.to_dict(), passed & set(cause.named()))
    overruled = {m for name, rec in result.checks.items() if rec.status == "ok"
                 for f in rec.details.get("findings", []) for c in CAUSES
                 if f["code"] in c.findings and c.overrules for m in c.named()}
    hit = [v.requirement.severity for v in raw.items if v.status != UNKNOWN and v.requirement.metric in overruled]
    for lang in ("en", "sv"):
        first = summary_text(result, raw, lang, []).splitlines()[0]
        t = catalog(lang)
        if "required" in hit:  # the rendered summary never says "no fault found" beside that cause
            assert not first.startswith((t["terminal_PASS"], t["terminal_PARTIAL"])), first
        elif hit:  # a recommended one: never plain "ready"
            assert not first.startswith(t["terminal_PASS"] + " "), first
        v = view(result, raw, lang)
        advice = [c.advice for c in v.causes if c.advice] + [ln.fix for ln in v.lines if ln.fix]
        assert len(advice) == len(set(advice))  # no advice given twice
        text = summary_text(result, raw, lang, [])
        passed = {(it.requirement.text("label", lang) or it.requirement.metric) for it in judgement.items
                  if it.status == PASS and not [o for o in judgement.items if o.status != PASS
                                                and o.requirement.metric == it.requirement.metric]}
        for line in text.splitlines()[1:]:  # a PASS requirement is never a headline
            assert not any(line.strip().split(":")[0].endswith(label) for label in passed if label), line


def test_one_cause_behind_two_checks_is_one_headline_naming_both():
    """PortAudio missing fails the microphone and the speakers: one diagnosis, both named."""
    profile = PROFILES["video-call"]
    finding = {"code": "no_portaudio", "args": {"error": "libportaudio.so.2: cannot open shared object file"}}
    checks = {name: CheckRecord(name=name, status="error", started_utc="2026-12-01T10:00:00.000Z", duration_s=0.1,
                                details={"findings": [finding]}, error="PortAudio missing")
              for name in ("microphone", "speakers")}
    result = Result(run_id="r", started_utc="2026-12-01T10:00:00.000Z", finished_utc="2026-12-01T10:00:10.000Z",
                    host={}, labels={}, profile=profile.summary(), checks=checks, tool_version="t")
    (d,) = [d for d in diagnose(result, judge(result, profile)) if d.cause == "audio_library_missing"]
    assert d.checks == ["microphone", "speakers"]
    words = describe(d, result, "sv")
    assert words.title == "Mikrofon, Högtalare" and "PortAudio" in words.advice
    assert "mikrofon" not in words.advice.lower()  # advice for the cause, not "connect a microphone"


def _one(name: str, status: str, details: dict | None = None, metrics: dict | None = None,
         error: str | None = None, profile: str = "video-call"):
    prof = PROFILES[profile]
    rec = CheckRecord(name=name, status=status, started_utc="2026-12-01T10:00:00.000Z", duration_s=0.1,
                      metrics=metrics or {}, details=details or {}, error=error)
    result = Result(run_id="r", started_utc="2026-12-01T10:00:00.000Z", finished_utc="2026-12-01T10:00:10.000Z",
                    host={}, labels={}, profile=prof.summary(), checks={name: rec}, tool_version="t")
    return result, judge(result, prof, only_checks={name})


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_a_camera_the_user_may_not_open_on_linux_gets_the_video_group_advice(lang):
    result, j = _one("camera", "error", {"findings": [{"code": "camera_permission_device",
                                                       "args": {"path": "/dev/video0"}}]}, error="denied")
    (d,) = diagnose(result, j)
    assert d.cause == "camera_permission_group"
    words = describe(d, result, lang)
    t = catalog(lang)
    assert words.advice == t["advice"]["camera_permission_group"] and "video" in words.advice
    assert words.advice != t["advice"]["camera_permission"]


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_a_crashed_check_says_so_in_words_and_keeps_the_raw_error_for_the_appendix(lang):
    raw = "OSError: [Errno 13] Permission denied: '/sys/class/dmi/id/product_name'"
    # as the runner records an unexpected exception: its message and the traceback (a CheckError,
    # the check's own sentence, has none and is shown as the cause: test_verdicts)
    result, j = _one("system", "error", {"traceback": "Traceback (most recent call last): ..."}, error=raw)
    t = catalog(lang)
    text = summary_text(result, j, lang, [])
    assert t["cause"]["check_failed"] in text and "Errno" not in text
    v = view(result, j, lang)
    assert v.measured_areas == []  # a check that crashed measured nothing: no area checked
    assert v.coverage == t["partial_headline"].format(checks="—", n=0, total=len(v.areas))
    html = render_report(result, j, lang)
    assert html.count("Errno 13") == 1 and html.index("Errno 13") > html.index('class="appendix"')


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_a_person_who_did_not_hear_outranks_a_stream_that_opened(lang):
    """A stored result with "did not hear" beside playback_ok = True (an older agent, or a page):
    the speakers fail under that cause; never "no fault found" above the advice."""
    result, raw = _one("speakers", "ok", {"findings": [{"code": "person_did_not_hear", "args": {"device": "USB"}}]},
                       {"playback_ok": {"value": True, "unit": ""}})
    t = catalog(lang)
    text = summary_text(result, raw, lang, [])
    assert text.splitlines()[0].startswith(t["terminal_FAIL"]), text
    j = reconcile(result, raw)
    [d] = [d for d in diagnose(result, j) if d.cause == "speakers_not_heard"]
    assert d.lead.requirement.metric == "speakers.playback_ok" and d.lead.status == "FAIL"
    assert reconcile(result, j) is j  # once is enough
