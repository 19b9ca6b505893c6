"""bandwidth: download and upload Mbit/s, latency under load, and responsiveness (RPM).

One package, one module per part:
- ``http_backend``: parallel TCP streams against ``readiness serve`` or any server with
  Cloudflare's ``/__down`` and ``/__up`` endpoints (default backend);
- ``speedtest_backend``: the speedtest-cli library against Ookla's servers;
- ``estimator``: the steady-rate rule both share (pure functions, unit-tested);
- ``loaded``: latency probes running while a direction is loaded (STUN over UDP every 50 ms
  where the server answers STUN, else TCP handshakes), and their summary;
- ``responsiveness``: round trips per minute after draft-ietf-ippm-responsiveness.

The check reports facts only. The loaded-latency increase is a metric and, when there is one,
a neutral finding (``{"code": "loaded_latency_increase", "args": {"ms": …}}``); whether it is
too much is for the profile to say. ``--server URL`` points the check at an organisation's
``readiness serve``. This module imports nothing heavy: it is read whenever checks are listed.
"""

from __future__ import annotations

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Repeatability, Setting
from readiness.measure import netcommon as net


CLOUDFLARE = "https://speed.cloudflare.com"


class BandwidthCheck(Check):
    name = "bandwidth"
    title = "Bandwidth and latency under load"
    description = "Download and upload speed, and how much delay grows while the link is busy."
    resource = "network"
    section = "network"
    fix = "bandwidth"
    order = 2
    budget_s = 25.0
    metrics = (
        Metric("download_mbps", "Mbit/s", "Download speed", key_figure=11,
               repeatability=Repeatability(5.0, 0.5, "bench/network.py: the http backend within 5 % of iperf3 at 5, 50 and 500 Mbit/s; its repeatability rows print the CV of 10 runs")),
        Metric("upload_mbps", "Mbit/s", "Upload speed", key_figure=10,
               repeatability=Repeatability(5.0, 0.5, "bench/network.py: the http backend within 5 % of iperf3 at 5, 50 and 500 Mbit/s; its repeatability rows print the CV of 10 runs")),  # the one a video call runs out of first
        Metric("loaded_latency_increase_ms", "ms", "Extra round-trip time while the link is loaded (worst direction)",
               fix="network_path"),
        Metric("idle_rtt_ms", "ms", "Round-trip time to the test server before loading the link", fix="network_path"),
        Metric("responsiveness_rpm", "RPM", "Round trips per minute while the link is loaded "
                                            "(draft-ietf-ippm-responsiveness; worst direction)"),
    )
    settings = {
        "backend": Setting("http", "http (Cloudflare-style endpoints) or speedtest (speedtest.net via speedtest-cli)", str),
        "url": Setting(CLOUDFLARE, "Base URL of the http backend's server (/__down, /__up)", str),
        "stun": Setting("auto", "host:port for UDP latency probes under load; auto: the server's own STUN "
                                "(readiness serve) or stun.cloudflare.com for Cloudflare; none: TCP handshakes", str),
        "streams": Setting(4, "Parallel TCP streams per direction", int),
        "min_duration_s": Setting(1.5, "Shortest load per direction, seconds", float),
        "max_duration_s": Setting(7.0, "Longest load per direction, seconds (a deep queue needs several "
                                       "loaded round trips to settle; ordinary links stop after ~1.5 s)", float),
        "request_mb": Setting(25.0, "Payload per HTTP request, MB (streams repeat requests)", float),
        "responsiveness": Setting(True, "Measure responsiveness (RPM) with probes on fresh connections", bool),
        "speedtest_server": Setting(0, "speedtest.net server id (0: the nearest)", int),
        "speedtest_secure": Setting(True, "Use HTTPS towards speedtest.net", bool),
        "speedtest_seconds": Setting(8.0, "Length of each speedtest.net direction, seconds (speedtest.net's own "
                                          "configuration says 10; shorter keeps the check within its budget)", float),
    }

    def run(self, ctx: CheckContext) -> Measurement:
        server = net.server_option(ctx.options)
        backend = "http" if server is not None else str(ctx.settings["backend"]).lower()
        if backend == "speedtest":
            from readiness.checks.bandwidth import speedtest_backend  # lazy: speedtest-cli, only when chosen

            return speedtest_backend.run(ctx)
        if backend != "http":
            raise CheckError(f"unknown bandwidth backend {ctx.settings['backend']!r} (use http or speedtest)")
        from readiness.checks.bandwidth import http_backend  # lazy: the plugin loader reads this module on every run

        return http_backend.run(ctx, server)

