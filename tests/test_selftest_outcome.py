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
