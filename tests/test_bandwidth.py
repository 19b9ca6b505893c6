"""bandwidth check on a kernel-shaped link (tbf), with iperf3 on the same link as the reference."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns  # noqa: E402
from netns import link  # noqa: E402,F401 - the shared namespace fixture
from support import need, need_tool, paired_trials  # noqa: E402

from readiness.checks.bandwidth import BandwidthCheck  # noqa: E402

HERE = Path(__file__).resolve().parent
# TCP payload per byte tbf lets through: 1448 of a 1514-byte frame (1500 MTU, 14 Ethernet header,
# 52 IP + TCP with timestamps)
GOODPUT_PER_FRAME = 1448 / 1514




@pytest.fixture(scope="module")
def served(link):
    server, url = link.start_server(8083, 3481)
    yield url
    netns.stop(server)




def test_http_backend_matches_iperf3_on_a_shaped_link(link, served):
    need_tool("iperf3")

    def trial() -> dict:
        return {"down": link.iperf3(2, reverse=True), "up": link.iperf3(2),
                "check": link.run_checks(["bandwidth"], options={"server": served})["bandwidth"]}

    def pairs(t: dict) -> list:
        m = t["check"]["metrics"]
        return [("download", m["download_mbps"], t["down"], 0.10), ("upload", m["upload_mbps"], t["up"], 0.10)]

    link.shape(20)
    try:
        t = paired_trials(trial, pairs)
    finally:
        link.shape(None)
    r = t["check"]
    m, d = r["metrics"], r["details"]
    assert m["download_mbps"] == pytest.approx(t["down"], rel=0.10)
    assert m["upload_mbps"] == pytest.approx(t["up"], rel=0.10)
    assert d["probe"].startswith("STUN over UDP") and m["idle_rtt_ms"] < 5
    # the worst direction's loaded median RTT over the idle one, from the check's own samples
    # (a ">= 0" here could not fail: the code clamps)
    worst = max(d[k]["loaded_rtt_median_ms"] for k in ("down", "up"))
    assert m["loaded_latency_increase_ms"] == pytest.approx(max(0.0, worst - m["idle_rtt_ms"]), abs=0.02)
    assert d["down"]["errors"] == [] and d["up"]["errors"] == []


@pytest.mark.parametrize("rate,queue_ms", [(10, 300)])  # more deep queues: bench/network.py
def test_deep_queue_rate_is_within_5_percent_of_iperf3(link, served, rate, queue_ms):
    """The defect: on 10 Mbit/s with a 300 ms queue download read 8.2-9.6 against iperf3's 9.5,
    because a direction ended while TCP was still filling the queue or inside a loss hole.

    iperf3 runs 10 s with 2 s omitted: over a deep queue its short runs read a few % high
    (the receiver's in-order count catches up on the slow-start losses after the omitted part).
    Three runs each, so one lucky run proves nothing. The reference is the better of two iperf3
    runs: TCP cannot beat the link, but one iperf3 run over this queue was seen reading 5 % low
    (9.09 against the 9.56 the link carries, while the check read 9.58).

    Nor can it beat the link's goodput, which is known: tbf counts whole Ethernet frames, so a
    full TCP segment carries 1448 payload bytes of every 1514 the bucket lets through. A
    reference above that (CI saw iperf3 read 9.91 where the link carries 9.56, while the check
    read 9.35) is capped at it. A run that lost the CPU on a busy two-core machine is measured
    once more; a real bias is in every run and fails, with both readings listed."""
    need_tool("iperf3")
    link.shape(rate, queue_ms=queue_ms)
    try:
        goodput = rate * GOODPUT_PER_FRAME
        ref_down = min(goodput, max(link.iperf3(10, reverse=True, omit=2) for _ in range(2)))
        ref_up = min(goodput, max(link.iperf3(10, omit=2) for _ in range(2)))

        def agrees(r: dict) -> bool:
            m = r["metrics"]
            return (abs(m["download_mbps"] - ref_down) <= 0.05 * ref_down
                    and abs(m["upload_mbps"] - ref_up) <= 0.05 * ref_up)

        runs, missed = [], []
        for _ in range(3):
            r = link.run_checks(["bandwidth"], options={"server": served})["bandwidth"]
            if not agrees(r):
                missed.append(r)
                r = link.run_checks(["bandwidth"], options={"server": served})["bandwidth"]
            runs.append(r)
    finally:
        link.shape(None)
    earlier = [(x["metrics"]["download_mbps"], x["metrics"]["upload_mbps"]) for x in missed]
    for r in runs:
        m, d = r["metrics"], r["details"]
        assert m["download_mbps"] == pytest.approx(ref_down, rel=0.05), \
            f"reference {ref_down:.2f} (missed before: {earlier}): {_why(d['down'])}"
        assert m["upload_mbps"] == pytest.approx(ref_up, rel=0.05), \
            f"reference {ref_up:.2f} (missed before: {earlier}): {_why(d['up'])}"
        # the queue was seen filling: an idle link adds about 1 ms. How full its median finds it
        # depends on where the flows' saw-tooth stands when the probes run: 119.6 ms (0.40) was seen
        assert m["loaded_latency_increase_ms"] >= 0.3 * queue_ms
        assert d["findings"] == [{"code": "loaded_latency_increase", "args": {"ms": round(m["loaded_latency_increase_ms"])}}]
        assert "diagnosis" not in d


def _why(entry: dict) -> dict:
    """What a failed accuracy assertion should show: how the direction ended, and its counts."""
    tl = entry.get("cumulative_mbit_every_250ms", [])
    return {k: entry.get(k) for k in ("mbps", "steady", "seconds", "ramp_s", "slice_mbps", "loaded_rtt_median_ms")} | {
        "mbps_every_250ms": [round((b - a) * 4, 2) for a, b in zip([0, *tl], tl)]}


def test_responsiveness_follows_the_known_queue_delay(link, served):
    """RPM on the 10 Mbit/s link with a 300 ms queue, against the idle link.

    The queue's delay is known: loaded, the probes wait behind it, so RPM must come out near
    60000 / (the loaded round trip the STUN probes measured beside it) and in the draft's
    "poor" or "fair" band (under 1000 RPM: 60 ms or more per round trip), while the idle link
    is far above it."""
    from readiness.checks.bandwidth.responsiveness import band

    link.shape(10, queue_ms=300)
    try:
        r = link.run_checks(["bandwidth"], options={"server": served})["bandwidth"]
    finally:
        link.shape(None)
    m, d = r["metrics"], r["details"]
    for direction in ("down", "up"):
        resp = d[direction]["responsiveness"]
        assert resp["probes"]["tcp_f"] >= 5 and resp["probes"]["http_l"] >= 5, resp
        expected = 60000 / d[direction]["loaded_rtt_median_ms"]
        assert resp["rpm"] == pytest.approx(expected, rel=0.5), (resp, d[direction]["loaded_rtt_median_ms"])
    assert m["responsiveness_rpm"] == min(d["down"]["responsiveness"]["rpm"], d["up"]["responsiveness"]["rpm"])
    # TCP does not keep a 300 ms queue full, but a loaded round trip of 60 ms or more is "fair" at best
    assert m["responsiveness_rpm"] < 1000 and band(m["responsiveness_rpm"]) in ("poor", "fair")
    fast = link.run_checks(["bandwidth"], options={"server": served})["bandwidth"]
    assert fast["metrics"]["responsiveness_rpm"] > 5 * m["responsiveness_rpm"]
    assert fast["details"]["down"]["responsiveness"]["band"] in ("good", "excellent")


def test_deep_queue_bufferbloat_is_measured_and_judged_through_the_cli(link, served, tmp_path):
    """The whole network part via `readiness run --server`, on a 10 Mbit/s link with a 300 ms queue."""
    import json
    import shutil
    import subprocess

    exe = shutil.which("readiness")
    need(exe is not None, "the readiness console script is not installed (pip install -e .)")
    link.shape(10, queue_ms=300)
    try:
        r = subprocess.run(["ip", "netns", "exec", link.client_ns, exe, "run", "-c", "connectivity", "-c", "latency",
                            "-c", "bandwidth", "--server", served, "--json", "--no-open", "-o", str(tmp_path)],
                           capture_output=True, text=True, timeout=90)
    finally:
        link.shape(None)
    assert "Traceback" not in r.stderr
    result = json.loads(r.stdout)
    bw = {k: v["value"] for k, v in result["checks"]["bandwidth"]["metrics"].items()}
    assert bw["loaded_latency_increase_ms"] >= 100
    # The rate is still found through a 300 ms queue (accuracy proper: bench/network.py and the iperf3 test).
    assert bw["download_mbps"] == pytest.approx(9.6, rel=0.2)
    items = {(i["requirement"]["metric"], i["requirement"]["severity"]): i["status"] for i in result["judgement"]["items"]}
    assert items[("bandwidth.loaded_latency_increase_ms", "recommended")] == "WARN"
    assert items[("latency.rtt_median_ms", "required")] == "PASS"
    # the own server answers over UDP; that proves nothing about the services' relays, which
    # this isolated link cannot reach: judged apart. Their names do not resolve here, so their
    # UDP ports are not measured: UNKNOWN with that cause, never FAIL (issue 20's preconditions),
    # and the room is not ready
    conn = result["checks"]["connectivity"]["metrics"]
    assert conn["udp_server_reachable"]["value"] is True and "udp_media_reachable" not in conn
    assert items[("connectivity.udp_media_reachable", "required")] == "UNKNOWN"
    assert result["judgement"]["overall"] in ("FAIL", "UNKNOWN") and r.returncode == 1
    # the download's spread within the run is in the details and beside the figure in the report
    spread = result["checks"]["bandwidth"]["details"]["spread"]["download_mbps"]
    assert spread["n"] >= 4 and spread["cv_pct"] < 10  # a steady window's slices agree within 5 %
    html = next(tmp_path.glob("*.html")).read_text()
    assert "± " in html and "coefficient of variation" in html


def test_a_server_that_is_not_there_is_a_plain_error(link):
    r = link.run_checks(["bandwidth"], settings={"bandwidth": {"url": f"http://{link.server_ip}:1", "stun": "none"}})
    assert r["bandwidth"]["error"] == f"the speed-test server {link.server_ip}:1 does not answer"
    assert r["bandwidth"]["finding"] == {"code": "speed_server_silent", "args": {"server": f"{link.server_ip}:1"}}


def _speedtest_server(link, port, *extra):
    p = link.popen(link.server_ns, [sys.executable, str(HERE / "speedtest_server.py"), "--host", link.server_ip,
                                    "--port", str(port), *extra])
    netns.wait_line(p, "ready")
    return p


def test_speedtest_backend_runs_speedtest_cli_offline(link):
    p = _speedtest_server(link, 8090, "--testlength", "2")
    link.shape(20)
    try:
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                            env={"http_proxy": f"http://{link.server_ip}:8090"})["bandwidth"]
    finally:
        link.shape(None)
        netns.stop(p)
    m, d = r["metrics"], r["details"]
    assert d["backend"] == "speedtest" and d["server"]["id"] == "4242"
    # speedtest-cli counts its ramp-up, so its download reads low, never above the 20 Mbit/s the
    # kernel allows; its upload counts bytes still queued in the socket, so it may read high
    # (up to 1.25x seen, see below)
    assert 10 < m["download_mbps"] < 20
    assert 10 < m["upload_mbps"] < 20 * 1.4


def test_speedtest_backend_finishes_within_its_budget_by_default(link):
    """The defect: on a 37 Mbit/s link speedtest.net's 10 s per direction needed 20.4 s in all and
    the check timed out at its 20 s budget. Default settings now, speedtest.net's 10 s config."""
    p = _speedtest_server(link, 8092, "--testlength", "10")
    link.shape(37)
    try:
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                            env={"http_proxy": f"http://{link.server_ip}:8092"}, timeout=90)["bandwidth"]
    finally:
        link.shape(None)
        netns.stop(p)
    m, d = r["metrics"], r["details"]
    assert "error" not in r and r["seconds"] < BandwidthCheck.budget_s
    assert d["seconds_per_direction"] == BandwidthCheck.settings["speedtest_seconds"].default
    # as above: speedtest-cli's upload counts bytes still queued in the socket, and its shorter
    # direction makes that share larger: 42.7 was seen on an idle machine and 46.3 in CI (1.25x).
    # That is speedtest-cli's own figure, which the check reports as it is; 1.4x still catches a
    # check that counts a direction twice or divides by the wrong time
    assert 25 < m["download_mbps"] < 37 and 25 < m["upload_mbps"] < 37 * 1.4
    assert "cut_short" not in d["down"] and "cut_short" not in d["up"]


def test_speedtest_past_its_budget_keeps_the_direction_it_measured(link):
    """A budget too short for both directions: download is kept, upload is said to be cut."""
    p = _speedtest_server(link, 8093, "--testlength", "10")
    link.shape(20)
    try:
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False,
                                                                   "speedtest_seconds": 4.0, "budget_s": 9.0}},
                            env={"http_proxy": f"http://{link.server_ip}:8093"}, timeout=60)["bandwidth"]
    finally:
        link.shape(None)
        netns.stop(p)
    m, d = r["metrics"], r["details"]
    assert 10 < m["download_mbps"] < 20
    assert "upload_mbps" not in m
    assert "skipped" in d["up"] or "cut_short" in d["up"]
    assert r["seconds"] < 9.0


@pytest.mark.parametrize("extra,expected,code", [
    (["--status", "403"], "HTTP 403", "speedtest_forbidden"),
    (None, "no internet connection", "no_network_route"),  # the proxy is not there and there is no route beyond it
], ids=["forbidden", "offline"])
def test_speedtest_failures_become_plain_messages(link, extra, expected, code):
    p = _speedtest_server(link, 8091, *extra) if extra is not None else None
    try:
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                            env={"http_proxy": f"http://{link.server_ip}:8091"})["bandwidth"]
    finally:
        if p is not None:
            netns.stop(p)
    assert expected in r["error"]
    assert r["finding"]["code"] == code  # and in the reader's words in the report


def test_a_server_without_the_endpoints_is_a_plain_error():
    """Any web server that is not a speed-test server: HTTP 404, said as such (loopback only)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from readiness.check import CheckContext, CheckError

    class NotHere(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotHere)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        settings = BandwidthCheck.default_settings() | {"url": f"http://127.0.0.1:{httpd.server_address[1]}", "stun": "none",
                                                        "max_duration_s": 1.0, "min_duration_s": 0.5}
        with pytest.raises(CheckError, match="no speed-test endpoint.*HTTP 404"):
            BandwidthCheck().run(CheckContext(settings=settings, options={}, budget_s=10))
    finally:
        httpd.shutdown()
        httpd.server_close()
