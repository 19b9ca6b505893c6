"""bandwidth check on a kernel-shaped link (tbf), with iperf3 on the same link as the reference."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns  # noqa: E402
from support import need, need_tool  # noqa: E402

from readiness.checks.bandwidth import BandwidthCheck  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def link():
    ok, why = netns.available()
    need(ok, why)
    need_tool("iperf3")
    with netns.Link() as lk:
        yield lk


@pytest.fixture(scope="module")
def served(link):
    server, url = link.start_server(8083, 3481)
    yield url
    netns.stop(server)


def test_declares_the_network_resource_last():
    assert BandwidthCheck.resource == "network" and BandwidthCheck.order == 2 and not BandwidthCheck.isolated


def test_http_backend_matches_iperf3_on_a_shaped_link(link, served):
    link.shape(20)
    try:
        ref_down = link.iperf3(2, reverse=True)
        ref_up = link.iperf3(2)
        r = link.run_checks(["bandwidth"], options={"server": served})["bandwidth"]
    finally:
        link.shape(None)
    m, d = r["metrics"], r["details"]
    assert m["download_mbps"] == pytest.approx(ref_down, rel=0.10)
    assert m["upload_mbps"] == pytest.approx(ref_up, rel=0.10)
    assert d["probe"].startswith("STUN over UDP") and m["idle_rtt_ms"] < 5
    assert m["loaded_latency_increase_ms"] >= 0
    assert d["down"]["errors"] == [] and d["up"]["errors"] == []


def test_deep_queue_shows_bufferbloat(link, served):
    link.shape(10, queue_ms=300)
    try:
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"max_duration_s": 3.0}},
                            options={"server": served})["bandwidth"]
    finally:
        link.shape(None)
    assert r["metrics"]["loaded_latency_increase_ms"] >= 100
    assert any("bufferbloat" in x for x in r["details"]["diagnosis"])


def test_a_server_that_is_not_there_is_a_plain_error(link):
    r = link.run_checks(["bandwidth"], settings={"bandwidth": {"url": f"http://{link.server_ip}:1", "stun": "none"}})
    assert "does not answer" in r["bandwidth"]["error"] or "refused" in r["bandwidth"]["error"]


def _speedtest_server(link, port, *extra):
    p = link.popen(link.server_ns, [sys.executable, str(HERE / "speedtest_server.py"), "--host", link.server_ip,
                                    "--port", str(port), *extra])
    netns.wait_line(p, "ready")
    return p


def test_speedtest_backend_runs_speedtest_cli_offline(link):
    p = _speedtest_server(link, 8090, "--testlength", "2")
    link.shape(20)
    try:
        ref = link.iperf3(2, reverse=True)
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                            env={"http_proxy": f"http://{link.server_ip}:8090"})["bandwidth"]
    finally:
        link.shape(None)
        netns.stop(p)
    m, d = r["metrics"], r["details"]
    assert d["backend"] == "speedtest" and d["server"]["id"] == "4242"
    # speedtest-cli counts its ramp-up, so it reads low; never above the link
    assert 0.5 * ref < m["download_mbps"] < 1.1 * ref
    assert 0.5 * ref < m["upload_mbps"] < 1.1 * ref


@pytest.mark.parametrize("extra,expected", [
    (["--status", "403"], "HTTP 403"),
    (None, "no internet connection"),  # the proxy is not there and there is no route beyond it
], ids=["forbidden", "offline"])
def test_speedtest_failures_become_plain_messages(link, extra, expected):
    p = _speedtest_server(link, 8091, *extra) if extra is not None else None
    try:
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                            env={"http_proxy": f"http://{link.server_ip}:8091"})["bandwidth"]
    finally:
        if p is not None:
            netns.stop(p)
    assert expected in r["error"]
