"""The system check against what the machine itself says (psutil, /proc, the kernel's routes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support import scratch_namespace
from readiness.check import CheckContext
from readiness.checks.system import SystemCheck
from readiness.measure.netinfo import interface_kind
from readiness.redact import redact_url


def measure(**options):
    check = SystemCheck()
    return check.run(CheckContext(settings={"sample_s": 0.2}, options=options, budget_s=5))


def test_figures_match_the_machine():
    m = measure().metrics
    assert m["cpu_threads"] == os.cpu_count()
    with open("/proc/meminfo") as fh:
        kb = int(next(line for line in fh if line.startswith("MemTotal:")).split()[1])
    assert m["ram_total_gb"] == round(kb * 1024 / 1024**3)
    assert 0 < m["ram_available_gb"] <= kb / 1024**2 + 0.01
    st = os.statvfs(os.path.expanduser("~"))
    assert abs(m["disk_free_gb"] - st.f_bavail * st.f_frsize / 1024**3) < 1.0
    assert 0.0 <= m["cpu_load_pct"] <= 100.0


def test_cpu_load_sees_a_busy_machine():
    code = "import time\nt=time.time()\nwhile time.time()-t<3: pass"
    burners = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)]
    try:
        busy = measure().metrics["cpu_load_pct"]
    finally:
        for p in burners:
            p.kill()
            p.wait()
    assert busy > 60.0


def test_proxy_from_environment_is_seen_without_credentials(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:s3cret@proxy.corp.example:3128")
    r = measure()
    assert r.metrics["proxy_configured"] is True
    assert r.details["proxies"]["https"] == "http://***@proxy.corp.example:3128"
    assert "s3cret" not in str(r.details)
    assert redact_url("http://proxy:8080") == "http://proxy:8080"


@pytest.mark.parametrize("name, kind", [("lo", "loopback"), ("tun0", "vpn"), ("wg0", "vpn"), ("tailscale0", "vpn"), ("docker0", "virtual")])
def test_interface_kinds_on_linux(name, kind):
    assert interface_kind(name) == kind


def _netns_run(ns: str, *cmds: list[str]) -> None:
    for cmd in cmds:
        subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, timeout=20)


@pytest.mark.parametrize("tunnel", [True, False])
def test_vpn_is_detected_from_the_default_route(tunnel, tmp_path):
    with scratch_namespace("rdysys") as ns:
        dev = "tun7" if tunnel else "veth7"
        create = (["ip", "tuntap", "add", "dev", dev, "mode", "tun"] if tunnel
                  else ["ip", "link", "add", dev, "type", "veth", "peer", "name", "veth7b"])
        _netns_run(ns, create, ["ip", "link", "set", dev, "up"], ["ip", "addr", "add", "10.99.0.1/24", "dev", dev],
                   ["ip", "route", "add", "default", "dev", dev])
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "readiness.cli", "run", "--check", "system",
                              "--json", "--no-open", "-q", "-o", str(tmp_path)], capture_output=True, text=True, timeout=60)
    import json

    doc = json.loads(out.stdout)
    system = doc["checks"]["system"]
    assert system["details"]["default_route_interface"] == dev
    assert system["metrics"]["vpn_active"]["value"] is tunnel
    assert system["metrics"]["wired_network"]["value"] is False  # a tunnel or a veth is no cable
