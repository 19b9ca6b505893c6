"""bandwidth check on a kernel-shaped link (tbf), with iperf3 on the same link as the reference."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns  # noqa: E402
from netns import link  # noqa: E402,F401 - the shared namespace fixture
from support import need, need_tool  # noqa: E402

from readiness.checks.bandwidth import BandwidthCheck  # noqa: E402

HERE = Path(__file__).resolve().parent




@pytest.fixture(scope="module")
def served(link):
    server, url = link.start_server(8083, 3481)
    yield url
    netns.stop(server)




def test_http_backend_matches_iperf3_on_a_shaped_link(link, served):
    need_tool("iperf3")
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
    # the worst direction's loaded median RTT over the idle one, from the check's own samples
    # (a ">= 0" here could not fail: the code clamps)
    worst = max(d[k]["loaded_rtt_median_ms"] for k in ("down", "up"))
    assert m["loaded_latency_increase_ms"] == pytest.approx(max(0.0, worst - m["idle_rtt_ms"]), abs=0.02)
    assert d["down"]["errors"] == [] and d["up"]["errors"] == []


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
    # this isolated link cannot reach: judged apart, and that is a fault
    conn = result["checks"]["connectivity"]["metrics"]
    assert conn["udp_server_reachable"]["value"] is True and conn["udp_media_reachable"]["value"] is False
    assert items[("connectivity.udp_media_reachable", "required")] == "FAIL"
    assert result["judgement"]["overall"] == "FAIL" and r.returncode == 1


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
        r = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                            env={"http_proxy": f"http://{link.server_ip}:8090"})["bandwidth"]
    finally:
        link.shape(None)
        netns.stop(p)
    m, d = r["metrics"], r["details"]
    assert d["backend"] == "speedtest" and d["server"]["id"] == "4242"
    # speedtest-cli counts its ramp-up, so its download reads low, never above the 20 Mbit/s the
    # kernel allows; its upload counts bytes still queued in the socket, so it may read a bit high
    assert 10 < m["download_mbps"] < 20
    assert 10 < m["upload_mbps"] < 25


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
