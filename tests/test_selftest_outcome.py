"""What the self-test page says at the end (``selftest/outcome.py``), from posted observations
judged as the server judges them: the person's "did not hear" fails the speakers, the verdict
and its advice never disagree, the coverage sentence counts what measured, and the result's
keeper is the organisation whose link it is — never "your organisation".

The same through a real ``readiness serve`` and Chromium is in test_selftest_browser.py.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_selftest import observations, post, serve  # noqa: E402

from readiness.i18n.format import catalog  # noqa: E402
from readiness.judge.verdicts import judge  # noqa: E402
from readiness.selftest.document import build_result  # noqa: E402
from readiness.selftest.outcome import page_outcome  # noqa: E402
from readiness.selftest.submission import parse  # noqa: E402
from readiness.selftest.web import SelfTest  # noqa: E402


def outcome(doc: dict, lang: str = "en", org: str = "") -> tuple[dict, dict]:
    """(the page's closing words, {metric: status}) for what the page would post."""
    import json

    sub = parse(json.dumps(doc).encode())
    prof = SelfTest._profile(sub["profile"])
    result = build_result(sub, prof)
    j = judge(result, prof, only_checks=set(result.checks))
    items: dict[str, str] = {}
    for v in j.items:  # a metric's worst tier (the service figures apart)
        if v.requirement.service is None and items.get(v.requirement.metric) in (None, "PASS", "UNKNOWN"):
            items[v.requirement.metric] = v.status
    return page_outcome(result, j, lang, org), items


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_not_heard_fails_the_speakers_with_the_speakers_advice(lang):
    said, items = outcome(observations(lang=lang, speakers={"state": "ok", "played": True, "heard": False,
                                                            "tone_hz": 440}), lang)
    t = catalog(lang)
    assert items["speakers.playback_ok"] == "FAIL"
    assert said["verdict"] == "FAIL" and said["headline"] == t["verdict_FAIL"]
    prof = SelfTest._profile("video-call")
    [req] = [r for r in prof.requirements if r.metric == "speakers.playback_ok"]
    speakers = [p for p in said["problems"] if p["text"].startswith(req.text("label", lang))]
    assert speakers and speakers[0]["status"] == "FAIL" and speakers[0]["advice"] == req.text("fix", lang)


def test_heard_passes_and_the_page_says_how_much_a_browser_covered():
    said, items = outcome(observations())
    assert items["speakers.playback_ok"] == "PASS"
    # 8 areas in video-call; the browser measured camera, microphone, speakers, bandwidth, latency
    assert said["coverage"].startswith("Your browser could check 5 of 8 areas: Camera, ")
    assert "System" in said["coverage"].split("Not checked here:")[1]
    said, _ = outcome(observations(profile="audio-call"))  # no camera in that list: 4 of 6
    assert said["coverage"].startswith("Your browser could check 4 of 6 areas")
    # a step that could not run is not counted as covered
    said, _ = outcome(observations(camera={"state": "unsupported", "error": "no getUserMedia"}))
    assert said["coverage"].startswith("Your browser could check 4 of 8 areas")
    assert "Camera" in said["coverage"].split("Not checked here:")[1]


def test_a_warn_of_its_own_report_is_listed_on_the_page_with_its_advice():
    doc = observations()
    doc["bandwidth"]["down"]["probes"] = [[i * 0.05, 221.0] for i in range(40)]  # +200 ms under load
    said, items = outcome(doc)
    assert items["bandwidth.loaded_latency_increase_ms"] == "WARN"
    [warn] = [p for p in said["problems"] if p["status"] == "WARN"]
    assert warn["text"].startswith("Delay under load") and warn["advice"]
    # not "no fault found" above advice: the headline says there is advice
    assert said["verdict"] == "PARTIAL" and said["headline"] == catalog("en")["selftest_verdict_PARTIAL_advice"]


# Every situation the page gives advice of its own for while it runs (selftest.js advise()).
_ADVISED = {
    "not_heard": {"speakers": {"state": "ok", "played": True, "heard": False}},
    "denied_camera": {"camera": {"state": "denied"}},
    "not_found_camera": {"camera": {"state": "not_found"}},
    "in_use_camera": {"camera": {"state": "in_use"}},
    "denied_microphone": {"microphone": {"state": "denied"}},
    "not_found_microphone": {"microphone": {"state": "not_found"}},
    "in_use_microphone": {"microphone": {"state": "in_use"}},
    "insecure": {"camera": {"state": "unsupported"}, "microphone": {"state": "unsupported"}},
    "tcp_only": {"latency": {"state": "ok", "method": "http", "interval_ms": 100, "rtt_ms": [3.0] * 20,
                             "arrival": list(range(20))}},
}


@pytest.mark.parametrize("profile,lang", list(itertools.product(["video-call", "audio-call", "meeting-room"], ["en", "sv"])))
def test_verdict_and_advice_never_disagree(profile, lang):
    """Every advice case alone and in pairs, in every shipped list: advice on the page means the
    verdict is not "no fault found", and "no fault found" comes with no advice at all."""
    t = catalog(lang)
    cases = [()] + [(a,) for a in _ADVISED] + list(itertools.combinations(_ADVISED, 2))
    for case in cases:
        doc = observations(profile=profile, lang=lang)
        for name in case:
            doc.update(_ADVISED[name])
        said, _ = outcome(doc, lang)
        if case and not (profile == "audio-call" and set(case) <= {"denied_camera", "not_found_camera", "in_use_camera"}):
            assert said["verdict"] not in ("PASS", "PARTIAL"), (case, said)
            assert said["problems"] and any(p["advice"] for p in said["problems"]), case  # the same advice is given once
        if said["headline"] in (t["verdict_PARTIAL"], t["verdict_PASS"]):
            assert said["problems"] == [], (case, said)
        if said["problems"]:
            assert said["headline"] not in (t["verdict_PARTIAL"], t["verdict_PASS"]), case


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_the_keeper_is_the_organisation_whose_link_it_is(lang):
    t = catalog(lang)
    said, _ = outcome(observations(lang=lang), lang)
    assert said["keeper"] == t["selftest_keeper"]
    said, _ = outcome(observations(lang=lang), lang, org="Kommun X")
    assert "Kommun X" in said["keeper"]
    everything = " ".join(str(v) for v in said.values()) + " " + " ".join(
        v for k, v in t.items() if isinstance(v, str) and k.startswith("selftest_"))
    assert "your organisation" not in everything.lower() and "er organisation" not in everything.lower()


def test_the_served_page_and_answer_name_the_configured_organisation(tmp_path):
    import http.client

    p, port = serve(tmp_path, "--org", "Region Norr")
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        c.request("GET", "/?site=Kiruna")
        page = c.getresponse().read().decode()
        c.close()
        status, answer = post(port, observations(speakers={"state": "ok", "played": True, "heard": False}))
    finally:
        p.terminate()
        p.wait(10)
    assert "The result is kept by Region Norr, who sent you this link." in page
    assert status == 200 and answer["verdict"] == "FAIL" and answer["outcome"]["keeper"].startswith("The result is kept by Region Norr")
    assert any(x["status"] == "FAIL" and x["text"].startswith("Speakers play sound") for x in answer["outcome"]["problems"])


def judged(doc: dict):
    """(result, judgement) for what the page would post, judged as the server judges it."""
    import json

    sub = parse(json.dumps(doc).encode())
    prof = SelfTest._profile(sub["profile"])
    result = build_result(sub, prof)
    return result, judge(result, prof, only_checks=set(result.checks))


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_no_camera_is_no_area_checked_on_the_page_and_in_its_report_alike(lang):
    """One count of areas checked: the page's sentence, the report's partial line and its facts."""
    import re

    from readiness.render.report import render_report, view

    doc = observations(lang=lang, camera={"state": "not_found"})
    said, _ = outcome(doc, lang)
    t = catalog(lang)
    assert said["coverage"].startswith(t["selftest_coverage"].split("{n}")[0] + "4 ")
    assert t["check"]["camera"] not in said["coverage"].split(":")[1].split(".")[0]  # not among those checked
    result, j = judged(doc)
    v = view(result, j, lang)
    assert "camera" not in v.measured_areas and len(v.measured_areas) == 4
    titles = ", ".join(t["check"][c] for c in v.measured_areas)
    assert v.coverage == t["partial_headline"].format(checks=titles, n=4, total=8)
    html = render_report(result, j, lang)
    assert t["coverage_ran"].format(n=4, total=8) in html
    assert t["coverage_ran"].format(n=5, total=8) not in re.sub(r"<[^>]+>", "", html)


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_service_figures_a_browser_cannot_measure_say_so_and_are_not_run_again(lang):
    """The page measures the organisation's own server: the services' own figures and responsiveness
    under load are the agent's, with that cause and advice — never "run the check again"."""
    from readiness.judge.diagnose import diagnose
    from readiness.render.report import summary_text

    result, j = judged(observations(lang=lang))
    t = catalog(lang)
    found = diagnose(result, j)
    unknown_services = [v for v in j.items if v.status == "UNKNOWN" and v.requirement.service]
    assert unknown_services  # the page never measures Microsoft Teams' own figures
    causes = {d.cause for d in found for v in d.items if v in unknown_services}
    assert causes == {"browser_not_measured"}
    text = summary_text(result, j, lang, [])
    assert t["cause"]["not_measured"] not in text and t["unmeasured"]["latency"] not in text
    assert t["cause"]["browser_not_measured"] in text and t["advice"]["browser_not_measured"] in text


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_a_camera_denied_by_the_browser_gets_the_browser_advice_and_the_page_shows_the_cause(lang):
    said, _ = outcome(observations(lang=lang, camera={"state": "denied"}), lang)
    t = catalog(lang)
    [cam] = [p for p in said["problems"] if p["advice"] == t["advice"]["camera_permission_browser"]]
    assert t["finding"]["browser_denied_camera"] in cam["text"]  # the cause, not only the bound
    assert not [p for p in said["problems"] if p["advice"] == t["advice"]["camera_permission"]]


def test_a_cause_is_listed_on_the_page_from_its_own_requirements_not_from_its_title():
    """A plugin's check whose title holds ", " and that left a required item unknown: its cause is
    on the page (matched by the diagnosis' own checks and items, not by splitting a title)."""
    from readiness.judge.requirements import Profile, Requirement
    from readiness.result import CheckRecord, Result

    rec = CheckRecord(name="dock", title="Dock, hub", status="error", started_utc="2026-12-01T10:00:00.000Z",
                      duration_s=1.0, error="no dock")
    result = Result(run_id="r", started_utc="2026-12-01T10:00:00.000Z", finished_utc="2026-12-01T10:00:10.000Z",
                    host={"measured_by": "browser"}, labels={}, profile={"name": "p", "sha256": "0" * 64},
                    checks={"dock": rec}, tool_version="t")
    reqs = [Requirement(metric="dock.ports", min=2, severity="required", label="Dock ports", why="", fix="Plug it in", source=""),
            Requirement(metric="dock.speed", min=2, severity="recommended", label="Dock speed", why="", fix="", source="")]
    prof = Profile(name="p", title="P", description="", requirements=reqs, check_settings={}, origin="p",
                   sha256="0" * 64)
    said = page_outcome(result, judge(result, prof), "en")
    assert [p["status"] for p in said["problems"]] == ["UNKNOWN"]
    assert said["problems"][0]["text"].startswith(catalog("en")["cannot_check"] + " Dock, hub: ")
    reqs[0] = Requirement(metric="dock.ports", min=2, severity="recommended", label="Dock ports", why="", fix="", source="")
    prof = Profile(name="p", title="P", description="", requirements=reqs, check_settings={}, origin="p",
                   sha256="0" * 64)
    assert page_outcome(result, judge(result, prof), "en")["problems"] == []  # recommended only: the report's
