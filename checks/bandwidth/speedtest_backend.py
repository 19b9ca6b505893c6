"""The ``speedtest`` bandwidth backend: the speedtest-cli library, in-process, against Ookla's servers.

Used by the bandwidth check (``__init__.py``) when the profile says ``backend = "speedtest"``.
speedtest-cli divides all bytes by the whole wall time (ramp-up included), so it reads a
little lower than the ``http`` backend; its "ping" is half an HTTP request time, so idle and
loaded RTT here come from our own TCP handshakes to the chosen server (``loaded.py``).

Within the budget: speedtest.net's configuration asks for 10 s per direction, which with the
configuration and server lookups took 20.4 s on a 37 Mbit/s link, past the old 20 s budget,
so the default configuration gave no figure at all. Each direction now lasts
``speedtest_seconds`` (8 s by default), and the check watches its own deadline: a direction
that would not fit is not started, and one still running at the deadline is stopped through
speedtest-cli's own shutdown event. Whatever direction finished is kept, and the details say
which one was cut short. Every speedtest-cli exception becomes one plain sentence (HTTP 403,
no servers, no configuration, offline).
"""

from __future__ import annotations

import time

from readiness.check import CheckContext, CheckError, Measurement

from readiness.measure import netcommon as net
from readiness.measure import loaded


def _plain_error(e: Exception, speedtest) -> CheckError:
    text = str(e)
    if isinstance(e, speedtest.ConfigRetrievalError):
        if "403" in text:
            return CheckError("speedtest.net refused the test (HTTP 403 Forbidden); this happens often with "
                              "speedtest-cli - try again later, or use the http backend", code="speedtest_forbidden")
        try:
            net.resolve("www.speedtest.net", 443, 2.0)
        except Exception:  # noqa: BLE001
            return net.offline_error(["www.speedtest.net"])
        return CheckError(f"could not fetch the speedtest.net configuration ({_reason(e)})", code="speedtest_no_config",
                          reason=_reason(e))
    if isinstance(e, speedtest.NoMatchedServers):
        return CheckError("the configured speedtest.net server is not in speedtest.net's server list",
                          code="speedtest_server_unlisted")
    if isinstance(e, (speedtest.ServersRetrievalError, speedtest.SpeedtestServersError)):
        return CheckError("could not fetch the list of speedtest.net servers", code="speedtest_no_server_list")
    if isinstance(e, speedtest.SpeedtestBestServerFailure):
        return CheckError("no speedtest.net server answered the latency test", code="speedtest_no_ping")
    if isinstance(e, speedtest.SpeedtestConfigError):
        return CheckError("speedtest.net sent a configuration speedtest-cli cannot read", code="speedtest_bad_config")
    return CheckError(f"the speedtest.net test failed ({_reason(e)})", code="speedtest_failed", reason=_reason(e))


def _reason(e: Exception) -> str:
    inner = e.args[0] if e.args else e
    return str(getattr(inner, "reason", None) or inner or type(e).__name__)


DEADLINE_MARGIN_S = 1.5  # returning takes a moment: stop this long before the budget ends
MIN_DIRECTION_S = 2.0  # a direction stopped earlier than this is mostly ramp: no figure from it


def run(ctx: CheckContext) -> Measurement:
    import threading

    import speedtest

    s = ctx.settings
    deadline = time.monotonic() + ctx.budget_s - DEADLINE_MARGIN_S
    details: dict = {"backend": "speedtest", "method": "speedtest-cli: all bytes / wall time, ramp-up included"}
    shutdown = threading.Event()
    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), shutdown.set)
    watchdog.daemon = True
    watchdog.start()
    try:
        ctx.say("fetching the speedtest.net configuration", step="speedtest_config")
        st = speedtest.Speedtest(secure=bool(s["speedtest_secure"]), timeout=10, shutdown_event=shutdown)
        length = max(1.0, float(s["speedtest_seconds"]))
        for d in ("download", "upload"):
            st.config["length"][d] = min(float(st.config["length"][d]), length)
        details["seconds_per_direction"] = st.config["length"]["download"]
        server_id = int(s["speedtest_server"])
        if server_id:
            st.get_servers([server_id])
        best = st.get_best_server()
        host, port = net.split_hostport(best["host"], 443 if s["speedtest_secure"] else 80)
        details["server"] = {k: best.get(k) for k in ("id", "name", "sponsor", "country", "host")}
        details["speedtest_ping_ms"] = round(float(best.get("latency", 0)), 2)
        probe = loaded.Probe("tcp", (host, port))
        details["probe"] = probe.describe()
        idle = probe.idle()
        metrics: dict = {}
        if idle is not None:
            metrics["idle_rtt_ms"] = round(idle, 2)
        for direction, call, metric in (("down", lambda: st.download(), "download_mbps"),
                                        ("up", lambda: st.upload(pre_allocate=False), "upload_mbps")):
            length = st.config["length"]["download" if direction == "down" else "upload"]
            if shutdown.is_set() or time.monotonic() + length + 0.5 > deadline:
                details[direction] = {"skipped": "not started: it would not end within the check's budget"}
                continue
            ctx.say(f"speedtest.net {'download' if direction == 'down' else 'upload'}",
                    step="speedtest_download" if direction == "down" else "speedtest_upload")
            running = probe.start()
            t0 = time.monotonic()
            bits = call()
            secs = time.monotonic() - t0
            samples = running.finish()
            entry: dict = {"seconds": round(secs, 3)}
            if shutdown.is_set():
                entry["cut_short"] = "stopped at the check's budget"
            if not shutdown.is_set() or secs >= MIN_DIRECTION_S:
                metrics[metric] = entry["mbps"] = round(bits / 1e6, 3)
            # the first half second is TCP slow start, not a loaded queue
            entry.update(loaded.summarize(samples, idle, t0 + 0.5, t0 + secs))
            details[direction] = entry
        loaded.add_loaded_facts(metrics, details)
        if "download_mbps" not in metrics and "upload_mbps" not in metrics:
            raise CheckError("the speedtest.net test did not finish within the check's budget "
                             f"({ctx.budget_s:g} s); give it more with budget_s, or fewer speedtest_seconds",
                             code="speedtest_over_budget", budget_s=f"{ctx.budget_s:g}")
        return Measurement(metrics=metrics, details=details)
    except speedtest.SpeedtestException as e:
        raise _plain_error(e, speedtest) from None
    finally:
        watchdog.cancel()
