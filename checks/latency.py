"""latency: a UDP probe stream paced like audio, the way a call sees the network.

A STUN Binding request every 20 ms (for 5 s by default) to each target, all targets at once;
the target with the lowest median RTT is the one a call would use, and its numbers become the
metrics (every target's numbers are in the details). Where no target answers over UDP, RTT
comes from TCP handshakes instead, labelled so in the details; jitter, loss and MOS are then
left out, because TCP hides loss and jitter behind retransmits.

Per service: an organisation that uses only Teams needs Teams' path judged, not the best of
all services. Each configured service's media relays (its ``stun`` endpoints, the same list
the connectivity check uses) are probed in the same stream, and ``details["services"]``
holds, per service name, the numbers of its best relay and whether any relay answered over
UDP. A requirement with ``service = "<name>"`` is judged on that service's numbers.
"""

from __future__ import annotations

import socket
import threading
import time

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Repeatability, Setting
from readiness.checks.connectivity import DEFAULT_SERVICES
from readiness.measure import netcommon as net, netstats, stun


PER_SERVICE = ("rtt_median_ms", "rtt_p95_ms", "jitter_ms", "loss_pct", "burst_loss_pct", "mos")

DEFAULT_TARGETS = [
    "stun.l.google.com:19302",  # Google Meet's STUN
    "worldaz.tr.teams.microsoft.com:3478",  # Microsoft Teams media relays
]


class LatencyCheck(Check):
    name = "latency"
    title = "Latency, jitter and loss"
    description = "UDP probes paced like an audio stream (every 20 ms) to meeting services' STUN servers."
    resource = "network"
    section = "network"
    fix = "network_path"
    order = 1
    budget_s = 15.0
    metrics = (
        Metric("rtt_min_ms", "ms", "Lowest round-trip time"),
        Metric("rtt_median_ms", "ms", "Median round-trip time", key_figure=20,
               repeatability=Repeatability(0.0, 2.0, "bench/network.py: median RTT within 2 ms of the responder's delay, 10-200 ms")),
        Metric("rtt_p95_ms", "ms", "95th percentile round-trip time"),
        Metric("jitter_ms", "ms", "Interarrival jitter (RFC 3550 estimator over RTTs)", key_figure=21,
               repeatability=Repeatability(0.0, 2.0, "bench/network.py: jitter within 2 ms of what the responder's uniform jitter implies")),
        Metric("loss_pct", "%", "Probes without an answer", key_figure=22,
               repeatability=Repeatability(0.0, 1.0, "bench/network.py: loss within 1 point of the kernel's drop counter at 3 %")),
        Metric("burst_loss_pct", "%", "Worst loss in any 200 ms"),
        Metric("reorder_pct", "%", "Answers that arrived out of order"),
        Metric("mos", "", "Estimated voice quality (MOS, simplified E-model, 1-4.4)"),
        Metric("udp_reachable", "", "A media relay answered the UDP probes", kind="bool"),
    )
    settings = {
        "targets": Setting(DEFAULT_TARGETS, "STUN servers (host:port) to probe", list, items=net.hostport_problem),
        "duration_s": Setting(5.0, "Length of the probe stream, seconds", float),
        "interval_ms": Setting(20.0, "Time between probes (20 ms = one audio packet)", float),
        "tcp_port": Setting(443, "Port for the TCP-handshake fallback where UDP gets no answer", int),
        "services": Setting([{"name": sv["name"], "stun": sv["stun"]} for sv in DEFAULT_SERVICES if sv["stun"]],
                            "Services whose media relays are probed and reported one by one: "
                            "{name, stun = [host:port]}", list),
    }

    def run(self, ctx: CheckContext) -> Measurement:

        s = ctx.settings
        server = net.server_option(ctx.options)
        services: dict[str, list[tuple[str, int]]] = {}
        if server is not None:
            targets = [(server.host, server.stun_port)]
            tcp_targets = [(server.host, server.port)]
        else:
            targets = [net.split_hostport(t, stun.DEFAULT_PORT) for t in s["targets"]]
            for svc in s.get("services") or []:
                if isinstance(svc, dict) and svc.get("name"):
                    services[str(svc["name"])] = [net.split_hostport(str(e), stun.DEFAULT_PORT)
                                                  for e in svc.get("stun", [])]
            targets = list(dict.fromkeys(targets + [hp for hps in services.values() for hp in hps]))
            tcp_targets = [(h, int(s["tcp_port"])) for h, _ in targets]
        if not targets:
            raise CheckError("no latency targets configured")
        interval = max(0.005, float(s["interval_ms"]) / 1000)
        duration = max(interval, float(s["duration_s"]))
        count = max(1, round(duration / interval))

        resolved = net.resolve_all(targets, timeout_s=2.0, kind=socket.SOCK_DGRAM)
        addrs = {hp: r[0][0] for hp, r in resolved.items() if not isinstance(r, Exception)}
        if not addrs:
            raise net.offline_error([h for h, _ in targets])

        ctx.say(f"probing {len(addrs)} target(s) over UDP every {interval * 1000:g} ms for {duration:g} s",
                step="latency_probing", n=len(addrs), ms=interval * 1000, seconds=duration)
        results: dict = {}

        def probe(hp, ai) -> None:
            try:
                results[hp] = stun.probe_stream(ai[4], ai[0], count=count, interval_s=interval)
            except OSError as e:
                results[hp] = e

        threads = [threading.Thread(target=probe, args=(hp, ai), daemon=True) for hp, ai in addrs.items()]
        for t in threads:
            t.start()
        deadline = time.monotonic() + duration + 3
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

        per_target: dict = {}
        best = None
        for hp in targets:
            key = f"{hp[0]}:{hp[1]}"
            r = resolved.get(hp)
            if isinstance(r, Exception):
                per_target[key] = {"error": f"DNS lookup failed: {r}"}
                continue
            samples = results.get(hp)
            if samples is None or isinstance(samples, Exception):
                per_target[key] = {"error": str(samples or "probe did not finish")}
                continue
            st = netstats.summarize(samples, interval_s=interval)
            st["address"] = addrs[hp][4][0]
            per_target[key] = _rounded(st)
            if "rtt_median_ms" in st and (best is None or st["rtt_median_ms"] < best[1]["rtt_median_ms"]):
                best = (key, st)

        if services:
            per_service = _per_service(services, per_target)
        details: dict = {"targets": per_target, "interval_ms": interval * 1000, "duration_s": duration,
                         "jitter_method": "RFC 3550 §6.4.1 estimator over RTTs, averaged over the stream",
                         "mos_method": "simplified E-model (ITU-T G.107) as in Twilio's preflight test"}
        if server is not None and s.get("services"):
            # the services' own figures are not measured here: say so, rather than leave them blank
            details["findings"] = [{"code": "measured_own_server", "args": {"url": server.url}}]
        if best is not None:
            key, st = best
            details["method"] = "udp-stun"
            details["target"] = key
            metrics = {k: round(st[k], 3) for k in (
                "rtt_min_ms", "rtt_median_ms", "rtt_p95_ms", "jitter_ms", "loss_pct",
                "burst_loss_pct", "reorder_pct", "mos") if k in st}
            metrics["udp_reachable"] = True
            if services:
                details["services"] = per_service
            return Measurement(metrics=metrics, details=details)

        # No STUN answer anywhere: UDP is blocked (or the targets are down). Fall back to TCP.
        ctx.say("no UDP answers; measuring RTT by TCP handshakes instead", step="latency_tcp_fallback")
        details["method"] = "tcp-connect (UDP got no answer)"
        details["findings"] = [{"code": "latency_udp_silent", "args": {}}] + details.get("findings", [])
        fallback: dict = {}
        for hp in tcp_targets:
            try:
                infos, _ = net.resolve(hp[0], hp[1], 2.0)
            except Exception:  # noqa: BLE001
                continue
            ai = infos[0]
            samples = net.tcp_probe_stream(ai[4], ai[0], interval_s=0.1, count=10, timeout_s=1.0)
            st = netstats.summarize(samples, interval_s=0.1)
            fallback[f"{hp[0]}:{hp[1]}"] = _rounded(st)
            if "rtt_median_ms" in st:
                details["target"] = f"{hp[0]}:{hp[1]} (tcp)"
                details["fallback"] = fallback
                if services:
                    details["services"] = per_service
                metrics = {k: round(st[k], 3) for k in ("rtt_min_ms", "rtt_median_ms", "rtt_p95_ms")}
                return Measurement(metrics=metrics | {"udp_reachable": False}, details=details)
        details["fallback"] = fallback
        raise CheckError("no answer from any latency target, neither over UDP nor TCP "
                         "(a firewall blocks them, or there is no internet connection)", code="latency_no_answer")


def _per_service(services: dict[str, list[tuple[str, int]]], per_target: dict) -> dict:
    """Each service's figures from its best relay (lowest median RTT), and UDP reachability."""
    out: dict = {}
    for name, hps in services.items():
        answered = [(f"{h}:{p}", per_target.get(f"{h}:{p}", {})) for h, p in hps]
        answered = [(k, st) for k, st in answered if "rtt_median_ms" in st]
        entry: dict = {"relays": [f"{h}:{p}" for h, p in hps], "udp_reachable": bool(answered)}
        if answered:
            key, st = min(answered, key=lambda kv: kv[1]["rtt_median_ms"])
            entry["relay"] = key
            entry.update({k: st[k] for k in PER_SERVICE if k in st})
        out[name] = entry
    return out


def _rounded(st: dict) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in st.items()}
