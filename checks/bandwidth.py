"""bandwidth: download and upload Mbit/s, and how much latency grows under load (bufferbloat).

Two backends, chosen by the profile (``backend``):
- ``http`` (default): parallel TCP streams against ``readiness serve`` or any server with
  Cloudflare's ``/__down`` and ``/__up`` endpoints (``_http_backend.py``); ramp-up excluded,
  each direction stops once its rate is steady.
- ``speedtest``: the speedtest-cli library against Ookla's servers (``_speedtest_backend.py``).

While each direction is loaded, latency probes keep running (STUN over UDP every 50 ms where
the server answers STUN, else TCP handshakes every 100 ms); the increase of their median over
the idle median is the bufferbloat a call would suffer while someone else uploads.
``--server URL`` points the check at an organisation's ``readiness serve``.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Setting

from . import _netcommon as net

CLOUDFLARE = "https://speed.cloudflare.com"


class BandwidthCheck(Check):
    name = "bandwidth"
    title = "Bandwidth and latency under load"
    description = "Download and upload speed, and how much delay grows while the link is busy."
    resource = "network"
    order = 2
    budget_s = 20.0
    metrics = (
        Metric("download_mbps", "Mbit/s", "Download speed"),
        Metric("upload_mbps", "Mbit/s", "Upload speed"),
        Metric("loaded_latency_increase_ms", "ms", "Extra round-trip time while the link is loaded (worst direction)"),
        Metric("idle_rtt_ms", "ms", "Round-trip time to the test server before loading the link"),
    )
    settings = {
        "backend": Setting("http", "http (Cloudflare-style endpoints) or speedtest (speedtest.net via speedtest-cli)", str),
        "url": Setting(CLOUDFLARE, "Base URL of the http backend's server (/__down, /__up)", str),
        "stun": Setting("auto", "host:port for UDP latency probes under load; auto: the server's own STUN "
                                "(readiness serve) or stun.cloudflare.com for Cloudflare; none: TCP handshakes", str),
        "streams": Setting(4, "Parallel TCP streams per direction", int),
        "min_duration_s": Setting(1.5, "Shortest load per direction, seconds", float),
        "max_duration_s": Setting(4.0, "Longest load per direction, seconds", float),
        "request_mb": Setting(25.0, "Payload per HTTP request, MB (streams repeat requests)", float),
        "speedtest_server": Setting(0, "speedtest.net server id (0: the nearest)", int),
        "speedtest_secure": Setting(True, "Use HTTPS towards speedtest.net", bool),
    }

    def run(self, ctx: CheckContext) -> Measurement:
        s = ctx.settings
        server = net.server_option(ctx.options)
        backend = "http" if server is not None else str(s["backend"]).lower()
        if backend == "speedtest":
            from . import _speedtest_backend

            return _speedtest_backend.run(ctx)
        if backend != "http":
            raise CheckError(f"unknown bandwidth backend {s['backend']!r} (use http or speedtest)")
        from . import _http_backend as hb

        target = hb.Target(server.url if server is not None else str(s["url"]))
        try:
            infos, _ = net.resolve(target.host, target.port, 2.0)
        except Exception as e:  # noqa: BLE001
            if isinstance(e, (socket.gaierror, TimeoutError)):
                raise net.offline_error([target.host]) from None
            raise CheckError(f"cannot look up {target.host}: {e}") from None
        addr = infos[0]
        probe = _probe_target(target, str(s["stun"]), server)
        details: dict = {"backend": "http", "url": target.url, "address": addr[4][0], "probe": probe.describe()}

        ctx.say("measuring idle latency")
        idle = probe.idle()
        if idle is None and probe.kind == "stun":
            probe = _Probe("tcp", (target.host, target.port))  # the STUN port does not answer
            details["probe"] = probe.describe() + " (STUN got no answer)"
            idle = probe.idle()
        if idle is None:
            raise CheckError(f"the speed-test server {target.host}:{target.port} does not answer")
        details["idle_rtt_ms"] = round(idle, 2)
        metrics: dict = {"idle_rtt_ms": round(idle, 2)}
        increases = []
        for direction, metric in (("down", "download_mbps"), ("up", "upload_mbps")):
            ctx.say(f"measuring {'download' if direction == 'down' else 'upload'}")
            loaded = probe.start()
            r = hb.transfer(target, addr, direction, streams=int(s["streams"]),
                            min_s=float(s["min_duration_s"]), max_s=float(s["max_duration_s"]),
                            request_bytes=max(100_000, int(float(s["request_mb"]) * 1e6)))
            samples = loaded.finish()
            under = [x.rtt_s * 1000 for x in samples if x.rtt_s is not None
                     and r["t_steady_start"] <= x.sent_at <= r["t_load_end"]]
            lost = sum(1 for x in samples if x.rtt_s is None and r["t_steady_start"] <= x.sent_at <= r["t_load_end"])
            entry = {k: v for k, v in r.items() if not k.startswith("t_")}
            if r["mbps"] is not None:
                entry["mbps"] = round(r["mbps"], 3)
                metrics[metric] = round(r["mbps"], 3)
            entry["ramp_s"] = round(r["ramp_s"], 3)
            entry["seconds"] = round(r["seconds"], 3)
            if under:
                loaded_ms = statistics.median(under)
                entry["loaded_rtt_median_ms"] = round(loaded_ms, 2)
                entry["latency_increase_ms"] = round(max(0.0, loaded_ms - idle), 2)
                entry["probes_lost_under_load"] = lost
                increases.append(entry["latency_increase_ms"])
            details[direction] = entry
        if increases:
            metrics["loaded_latency_increase_ms"] = max(increases)
            if max(increases) >= 100:
                details["diagnosis"] = [f"Delay grows by {max(increases):.0f} ms while the link is busy "
                                        "(bufferbloat): calls stutter whenever someone else uploads or downloads."]
        if "download_mbps" not in metrics and "upload_mbps" not in metrics:
            errs = details["down"]["errors"] + details["up"]["errors"]
            raise CheckError("the speed test failed: " + ("; ".join(sorted(set(errs))) or "no data moved"))
        return Measurement(metrics=metrics, details=details)


class _Probe:
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
        if self.addr is None:
            return None
        from readiness.stun import probe_stream

        fam, sa = self.addr[0], self.addr[4]
        if self.kind == "stun":
            samples = probe_stream(sa, fam, count=20, interval_s=0.025, linger_s=0.5)
        else:
            samples = net.tcp_probe_stream(sa, fam, count=6, interval_s=0.05, timeout_s=1.0)
        rtts = [x.rtt_s * 1000 for x in samples if x.rtt_s is not None]
        return statistics.median(rtts) if rtts else None

    def start(self) -> "_Running":
        return _Running(self)


class _Running:
    def __init__(self, probe: _Probe) -> None:
        self.stop = threading.Event()
        self.samples: list = []
        self.thread = None
        if probe.addr is None:
            return
        from readiness.stun import probe_stream

        fam, sa = probe.addr[0], probe.addr[4]
        if probe.kind == "stun":
            work = lambda: self.samples.extend(probe_stream(sa, fam, interval_s=0.05, stop=self.stop, linger_s=0.5))  # noqa: E731
        else:
            work = lambda: self.samples.extend(net.tcp_probe_stream(sa, fam, interval_s=0.1, stop=self.stop, timeout_s=1.0))  # noqa: E731
        self.thread = threading.Thread(target=work, daemon=True, name="loaded-latency")
        self.thread.start()

    def finish(self) -> list:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(2.0)
        return list(self.samples)


def _probe_target(target, stun_setting: str, server) -> _Probe:
    if stun_setting.lower() == "none":
        return _Probe("tcp", (target.host, target.port))
    if stun_setting.lower() != "auto":
        return _Probe("stun", net.split_hostport(stun_setting, 3478))
    if server is None and target.host == "speed.cloudflare.com":
        return _Probe("stun", ("stun.cloudflare.com", 3478))
    port = net.advertised_stun_port(server.url if server is not None else target.url)
    if port is None:
        return _Probe("tcp", (target.host, target.port))
    return _Probe("stun", (target.host, port))
