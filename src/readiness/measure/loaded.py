"""Latency under load, shared by both bandwidth backends: probes beside the transfer.

STUN Binding requests over UDP every 50 ms where the server answers STUN, else TCP handshakes
every 100 ms. The answered samples are also handed over live (``Running.rtts``), so the
estimator can see a deep queue still filling. ``summarize`` turns the samples of one loaded
direction into facts: the loaded median RTT and its increase over the idle median.
"""

from __future__ import annotations

import socket
import statistics
import threading

from readiness.measure import netcommon as net
from readiness.measure.stun import probe_stream


class Probe:
    """Latency probes towards the speed-test server: STUN over UDP, or TCP handshakes."""

    def __init__(self, kind: str, hostport: tuple[str, int]) -> None:
        self.kind, self.hostport = kind, hostport
        self.addr = None
        try:
            kind_ = socket.SOCK_DGRAM if kind == "stun" else socket.SOCK_STREAM
            self.addr = net.resolve(hostport[0], hostport[1], 2.0, kind_)[0][0]
        except Exception:  # noqa: BLE001 - no probes: loaded latency stays unknown
            pass

    def describe(self) -> str:
        how = "STUN over UDP every 50 ms" if self.kind == "stun" else "TCP handshakes every 100 ms"
        return f"{how} to {self.hostport[0]}:{self.hostport[1]}"

    def idle(self) -> float | None:
        """Median idle RTT in ms, or None when nothing answered."""
        if self.addr is None:
            return None

        fam, sa = self.addr[0], self.addr[4]
        if self.kind == "stun":
            samples = probe_stream(sa, fam, count=20, interval_s=0.025, linger_s=0.5)
        else:
            samples = net.tcp_probe_stream(sa, fam, count=6, interval_s=0.05, timeout_s=1.0)
        rtts = [x.rtt_s * 1000 for x in samples if x.rtt_s is not None]
        return statistics.median(rtts) if rtts else None

    def start(self) -> "Running":
        return Running(self)


class Running:
    """Probes running in a thread until :meth:`finish`; ``rtts`` fills as answers come."""

    def __init__(self, probe: Probe) -> None:
        self.stop = threading.Event()
        self.samples: list = []
        self.rtts: list[tuple[float, float]] = []  # (sent at, rtt seconds), appended live
        self.thread = None
        if probe.addr is None:
            return

        fam, sa = probe.addr[0], probe.addr[4]

        def seen(s) -> None:
            self.rtts.append((s.sent_at, s.rtt_s))

        if probe.kind == "stun":
            def work() -> None:
                self.samples.extend(probe_stream(sa, fam, interval_s=0.05, stop=self.stop, linger_s=0.5, on_sample=seen))
        else:
            def work() -> None:
                self.samples.extend(net.tcp_probe_stream(sa, fam, interval_s=0.1, stop=self.stop, timeout_s=1.0,
                                                         on_sample=seen))
        self.thread = threading.Thread(target=work, daemon=True, name="loaded-latency")
        self.thread.start()

    def finish(self) -> list:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(2.0)
        return list(self.samples)


def summarize(samples: list, idle_ms: float | None, t_from: float, t_to: float) -> dict:
    """Facts of the probes sent in [t_from, t_to] of one loaded direction (ms)."""
    inside = [x for x in samples if t_from <= x.sent_at <= t_to]
    under = [x.rtt_s * 1000 for x in inside if x.rtt_s is not None]
    out: dict = {}
    if not under:
        return out
    loaded = statistics.median(under)
    out["loaded_rtt_median_ms"] = round(loaded, 2)
    out["probes_lost_under_load"] = sum(1 for x in inside if x.rtt_s is None)
    if idle_ms is not None:
        out["latency_increase_ms"] = round(max(0.0, loaded - idle_ms), 2)
    return out


def add_loaded_facts(metrics: dict, details: dict) -> None:
    """Worst direction's latency increase and RPM as metrics, the increase as a finding too."""
    increases = [details[d]["latency_increase_ms"] for d in ("down", "up")
                 if "latency_increase_ms" in details.get(d, {})]
    if increases:
        metrics["loaded_latency_increase_ms"] = max(increases)
        details.setdefault("findings", []).append(
            {"code": "loaded_latency_increase", "args": {"ms": round(max(increases))}})
    rpms = [details[d]["responsiveness"]["rpm"] for d in ("down", "up")
            if "rpm" in details.get(d, {}).get("responsiveness", {})]
    if rpms:
        metrics["responsiveness_rpm"] = min(rpms)
