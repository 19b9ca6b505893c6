"""A third party's check describes itself and appears where the core shows checks, with no change
outside its own package: tests/plugins/roomclock, a distribution found on the path like any
installed one, registered by its one entry point. Its step-5 section, its key figure, its
security fact and its own words in English and Swedish reach the fleet report (``aggregate``
as a subprocess over result files) and the self-test page (a real ``readiness serve``)."""

from __future__ import annotations

import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from readiness.judge.requirements import parse_profile
from readiness.judge.verdicts import judge
from readiness.result import CheckRecord, Result, write_result
from readiness.plugins import load_plugins

ROOMCLOCK = Path(__file__).resolve().parent / "plugins" / "roomclock"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_selftest import request, serve  # noqa: E402

PROFILE = """name = "clocks"
[[requirement]]
metric = "roomclock.offset_ms"
max = 500
severity = "required"
label = "Clock offset"
why = "Sign-in tickets expire when the clock is off."
fix = "Point the computer at the organisation's time server."
source = "https://example.invalid/time"
[[requirement]]
metric = "camera.height_px"
min = 720
severity = "required"
label = "Picture height"
why = "HD."
fix = "Replace the camera."
source = "https://example.invalid/camera"
"""
EN_FACT, SV_FACT = "Clock kept in step with a time server", "Klockan hålls i takt med en tidsserver"
EN_FIX, SV_FIX = "Set the clock from the organisation&#39;s time server", "Ställ klockan efter organisationens tidsserver"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOMCLOCK), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _share(tmp_path: Path) -> Path:
    """Three rooms' results, judged when they ran by a list that names the plugin's metric."""
    sys.path.insert(0, str(ROOMCLOCK))
    try:
        from readiness_roomclock import RoomClockCheck
    finally:
        sys.path.remove(str(ROOMCLOCK))
    checks = dict(load_plugins().checks, roomclock=RoomClockCheck)
    profile = parse_profile(PROFILE, "clocks.toml", checks)
    share = tmp_path / "share"
    share.mkdir()
    t = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for i, (offset, synced) in enumerate([(12.0, True), (900.0, False), (40.0, None)]):
        clock = {"offset_ms": {"value": offset, "unit": "ms"}}
        if synced is not None:
            clock["clock_synced"] = {"value": synced, "unit": ""}
        r = Result(run_id=f"{i:032x}", started_utc=t, finished_utc=t, host={"hostname": f"room{i}", "os": "Linux"},
                   labels={"site": "Lund", "room": f"R{i}"}, profile=profile.summary(), tool_version="0.2.0", checks={
                       "roomclock": CheckRecord(name="roomclock", title="Room clock", status="ok", started_utc=t,
                                                duration_s=0.1, metrics=clock),
                       "camera": CheckRecord(name="camera", status="ok", started_utc=t, duration_s=2.0,
                                             metrics={"height_px": {"value": 1080, "unit": "px"}})})
        r.judgement = judge(r, profile).to_dict()
        write_result(r, share)
    return share


def _aggregate(cli, share: Path, out: Path, lang: str, env: dict[str, str] | None) -> tuple[dict, str]:
    r = cli("aggregate", str(share), "-o", str(out / f"{lang}.html"), "--json", str(out / f"{lang}.json"),
            "--lang", lang, env=env)
    assert r.returncode == 0, r.stderr
    return (json.loads((out / f"{lang}.json").read_text(encoding="utf-8")),
            (out / f"{lang}.html").read_text(encoding="utf-8"))


def _section_html(html: str, start: str, end: str) -> str:
    return html[html.index(start):html.index(end, html.index(start))]


def test_a_third_party_check_lands_in_the_section_it_names_with_its_own_words(cli, tmp_path: Path) -> None:
    share = _share(tmp_path)
    figs, html = _aggregate(cli, share, tmp_path, "en", _env())
    sec = figs["step5"]["sections"]
    rows = {row["metric"]: row for name in ("equipment", "network", "subscriptions", "security")
            for row in sec[name]["requirements"]}
    assert [row["metric"] for row in sec["security"]["requirements"]] == ["roomclock.offset_ms"]
    assert (rows["roomclock.offset_ms"]["PASS"], rows["roomclock.offset_ms"]["FAIL"]) == (2, 1)
    assert [row["metric"] for row in sec["equipment"]["requirements"]] == ["camera.height_px"]
    facts = {f["metric"]: f for f in sec["security"]["facts"]}
    assert {k: facts["roomclock.clock_synced"][k] for k in ("yes", "no", "not_told", "label")} == {
        "yes": 1, "no": 1, "not_told": 1, "label": EN_FACT}
    assert "security.firewall_on" in facts  # the built-ins' facts are still there beside it
    # its key figure's distribution comes before the camera's (by name alone it would follow it)
    assert [h["metric"] for h in figs["histograms"]] == ["roomclock.offset_ms", "camera.height_px"]
    security = _section_html(html, ">Security<", ">Support<")
    assert "Clock offset" in security and EN_FACT in security
    # the fix it names heads the action list, in its own words
    assert [(a["kind"], a["units"], a["section"]) for a in figs["step5"]["actions"]] == [("set_clock", 1, "security")]
    assert EN_FIX in _section_html(html, 'id="actions"', "</section>")

    figs_sv, html_sv = _aggregate(cli, share, tmp_path, "sv", _env())
    facts_sv = {f["metric"]: f for f in figs_sv["step5"]["sections"]["security"]["facts"]}
    assert facts_sv["roomclock.clock_synced"]["label"] == SV_FACT
    security_sv = _section_html(html_sv, ">Säkerhet<", ">Support<")
    assert SV_FACT in security_sv and EN_FACT not in html_sv
    assert SV_FIX in _section_html(html_sv, 'id="actions"', "</section>")


def test_without_the_plugin_its_stored_verdicts_fall_under_equipment_and_its_fact_is_not_counted(cli, tmp_path: Path) -> None:
    share = _share(tmp_path)
    figs, html = _aggregate(cli, share, tmp_path, "en", None)
    sec = figs["step5"]["sections"]
    assert sorted(row["metric"] for row in sec["equipment"]["requirements"]) == ["camera.height_px", "roomclock.offset_ms"]
    assert not sec["security"]["requirements"]
    assert "roomclock.clock_synced" not in {f["metric"] for f in sec["security"]["facts"]}
    assert [h["metric"] for h in figs["histograms"]] == ["camera.height_px", "roomclock.offset_ms"]
    assert [(a["kind"], a["subject"]) for a in figs["step5"]["actions"]] == [("other", "roomclock")]
    assert EN_FACT not in html and EN_FIX not in html


def test_a_saved_result_is_reported_again_with_the_plugins_own_words(cli, tmp_path: Path) -> None:
    share = _share(tmp_path)
    saved = sorted(share.glob("*.json"))[1]  # the room whose clock is off
    r = cli("report", str(saved), "--lang", "sv", "-o", str(tmp_path / "with.html"), env=_env())
    assert r.returncode == 1, r.stderr  # not ready: the clock is 900 ms off
    assert "Rumsklocka" in (tmp_path / "with.html").read_text(encoding="utf-8")
    r = cli("report", str(saved), "--lang", "sv", "-o", str(tmp_path / "without.html"))
    assert r.returncode == 1, r.stderr
    assert "Rumsklocka" not in (tmp_path / "without.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("lang, title, builtin", [("en", "Room clock", "Connectivity"), ("sv", "Rumsklocka", "Anslutning")])
def test_the_self_test_page_names_the_third_party_check_in_its_own_words(tmp_path, monkeypatch, lang, title, builtin):
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    p, port = serve(tmp_path)
    try:
        status, _, body = request(port, f"/?lang={lang}")
    finally:
        p.terminate()
        p.wait(10)
    assert status == 200
    listed = re.search(r'<p class="muted" id="agent-checks">(.*?)</p>', body.decode()).group(1)
    assert title in listed and builtin in listed
    assert "Kamera" not in listed and "Camera" not in listed  # the page measures the camera itself


def test_a_plugins_words_add_to_the_catalogs_and_never_reword_the_core(monkeypatch) -> None:
    from readiness.i18n import format as fmt

    monkeypatch.setattr(fmt, "_PLUGIN_WORDS", {})
    try:
        fmt.add_words("gadget", {"en": {"check": {"gadget": "Gadget", "camera": "Hijacked"}, "finding": {"gadget_off": "Off"}},
                                 "sv": {"check": {"gadget": "Pryl"}}})
        assert fmt.word("sv", "check.gadget") == "Pryl" and fmt.word("en", "check.gadget") == "Gadget"
        assert fmt.word("sv", "finding.gadget_off") == "Off"  # no Swedish of its own: its English
        assert fmt.word("en", "check.camera") == "Camera" and fmt.word("sv", "check.camera") == "Kamera"
        assert fmt.word("sv", "step5.title") == "Steg 5: tekniska förutsättningar"
    finally:
        fmt.catalog.cache_clear()
