"""The ``speedtest`` bandwidth backend: the speedtest-cli library, in-process, against Ookla's servers.

Used by ``bandwidth.py`` when the profile says ``backend = "speedtest"``. speedtest-cli divides
all bytes by the whole wall time (ramp-up included) and runs each direction for the
configuration's test length (~10 s), so it is slower and reads lower than the ``http`` backend;
its "ping" is half an HTTP request time, so idle and loaded RTT here come from our own TCP
handshakes to the chosen server instead. Every speedtest-cli exception becomes one plain
sentence (HTTP 403, no servers, no configuration, offline).
"""

from __future__ import annotations

import statistics
import time

from readiness.check import CheckContext, CheckError, Measurement

from . import _netcommon as net


def _plain_error(e: Exception, speedtest) -> CheckError:
    text = str(e)
    if isinstance(e, speedtest.ConfigRetrievalError):
        if "403" in text:
            return CheckError("speedtest.net refused the test (HTTP 403 Forbidden); this happens often with "
                              "speedtest-cli - try again later, or use the http backend")
        try:
            net.resolve("www.speedtest.net", 443, 2.0)
        except Exception:  # noqa: BLE001
            return net.offline_error(["www.speedtest.net"])
        return CheckError(f"could not fetch the speedtest.net configuration ({_reason(e)})")
    if isinstance(e, speedtest.NoMatchedServers):
        return CheckError("the configured speedtest.net server is not in speedtest.net's server list")
    if isinstance(e, (speedtest.ServersRetrievalError, speedtest.SpeedtestServersError)):
        return CheckError("could not fetch the list of speedtest.net servers")
    if isinstance(e, speedtest.SpeedtestBestServerFailure):
        return CheckError("no speedtest.net server answered the latency test")
    if isinstance(e, speedtest.SpeedtestConfigError):
        return CheckError("speedtest.net sent a configuration speedtest-cli cannot read")
    return CheckError(f"the speedtest.net test failed ({_reason(e)})")


def _reason(e: Exception) -> str:
    inner = e.args[0] if e.args else e
    return str(getattr(inner, "reason", None) or inner or type(e).__name__)


def run(ctx: CheckContext) -> Measurement:
    import speedtest

    s = ctx.settings
    details: dict = {"backend": "speedtest", "method": "speedtest-cli: all bytes / wall time, ramp-up included"}
    try:
        ctx.say("fetching the speedtest.net configuration")
        st = speedtest.Speedtest(secure=bool(s["speedtest_secure"]), timeout=10)
        server_id = int(s["speedtest_server"])
        if server_id:
            st.get_servers([server_id])
        best = st.get_best_server()
        host, port = net.split_hostport(best["host"], 443 if s["speedtest_secure"] else 80)
        details["server"] = {k: best.get(k) for k in ("id", "name", "sponsor", "country", "host")}
        details["speedtest_ping_ms"] = round(float(best.get("latency", 0)), 2)
        from .bandwidth import _Probe

        probe = _Probe("tcp", (host, port))
        details["probe"] = probe.describe()
        idle = probe.idle()
        metrics: dict = {}
        if idle is not None:
            metrics["idle_rtt_ms"] = round(idle, 2)
        increases = []
        for direction, call, metric in (("down", lambda: st.download(), "download_mbps"),
                                        ("up", lambda: st.upload(pre_allocate=False), "upload_mbps")):
            ctx.say(f"speedtest.net {'download' if direction == 'down' else 'upload'}")
            loaded = probe.start()
            t0 = time.monotonic()
            bits = call()
            secs = time.monotonic() - t0
            samples = loaded.finish()
            metrics[metric] = round(bits / 1e6, 3)
            entry = {"mbps": metrics[metric], "seconds": round(secs, 3)}
            # the first half second is TCP slow start, not a loaded queue
            under = [x.rtt_s * 1000 for x in samples if x.rtt_s is not None and x.sent_at >= t0 + 0.5]
            if under and idle is not None:
                entry["loaded_rtt_median_ms"] = round(statistics.median(under), 2)
                entry["latency_increase_ms"] = round(max(0.0, entry["loaded_rtt_median_ms"] - idle), 2)
                increases.append(entry["latency_increase_ms"])
            details[direction] = entry
        if increases:
            metrics["loaded_latency_increase_ms"] = max(increases)
        return Measurement(metrics=metrics, details=details)
    except speedtest.SpeedtestException as e:
        raise _plain_error(e, speedtest) from None
