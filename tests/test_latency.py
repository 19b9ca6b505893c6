"""latency check against a STUN responder in a network namespace whose delay, jitter and drops are known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns  # noqa: E402
from netns import link  # noqa: E402,F401 - the shared namespace fixture

from readiness.measure.netstats import mos  # noqa: E402




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
    # and, under --server, that the services' own figures were not measured (issue 20)
    assert r["details"]["findings"] == [{"code": "latency_udp_silent", "args": {}},
                                        {"code": "measured_own_server", "args": {"url": url}}]


SERVICES_PROFILE = """
name = "teams-only"
[checks.latency]
targets = []
duration_s = 4.0
services = [
  {{ name = "Microsoft Teams", stun = ["{ip}:4301"] }},
  {{ name = "Google Meet", stun = ["{ip}:4302"] }},
  {{ name = "Nowhere", stun = ["{ip}:4399"] }},
]

[[requirement]]
metric = "latency.rtt_median_ms"
max = 100
severity = "required"
why = "any service"
fix = "f"
source = "https://example.org"

[[requirement]]
metric = "latency.rtt_median_ms"
service = "Microsoft Teams"
max = 100
severity = "required"
why = "Teams' edge"
fix = "f"
source = "https://learn.microsoft.com/microsoftteams/prepare-network"

[[requirement]]
metric = "latency.loss_pct"
service = "Microsoft Teams"
max = 1
severity = "required"
why = "Teams' edge"
fix = "f"
source = "https://learn.microsoft.com/microsoftteams/prepare-network"

[[requirement]]
metric = "latency.jitter_ms"
service = "Google Meet"
max = 30
severity = "required"
why = "Meet"
fix = "f"
source = "https://example.org"

[[requirement]]
metric = "latency.udp_reachable"
service = "Nowhere"
expect = true
severity = "recommended"
why = "a service without a relay"
fix = "f"
source = "https://example.org"
"""


def test_each_service_is_judged_on_its_own_path(link, tmp_path):
    """Three local responders stand in for the services: "Teams" slow and lossy, "Meet" fast,
    "Nowhere" silent. The best-of-all figure passes; Teams' own requirements fail on Teams'
    own numbers, through `readiness run` as a user calls it."""
    import json
    import shutil
    import subprocess

    teams = link.start_responder(4301, delay_ms=150, drop=0.05, seed=11)
    meet = link.start_responder(4302, delay_ms=20, jitter_ms=2, seed=12)
    profile = tmp_path / "teams.toml"
    profile.write_text(SERVICES_PROFILE.format(ip=link.server_ip))
    try:
        r = subprocess.run(["ip", "netns", "exec", link.client_ns, shutil.which("readiness"), "run", "-c", "latency",
                            "--requirements", str(profile), "--json", "--no-open", "-o", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
    finally:
        netns.stop(teams)
        netns.stop(meet)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    result = json.loads(r.stdout)
    lat = result["checks"]["latency"]
    services = lat["details"]["services"]
    assert services["Microsoft Teams"]["rtt_median_ms"] == pytest.approx(150, abs=5)
    assert 1.5 <= services["Microsoft Teams"]["loss_pct"] <= 10  # 5 % of 200 probes, seeded
    assert services["Google Meet"]["rtt_median_ms"] == pytest.approx(20, abs=4)
    assert services["Google Meet"]["loss_pct"] == 0 and services["Google Meet"]["udp_reachable"] is True
    assert services["Nowhere"]["udp_reachable"] is False and "rtt_median_ms" not in services["Nowhere"]
    assert lat["metrics"]["rtt_median_ms"]["value"] == pytest.approx(20, abs=4)  # best of all: Meet
    verdicts = {(i["requirement"]["metric"], i["requirement"].get("service")): i["status"]
                for i in result["judgement"]["items"]}
    assert verdicts[("latency.rtt_median_ms", None)] == "PASS"
    assert verdicts[("latency.rtt_median_ms", "Microsoft Teams")] == "FAIL"
    assert verdicts[("latency.loss_pct", "Microsoft Teams")] == "FAIL"
    assert verdicts[("latency.jitter_ms", "Google Meet")] == "PASS"
    assert verdicts[("latency.udp_reachable", "Nowhere")] == "WARN"
    assert result["judgement"]["overall"] == "FAIL"
    # the report's small per-service table: one row per service, its own figures
    html = next(tmp_path.glob("*.html")).read_text()
    table = html[html.index('<table class="kv services">'):]
    table = table[:table.index("</table>")]
    assert "<th>Microsoft Teams</th>" in table and "<th>Nowhere</th>" in table and "Media over UDP" in table
    from readiness.i18n.format import number  # the report's own rounding (150.52 -> "150.5")

    assert number(services["Microsoft Teams"]["rtt_median_ms"]) in table.split("<th>Microsoft Teams</th>")[1].split("</tr>")[0]
