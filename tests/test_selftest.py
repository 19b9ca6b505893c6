"""The self-test's server side through a real ``readiness serve`` on loopback: the page and its
headers, hostile posts (markup, wrong types, huge numbers, unknown profiles), judging and
storing a posted result, the report by run id, and the WebRTC peer answering a real peer.

The page itself in a real browser is in test_selftest_browser.py.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import validate_result  # noqa: E402
from netns import wait_line  # noqa: E402


def serve(results: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    exe = shutil.which("readiness")
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "readiness.cli", "serve"]
    p = subprocess.Popen(cmd + ["--host", "127.0.0.1", "--http-port", "0", "--stun-port", "0",
                                "--results-dir", str(results), *extra],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = wait_line(p, "listening on")
    return p, int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    results = tmp_path_factory.mktemp("selftest-results")
    p, port = serve(results)
    yield port, results
    p.terminate()
    p.wait(10)


def request(port: int, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, source: str | None = None) -> tuple[int, dict, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0) if source else None)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def post(port: int, doc, path: str = "/__selftest/result", source: str | None = None) -> tuple[int, dict]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, _, data = request(port, path, "POST", body, {"Content-Type": "application/json"}, source)
    return status, json.loads(data) if data else {}


def observations(**over) -> dict:
    """What the page posts for a plausible workstation (numbers a browser would produce)."""
    n = 90
    doc = {
        "profile": "video-call", "lang": "en", "labels": {"site": "HQ", "room": "4.12"},
        "browser": {"name": "Chromium", "version": "156", "platform": "Linux", "mobile": False, "webrtc": True,
                    "cpu_threads": 8, "memory_class_gb": 8, "secure_context": True},
        "camera": {"state": "ok", "duration_s": 3.6, "requested": {"width_px": 1280, "height_px": 720},
                   "width_px": 1280, "height_px": 720, "first_frame_ms": 120, "presented_frames": n - 1, "span_s": (n - 1) / 30,
                   "t": [i / 30 for i in range(n)], "brightness": [0.5] * n, "black_share": [0.0] * n,
                   "bright_share": [0.0] * n, "diff": [0.02] * (n - 1), "sharpness": [300.0] * 18, "noise": [0.01] * 18},
        "microphone": {"state": "ok", "duration_s": 2.1, "rate_hz": 48000, "samples": 96000,
                       "window_rms": [0.1] * 100, "peak": 0.1414, "clipping_runs": 0, "sum": 0.0, "all_zero": False},
        "speakers": {"state": "ok", "played": True, "heard": True, "tone_hz": 440},
        "latency": {"state": "ok", "method": "webrtc", "interval_ms": 20, "rtt_ms": [20.0 + (i % 3) for i in range(250)],
                    "arrival": list(range(250))},
        "bandwidth": {"state": "ok",
                      "down": {"ticks": [[i * 0.05, int(i * 0.05 * 6.25e6)] for i in range(41)], "streams": 4,
                               "probes": [[i * 0.05, 71.0] for i in range(40)] + [[1.99, None]]},
                      "up": {"ticks": [[i * 0.05, int(i * 0.05 * 2.5e6)] for i in range(41)], "streams": 4,
                             "probes": [[i * 0.05, 41.0] for i in range(40)]}},
    }
    doc.update(over)
    return doc


def test_the_page_is_served_with_a_csp_that_allows_only_its_own_script_and_connections(server):
    port, _ = server
    status, headers, body = request(port, "/?profile=audio-call&lang=sv&site=Kiruna&room=B2")
    assert status == 200
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    page = body.decode()
    assert 'lang="sv"' in page and "Starta kontrollen" in page and "<b>Ljudsamtal</b>" in page
    config = json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>', page, re.S).group(1))
    assert config["profile"] == "audio-call" and config["labels"] == {"site": "Kiruna", "room": "B2"}
    assert "camera" not in config["needs"]  # the audio-call list needs no camera
    # every script and style is the server's own: no absolute URL anywhere in the page
    links = [u for u in re.findall(r'(?:src|href)="([^"]+)"', page) if u != "#"]
    assert links == ["data:,", "/__selftest/selftest.css", "/__selftest/selftest.js"]
    js_status, js_headers, js = request(port, "/__selftest/selftest.js")
    assert js_status == 200 and js_headers["content-type"].startswith("text/javascript")
    assert not re.search(rb"https?://", js), "the script must address only its own server"


def test_markup_in_the_url_is_text_and_an_unknown_profile_is_a_plain_404(server):
    port, _ = server
    evil = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    status, _, body = request(port, f"/?site={evil}&room=%22%3E%3Cimg%20src%3Dx%3E&label=a%00b%0Ac&key={evil}{'k' * 300}")
    page = body.decode()
    assert status == 200 and "<script>alert(1)" not in page and "<img src=x>" not in page
    config = json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>', page, re.S).group(1))
    assert config["labels"]["label"] == "abc"  # control characters dropped: the page can post it back
    assert config["key"].startswith("<script>") and len(config["key"]) == 100  # bounded as the result border takes it
    assert "\\u003cscript\\u003e" in page  # inside the JSON data block, escaped
    status, headers, body = request(port, f"/?profile={evil}")
    assert status == 404 and "&lt;script&gt;alert(1)&lt;/script&gt;" in body.decode()
    assert "script-src 'self'" in headers["content-security-policy"]


def test_a_posted_result_is_judged_stored_and_reported_with_what_a_browser_cannot_cover(server):
    port, results = server
    status, answer = post(port, observations())
    assert status == 200, answer
    run_id = answer["run_id"]
    stored = list(results.glob(f"*-{run_id[:8]}.json"))
    assert len(stored) == 1 and stored[0].with_suffix(".html").exists()
    doc = validate_result(stored[0])
    assert doc["host"]["measured_by"] == "browser" and doc["host"]["browser"] == "Chromium 156"
    assert "127.0.0.1" not in stored[0].read_text()  # no network address is recorded
    m = {c: {k: v["value"] for k, v in rec["metrics"].items()} for c, rec in doc["checks"].items()}
    assert m["camera"]["fps"] == pytest.approx(30.0, abs=0.01) and m["camera"]["frozen"] is False
    assert m["microphone"]["level_dbfs"] == pytest.approx(-20.0, abs=0.01)
    assert m["latency"]["rtt_median_ms"] == pytest.approx(21.0) and m["latency"]["loss_pct"] == 0
    assert m["bandwidth"]["download_mbps"] == pytest.approx(50.0, rel=0.02)
    assert m["bandwidth"]["upload_mbps"] == pytest.approx(20.0, rel=0.02)
    # what a browser cannot measure is not covered, and said so: a partial run, never a bare "ready"
    assert "system" not in doc["checks"] and "connectivity" not in doc["checks"]
    coverage = doc["judgement"]["coverage"]
    missing = [c for c in coverage["needed"] if c not in coverage["ran"]]
    assert {"system", "connectivity"} <= set(missing)
    assert not set(missing) & {"camera", "microphone", "speakers", "latency", "bandwidth"}
    items = {i["requirement"]["metric"]: i for i in doc["judgement"]["items"]}
    assert "system.cpu_cores" not in items and items["camera.width_px"]["status"] == "PASS"
    # under load the probes took 71 and 41 ms against 21 ms idle: the worst direction counts
    assert m["bandwidth"]["loaded_latency_increase_ms"] == 50 and m["bandwidth"]["idle_rtt_ms"] == 21
    assert doc["checks"]["bandwidth"]["details"]["down"]["probes_lost_under_load"] == 1
    assert answer["verdict"] == doc["judgement"]["verdict"] == "PARTIAL" and answer["ready"] is False
    status, headers, html = request(port, answer["report"])
    ran = [c for c in coverage["needed"] if c in coverage["ran"]]
    assert status == 200 and f"{len(ran)} of {len(coverage['needed'])} areas checked" in html.decode()
    assert "the readiness agent checks the rest" in html.decode() and "--check" not in html.decode()
    assert headers["content-security-policy"].startswith("default-src 'none'")
    status, headers, _ = request(port, answer["download"])
    assert status == 200 and headers["content-disposition"].startswith("attachment;")
    status, _, data = request(port, answer["json"])
    assert status == 200 and json.loads(data)["run_id"] == run_id
    assert request(port, "/__selftest/report/" + "0" * 32 + ".html")[0] == 404
    assert request(port, "/__selftest/report/../../etc/passwd")[0] == 404


def test_markup_in_every_text_field_is_stored_as_text_and_escaped_in_the_report(server):
    port, _ = server
    x = "<script>alert(1)</script><img src=http://198.51.100.7/x>"
    doc = observations(labels={"site": x, "room": x, "label": x})
    doc["browser"] = dict(doc["browser"], name=x[:40], version=x[:40], platform=x[:60])
    doc["camera"] = {"state": "denied", "error": x}
    doc["latency"] = dict(doc["latency"], webrtc_error=x)
    doc["bandwidth"]["down"]["errors"] = [x]
    status, answer = post(port, doc)
    assert status == 200, answer
    _, _, html = request(port, answer["report"])
    page = html.decode()
    assert "<script>alert" not in page and "<img src=http" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize("change,expect", [
    ({"profile": "no-such-list"}, "no requirement list named"),
    ({"profile": "<b>x</b>"}, "unexpected form"),
    ({"profile": 7}, "must be text"),
    ({"camera": {"state": "ok", "width_px": "1280"}}, "must be a number"),
    ({"camera": {"state": "ok", "width_px": 1e300}}, "between"),
    ({"camera": {"state": "ok", "width_px": 1280.5}}, "whole number"),
    ({"microphone": {"state": "ok", "window_rms": [0.1] * 5000}}, "more than"),
    ({"latency": {"state": "ok", "rtt_ms": [-1]}}, "between"),
    ({"speakers": {"state": "ok", "heard": "yes"}}, "true or false"),
    ({"camera": {"state": "hacked"}}, "must be one of"),
    ({"labels": {"site": "x" * 500}}, "longer than"),
    ({"labels": {"site": "a\x00b"}}, "control characters"),
    ({"extra": 1}, "unknown field"),
    ({"browser": {"name": {"nested": True}}}, "must be text"),
    ({"key": "rdy_" + "x" * 200}, "longer than"),
    ({"key": ["rdy_x"]}, "must be text"),
], ids=["unknown-profile", "markup-profile", "profile-type", "string-number", "huge", "fraction", "long-list",
        "negative-rtt", "bool-type", "state", "long-label", "control-char", "unknown-field", "nested", "long-key",
        "key-type"])
def test_hostile_posts_are_refused_with_one_plain_message(server, change, expect):
    port, results = server
    before = set(results.iterdir())
    status, answer = post(port, observations(**change))
    assert status == 400 and expect in answer["error"], answer
    assert "Traceback" not in answer["error"] and len(answer["error"]) < 200
    assert set(results.iterdir()) == before  # nothing stored


def test_non_json_nan_and_oversized_posts_are_refused(server):
    port, _ = server
    assert post(port, b"{not json")[0] == 400
    assert post(port, b'{"profile": "video-call", "camera": {"state": "ok", "fps": NaN}}')[0] == 400
    assert post(port, b"[1, 2]")[0] == 400
    assert post(port, b"[" * 100_000 + b"]" * 100_000)[0] == 400  # deep nesting: refused, not a crash
    status, _, _ = request(port, "/__selftest/result", "POST", b"x" * 300_000)
    assert status == 413


def webrtc_echo(port: int, probes: int, source: str | None = None) -> tuple[int, list[str]]:
    """A real peer (aiortc) from ``source``: the offer's HTTP status, and the echoes of
    ``probes`` probes sent every 20 ms over an unordered channel without retransmits."""
    import asyncio

    from aiortc import RTCPeerConnection, RTCSessionDescription

    async def run() -> tuple[int, list[str]]:
        pc = RTCPeerConnection()
        ch = pc.createDataChannel("probe", ordered=False, maxRetransmits=0)
        echoes: list[str] = []
        opened = asyncio.Event()
        ch.on("open", opened.set)
        ch.on("message", echoes.append)
        await pc.setLocalDescription(await pc.createOffer())
        status, answer = await asyncio.to_thread(
            post, port, {"type": "offer", "sdp": pc.localDescription.sdp}, "/__selftest/rtc", source)
        if status == 200:
            await pc.setRemoteDescription(RTCSessionDescription(**answer))
            await asyncio.wait_for(opened.wait(), 10)
            for i in range(probes):
                ch.send(f"{i} probe")
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
        await pc.close()
        return status, echoes

    return asyncio.run(run())


def test_the_webrtc_peer_echoes_a_real_peer_over_an_unreliable_channel(server):
    """aiortc on the client side too: a real ICE/DTLS/SCTP exchange with the server's peer."""
    from readiness.selftest.peer import available
    from support import need

    need(available(), "aiortc is not installed (tests/run.sh installs the server extra)")
    port, _ = server
    status, echoes = webrtc_echo(port, 20)
    assert status == 200
    assert sorted(echoes, key=lambda e: int(e.split()[0])) == [f"{i} probe" for i in range(20)]
    assert post(port, {"type": "offer", "sdp": "hello"}, "/__selftest/rtc")[0] == 503
    assert post(port, b"[]", "/__selftest/rtc")[0] == 400


def test_serve_refuses_a_results_folder_it_cannot_write(tmp_path, cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("serve", "--host", "127.0.0.1", "--http-port", "0", "--stun-port", "0",
            "--results-dir", str(blocker / "sub"), timeout=20)
    assert r.returncode == 2 and "cannot store self-test results" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("state,status,working,code", [
    ("denied", "ok", False, "browser_denied_camera"),
    ("not_found", "ok", False, "browser_not_found_camera"),
    ("in_use", "ok", False, "browser_in_use_camera"),
    ("unsupported", "skipped", None, None),
    ("error", "error", None, None),
])
def test_each_device_failure_is_recorded_with_its_own_finding(server, state, status, working, code):
    port, results = server
    status_code, answer = post(port, observations(camera={"state": state, "error": "NotReadableError: busy"}))
    assert status_code == 200, answer
    [path] = results.glob(f"*-{answer['run_id'][:8]}.json")
    doc = json.loads(path.read_text())
    cam = doc["checks"]["camera"]
    assert cam["status"] == status and cam["details"]["browser_error"] == "NotReadableError: busy"
    assert cam["details"].get("findings", [{}])[0].get("code") == code
    assert cam["metrics"].get("working", {}).get("value") is working
    items = {i["requirement"]["metric"]: i for i in doc["judgement"]["items"]}
    assert items["camera.working"]["status"] == ("FAIL" if working is False else "UNKNOWN")
    if status != "ok":
        assert "NotReadableError: busy" in items["camera.working"]["reason"]


def test_one_address_cannot_fill_the_disk_with_results(tmp_path):
    from readiness.selftest.web import RESULTS_PER_MINUTE

    p, port = serve(tmp_path)
    try:
        codes = [post(port, observations())[0] for _ in range(RESULTS_PER_MINUTE + 3)]
    finally:
        p.terminate()
        p.wait(10)
    assert codes == [200] * RESULTS_PER_MINUTE + [429] * 3
    assert len(list(tmp_path.glob("*.json"))) == RESULTS_PER_MINUTE


def _contrast(a: str, b: str) -> float:
    def lum(hex_color: str) -> float:
        rgb = [int(hex_color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_page_text_meets_wcag_aa_contrast_in_light_and_dark_mode_and_every_control_is_named(server):
    from importlib import resources

    css = (resources.files("readiness.selftest") / "static" / "selftest.css").read_text()
    schemes = re.findall(r":root \{([^}]*)\}", css)
    assert len(schemes) == 2  # light, and dark (prefers-color-scheme)
    for scheme in schemes:
        colours = dict(re.findall(r"--(\w+): (#[0-9a-f]{6})", scheme))
        for name in ("fg", "muted", "accent", "ok", "bad", "warn"):
            assert _contrast(colours[name], colours["bg"]) >= 4.5, (name, scheme)
    port, _ = server
    page = request(port, "/")[2].decode()
    for label in re.findall(r"<button[^>]*>(.*?)</button>", page, re.S):
        assert label.strip()
    assert 'aria-label="' in re.search(r"<video[^>]*>", page).group(0)


def test_a_collect_hook_gets_the_stored_document_and_its_failure_loses_nothing(tmp_path):
    """The hook alone (a plain function); the real collector behind it is in test_sitelink.py."""
    from readiness.selftest.web import SelfTest

    got: list[tuple[bytes, str, str]] = []
    page = SelfTest(tmp_path, collect=lambda body, site, key: got.append((body, site, key)))
    answer = json.loads(page.handle("POST", "/__selftest/result", {}, json.dumps(observations(key="rdy_abc")).encode(),
                                    "192.0.2.1").body)
    assert answer["collected"] is True and got[0][1:] == ("HQ", "rdy_abc") and "not_collected" not in answer
    assert json.loads(got[0][0])["run_id"] == answer["run_id"]
    assert "rdy_abc" not in got[0][0].decode()

    page = SelfTest(tmp_path, collect=lambda body, site, key: "no_site_link")
    answer = json.loads(page.handle("POST", "/__selftest/result", {}, json.dumps(observations()).encode(), "192.0.2.1").body)
    assert answer["collected"] is False and answer["not_collected"] == "no_site_link"

    def down(body: bytes, site: str, key: str) -> None:
        raise ConnectionError("database unavailable")

    page = SelfTest(tmp_path, collect=down)
    answer = json.loads(page.handle("POST", "/__selftest/result", {}, json.dumps(observations()).encode(), "192.0.2.1").body)
    assert answer["collected"] is False and answer["not_collected"] == "not_stored"
    assert len(list(tmp_path.glob(f"*-{answer['run_id'][:8]}.json"))) == 1


def test_old_self_test_results_are_pruned_and_nothing_else_in_the_folder(tmp_path):
    """`serve --keep-days N` deletes the page's own results and reports older than N days at
    start (then hourly); an agent's result, a link and any other file in the folder stay."""
    import os
    import time

    p, port = serve(tmp_path, "--keep-days", "30")
    try:
        status, answer = post(port, observations())
        assert status == 200, answer
    finally:
        p.terminate()
        p.wait(10)
    fresh = sorted(tmp_path.glob(f"readiness-browser-*-{answer['run_id'][:8]}.*"))
    assert [f.suffix for f in fresh] == [".html", ".json"]
    old = [tmp_path / f"readiness-browser-0123abcd-20250101T120000Z-0123abcd{s}" for s in (".json", ".html")]
    agent = tmp_path / "readiness-mr-4-12-20250101T120000Z-89abcdef.json"  # an agent's result, as old
    other = tmp_path / "notes.txt"
    target = tmp_path / "elsewhere.json"
    link = tmp_path / "readiness-browser-fedcba98-20250101T120000Z-fedcba98.json"  # a link is not followed
    for f in (*old, agent, other, target):
        f.write_text("{}")
    link.symlink_to(target)
    past = time.time() - 31 * 86400
    for f in (*old, agent, other, target):
        os.utime(f, (past, past))
    os.utime(link, (past, past), follow_symlinks=False)
    exe = shutil.which("readiness")
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "readiness.cli", "serve"]
    p = subprocess.Popen(cmd + ["--host", "127.0.0.1", "--http-port", "0", "--stun-port", "0", "--results-dir",
                                str(tmp_path), "--keep-days", "30"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # pruning runs in the background at start
        while any(f.exists() for f in old) and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
    finally:
        p.terminate()
        log = p.communicate(timeout=15)[1]
    assert "deleted 2 self-test results and reports older than 30 days" in log, log
    assert not any(f.exists() for f in old)
    assert all(f.exists() for f in (*fresh, agent, other, target)) and link.is_symlink()
