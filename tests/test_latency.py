"""latency check against a STUN responder in a network namespace whose delay, jitter and drops are known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns  # noqa: E402
from netns import link  # noqa: E402,F401 - the shared namespace fixture

from readiness.netstats import mos  # noqa: E402




def _latency(link, port, **settings):
    s = {"targets": [f"{link.server_ip}:{port}"], "duration_s": 3.0} | settings
    return link.run_checks(["latency"], settings={"latency": s})["latency"]




def test_median_and_jitter_follow_the_responder(link):
    responder = link.start_responder(4001, delay_ms=60, jitter_ms=8, seed=3)
    try:
        r = _latency(link, 4001)
    finally:
        netns.stop(responder)
    m = r["metrics"]
    assert r["details"]["method"] == "udp-stun"
    assert m["rtt_median_ms"] == pytest.approx(60, abs=3)
    assert m["jitter_ms"] == pytest.approx(2 * 8 / 3, abs=2.5)  # uniform ±8 ms -> mean |D| = 16/3
    assert m["loss_pct"] == 0 and m["burst_loss_pct"] == 0
    # ±8 ms cannot overtake a 20 ms spacing; only a late send (a busy CPU) squeezes two closer
    assert m["reorder_pct"] < 5
    assert m["mos"] == pytest.approx(mos(m["rtt_median_ms"], m["jitter_ms"], 0), abs=0.01)
    assert m["mos"] > 4.3  # R ≈ 92.8 for EL ≈ 80 ms


def test_wide_jitter_reorders_answers(link):
    responder = link.start_responder(4002, delay_ms=60, jitter_ms=40, seed=5)
    try:
        m = _latency(link, 4002, duration_s=2.0)["metrics"]
    finally:
        netns.stop(responder)
    assert m["reorder_pct"] > 1
    assert m["rtt_min_ms"] >= 19 and m["rtt_p95_ms"] <= 105


def test_kernel_packet_loss_is_counted(link):
    responder = link.start_responder(4003, delay_ms=10)
    link.drop(0.05)  # 5 % of the client's UDP never leaves
    try:
        m = _latency(link, 4003, duration_s=4.0)["metrics"]
    finally:
        link.drop(0)
        netns.stop(responder)
    assert m["loss_pct"] == pytest.approx(5, abs=4.5)  # 200 probes: ±3 standard deviations
    assert m["burst_loss_pct"] >= m["loss_pct"]
    assert m["mos"] < netns_mos_without_loss(m)


def netns_mos_without_loss(m):
    return mos(m["rtt_median_ms"], m["jitter_ms"], 0)


def test_blocked_udp_falls_back_to_tcp_handshakes(link):
    server, url = link.start_server(8081, 3479)
    link.drop(1.0)  # all UDP from the client is dropped
    try:
        r = link.run_checks(["latency"], settings={"latency": {"duration_s": 1.0}}, options={"server": url})["latency"]
    finally:
        link.drop(0)
        netns.stop(server)
    assert r["details"]["method"].startswith("tcp-connect")
    assert 0 < r["metrics"]["rtt_median_ms"] < 50
    assert "jitter_ms" not in r["metrics"] and "mos" not in r["metrics"]
    assert any("TCP/TLS" in d for d in r["details"]["diagnosis"])
