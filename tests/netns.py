"""Test network: two network namespaces joined by a veth pair, shaped by the kernel.

``client`` (10.X.Y.1) and ``server`` (10.X.Y.2) see only each other. ``tbf`` on both ends
sets the rate and the queue depth (bufferbloat), iptables' ``statistic`` match drops a known
fraction of packets. Processes run inside with ``ip netns exec``; everything is torn down by
:meth:`Link.close` (namespaces, and with them the veth pair, qdiscs, rules and processes).
Traffic never leaves the two namespaces. Used by the tests and by ``bench/network.py``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_counter = itertools.count(1)


@pytest.fixture(scope="module")
def link():
    """A fresh client/server namespace pair for a test module (skips, or fails under CI, without root)."""
    from support import need

    ok, why = available()
    need(ok, why)
    with Link() as lk:
        yield lk


def available() -> tuple[bool, str]:
    """(usable?, why not): root, ip, tc and iptables present, and a namespace can be made."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    for tool in ("ip", "tc", "iptables"):
        if not (shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}")):
            return False, f"{tool} is not installed (tests/run.sh installs iproute2/iptables)"
    name = f"rdyprobe{os.getpid() % 100000}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode:
        return False, f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


class Link:
    """A client namespace and a server namespace joined by veth; see the module docstring."""

    def __init__(self) -> None:
        n = next(_counter)
        tag = f"{os.getpid() % 10000}x{n}"
        self.client_ns, self.server_ns = f"rdyc{tag}", f"rdys{tag}"
        subnet = (os.getpid() * 7 + n) % 250 + 1
        self.client_ip, self.server_ip = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
        self.veth_c, self.veth_s = f"vc{tag}"[:15], f"vs{tag}"[:15]
        self.procs: list[subprocess.Popen] = []
        self._etc: Path | None = None
        try:
            _sh("ip", "netns", "add", self.client_ns)
            _sh("ip", "netns", "add", self.server_ns)
            _sh("ip", "link", "add", self.veth_c, "netns", self.client_ns, "type", "veth",
                "peer", "name", self.veth_s, "netns", self.server_ns)
            for ns, dev, ip in ((self.client_ns, self.veth_c, self.client_ip),
                                (self.server_ns, self.veth_s, self.server_ip)):
                _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
                _sh("ip", "-n", ns, "link", "set", dev, "up")
                _sh("ip", "-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ shaping
    def shape(self, rate_mbit: float | None, queue_ms: float = 50.0) -> None:
        """tbf on both ends: ``rate_mbit`` each way with a queue of ``queue_ms``; None removes it."""
        for ns, dev in ((self.client_ns, self.veth_c), (self.server_ns, self.veth_s)):
            _sh("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)
            if rate_mbit is None:
                continue
            # a small bucket (2 ms at rate, at least 16 KB) keeps the rate smooth and the queue
            # as set: tbf's queue limit is rate x latency + burst
            burst = max(16 * 1024, int(rate_mbit * 1e6 / 8 * 0.002))
            _sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                "rate", f"{rate_mbit}mbit", "burst", str(burst), "latency", f"{queue_ms}ms")

    def drop(self, probability: float, proto: str = "udp", chain: str = "OUTPUT", ns: str | None = None) -> None:
        """Drop ``probability`` of ``proto`` packets leaving the client (iptables statistic)."""
        ns = ns or self.client_ns
        _sh("ip", "netns", "exec", ns, "iptables", "-w", "-F", chain)
        if probability > 0:
            args = ["ip", "netns", "exec", ns, "iptables", "-w", "-A", chain, "-p", proto]
            if probability < 1:
                args += ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.6f}"]
            _sh(*args, "-j", "DROP")

    def break_dns(self) -> None:
        """Give the client a default route and a resolver that does not answer.

        The route goes to the server namespace (nothing forwards beyond it) and the resolver is
        the server's address, where nothing listens on port 53 (``ip netns exec`` mounts
        /etc/netns/NS/resolv.conf over /etc/resolv.conf). So "there is a network, but DNS
        lookups fail", with no packet leaving the two namespaces.
        """
        _sh("ip", "-n", self.client_ns, "route", "add", "default", "via", self.server_ip)
        folder = Path("/etc/netns") / self.client_ns
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text(f"nameserver {self.server_ip}\noptions timeout:1 attempts:1\n")
        self._etc = folder

    # ------------------------------------------------------------------ processes
    def popen(self, ns: str, args: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=subprocess.DEVNULL,
                             stdout=kw.pop("stdout", subprocess.PIPE), stderr=kw.pop("stderr", subprocess.PIPE),
                             text=True, **kw)
        self.procs.append(p)
        return p

    def start_server(self, http_port: int = 8080, stun_port: int = 3478, *extra: str) -> tuple[subprocess.Popen, str]:
        """``readiness serve`` in the server namespace; returns (process, URL) once it listens."""
        p = self.popen(self.server_ns, [sys.executable, "-m", "readiness.server.measure", "--host", self.server_ip,
                                        "--port", str(http_port), "--stun-port", str(stun_port), *extra])
        wait_line(p, "listening on")
        return p, f"http://{self.server_ip}:{http_port}"

    def start_responder(self, port: int, delay_ms: float = 0, jitter_ms: float = 0, drop: float = 0,
                        seed: int = 1) -> subprocess.Popen:
        """The late-answering STUN responder in the server namespace (``python -m readiness.server.stun``)."""
        p = self.popen(self.server_ns, ["nice", "-n", "-5", sys.executable, "-m", "readiness.server.stun",
                                        "--host", self.server_ip, "--port", str(port),
                                        "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                                        "--drop", str(drop), "--seed", str(seed)])
        wait_line(p, "ready")
        return p

    def iperf3(self, seconds: float = 2.0, reverse: bool = False, streams: int = 4, port: int = 5201,
               omit: float = 1.0) -> float:
        """iperf3's Mbit/s client<->server (reverse: server sends), as the receiver saw it.

        The mean of the receiver's one-second intervals after the ``omit`` first seconds, i.e.
        the bytes the receiver got from the end of second 1 to the end, over that time. Not
        the end-of-run sum, which on the sender side counts bytes still sitting in queues; and
        not the median of the intervals: over a deep queue the receiver's in-order count
        stalls at each loss and then jumps, so single seconds read up to 15 % high or low
        while their mean stays exact.
        """
        import statistics

        srv = self.popen(self.server_ns, ["iperf3", "-s", "-1", "-J", "-B", self.server_ip, "-p", str(port)])
        time.sleep(0.3)
        args = ["ip", "netns", "exec", self.client_ns, "iperf3", "-c", self.server_ip, "-p", str(port),
                "-t", str(seconds), "-O", str(omit), "-P", str(streams), "-J", "--get-server-output"]
        r = subprocess.run(args + (["-R"] if reverse else []), capture_output=True, text=True, timeout=seconds + omit + 20)
        stop(srv)
        data = json.loads(r.stdout)
        if "error" in data:
            raise RuntimeError(f"iperf3: {data['error']}")
        receiver = data["intervals"] if reverse else data.get("server_output_json", {}).get("intervals", [])
        rates = [i["sum"]["bits_per_second"] for i in receiver if not i["sum"]["omitted"] and i["sum"]["seconds"] >= 0.5]
        if not rates:
            return data["end"]["sum_received"]["bits_per_second"] / 1e6
        return statistics.fmean(rates) / 1e6

    def run_checks(self, names: list[str], settings: dict | None = None, options: dict | None = None,
                   env: dict | None = None, timeout: float = 60) -> dict:
        """Run checks in the client namespace, one after another, in a fresh Python process.

        Returns {name: {"metrics", "details", "seconds"} or {"error", "finding", "seconds"}}.
        """
        payload = json.dumps({"names": names, "settings": settings or {}, "options": options or {}})
        r = subprocess.run(["ip", "netns", "exec", self.client_ns, sys.executable, "-c", _RUNNER, payload],
                           capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
        if r.returncode:
            raise RuntimeError(f"check runner failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        for p in self.procs:
            stop(p)
        self.procs.clear()
        for ns in (self.client_ns, self.server_ns):
            pids = _sh("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:  # only processes started inside our own namespaces
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
            _sh("ip", "netns", "del", ns, check=False)
        folder = self._etc
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_line(p: subprocess.Popen, marker: str, timeout: float = 10.0) -> str:
    """Read the process's stderr until a line containing ``marker``; raise (the process killed)
    if it dies or the deadline passes first.

    Each line is read by ``readline`` in a helper thread, waited for up to the deadline. (A
    ``select`` on the pipe before each ``readline`` waited out the whole timeout when two lines
    had come in one read: the second sat in Python's buffer, not in the pipe.)"""
    import queue
    import threading

    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        box: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: box.put(p.stderr.readline()), daemon=True).start()
        try:
            line = box.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if not line:
            break
        seen.append(line)
        if marker in line:
            return line
    if p.poll() is None:  # the test fails here: the process must not outlive it
        p.kill()
        p.wait(10)
    raise RuntimeError(f"process never said {marker!r}: {''.join(seen)[-1000:]}")


def stop(p: subprocess.Popen, timeout: float = 3.0) -> int | None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(2)
    return p.returncode


def port_of(line: str, kind: str) -> int:
    m = re.search(rf"{kind}[^\d]*[\d.]+:(\d+)", line)
    return int(m.group(1)) if m else 0


_RUNNER = r"""
import json, sys, time
from readiness.check import CheckContext, CheckError
import importlib
cfg = json.loads(sys.argv[1])
out = {}
for name in cfg["names"]:
    mod = importlib.import_module(f"readiness.checks.{name}")
    cls = getattr(mod, name.capitalize() + "Check")
    settings = cls.default_settings() | cfg["settings"].get(name, {})
    budget = float(settings.pop("budget_s", cls.budget_s))
    t = time.monotonic()
    try:
        m = cls().run(CheckContext(settings=settings, options=cfg["options"], budget_s=budget))
        out[name] = {"metrics": m.metrics, "details": m.details}
    except CheckError as e:
        out[name] = {"error": str(e), "finding": e.finding}
    out[name]["seconds"] = time.monotonic() - t
print(json.dumps(out))
"""
