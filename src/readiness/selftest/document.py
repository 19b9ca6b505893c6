"""A browser's observations into a result document of the agent's schema, judged by a profile.

Sits between :mod:`readiness.selftest.submission` (the checked post) and the judge/report.
Metrics carry the agent's names and units and come from the agent's own functions, so the
same requirement list judges them. Checks a browser cannot make at all (``system``,
``connectivity``) have no record: the result is judged as a partial run of the checks it holds
(``judge(..., only_checks=...)``), so its coverage lists them as not checked and its verdict is
never a bare "ready"; metrics it cannot see inside a check it does make (the loopback of the
speaker check) are simply absent and judged UNKNOWN.

The document says who measured it: ``host.measured_by = "browser"`` (an optional property of
the schema's ``host`` object) and the browser's name and version in ``host.browser``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from readiness import __version__
from readiness.measure import estimator, loaded, netstats
from readiness.measure.stun import Sample
from readiness.result import CheckRecord, Result, new_run_id, utc_now
from readiness.plugins import load_plugins

BROWSER_TITLE = "Browser"  # the page's own step (no check of the agent): which browser measured
SILENT_PEAK_DBFS = -70.0  # the microphone check's rule for "nothing usable"


def _metric(metrics: dict[str, dict[str, Any]], name: str, value: Any, unit: str = "") -> None:
    if value is None:
        return
    metrics[name] = {"value": round(value, 3) if isinstance(value, float) else value, "unit": unit}


def _title(name: str) -> str:
    """A record's title as the agent's check calls itself (its words in other languages: catalog ``check``)."""
    if name == "browser":
        return BROWSER_TITLE
    cls = load_plugins().checks.get(name)
    return cls.title if cls is not None and cls.title else name


def _record(name: str, sub: dict[str, Any] | None, started: str,
            measure: Any) -> CheckRecord:
    """One check's record: measured by ``measure(sub, metrics, details)`` when the page got data."""
    rec = CheckRecord(name=name, title=_title(name), status="ok", started_utc=started,
                      duration_s=0.0, details={"measured_by": "browser"})
    if sub is None:
        rec.status, rec.error = "skipped", "the page did not run this step"
        return rec
    rec.duration_s = round(float(sub.get("duration_s", 0.0)), 3)
    state = sub.get("state", "ok")
    if state != "ok":
        if sub.get("error"):
            rec.details["browser_error"] = sub["error"]
        if state in ("denied", "not_found", "in_use") and name in ("camera", "microphone"):
            # A device the browser may not use, or that is not there, is a measurement:
            # nothing works. The check ran; its finding (words in the catalogs) says why.
            rec.metrics["working"] = {"value": False, "unit": ""}
            rec.details["findings"] = [{"code": f"browser_{state}_{name}", "args": {}}]
            return rec
        rec.status = "skipped" if state in ("skipped", "unsupported") else "error"
        rec.error = sub.get("error") or f"the browser could not run the {name} step ({state})"
        return rec
    measure(sub, rec.metrics, rec.details)
    return rec


def _camera(sub: dict[str, Any], metrics: dict, details: dict) -> None:
    from readiness.measure.frames import FrameFacts, WindowStats, delivered_fps  # lazy: numpy, OpenCV

    n = len(sub.get("t", []))
    lists = {k: sub.get(k, []) for k in ("brightness", "black_share", "bright_share")}
    if any(len(v) != n for v in lists.values()):
        raise ValueError("camera: the per-frame lists differ in length")
    stats = WindowStats()
    stats.timestamps = list(sub.get("t", []))
    stats.facts = [FrameFacts(b, k, w) for b, k, w in zip(lists["brightness"], lists["black_share"], lists["bright_share"])]
    stats.diffs = list(sub.get("diff", []))[: max(0, n - 1)]
    stats.sharpness = list(sub.get("sharpness", []))
    stats.noise = list(sub.get("noise", []))
    summary = stats.summary()
    fps = summary["fps"]
    if sub.get("presented_frames") and sub.get("span_s"):
        # every frame the browser showed, also those the page's callback skipped while busy
        fps = sub["presented_frames"] / sub["span_s"]
    elif fps is None and n >= 2:
        fps = delivered_fps(stats.timestamps)
    working = n >= 2
    _metric(metrics, "working", working)
    _metric(metrics, "width_px", sub.get("width_px"), "px")
    _metric(metrics, "height_px", sub.get("height_px"), "px")
    _metric(metrics, "first_frame_ms", sub.get("first_frame_ms"), "ms")
    _metric(metrics, "fps", fps, "fps")
    for key, unit in (("brightness_pct", "%"), ("black_pct", "%"), ("overexposed_pct", "%"),
                      ("sharpness", ""), ("noise_pct", "%")):
        _metric(metrics, key, summary[key], unit)
    if summary["frozen"] is not None:
        _metric(metrics, "frozen", bool(summary["frozen"]))
    details["requested"] = sub.get("requested", {})
    details["frames_analysed"] = n
    details["still_s"] = round(float(summary["still_s"] or 0.0), 3)
    if sub.get("claimed_fps"):
        details["claimed_fps"] = sub["claimed_fps"]
    # Facts as the camera check gives them; black, frozen and dark are metrics the profile judges.
    findings = details.setdefault("findings", [])
    if not working:
        findings.append({"code": "browser_no_picture", "args": {"seconds": round(float(sub.get("duration_s", 0)), 1)}})
    req = sub.get("requested") or {}
    got = (sub.get("width_px") or 0, sub.get("height_px") or 0)
    if req.get("width_px") and req.get("height_px") and all(got) and (req["width_px"], req["height_px"]) != got:
        findings.append({"code": "resolution_differs", "args": {"asked": f"{req['width_px']}x{req['height_px']}",
                                                                "got": f"{got[0]}x{got[1]}"}})


def _microphone(sub: dict[str, Any], metrics: dict, details: dict) -> None:
    import numpy as np

    from readiness.measure import audio  # lazy: numpy

    windows = np.asarray(sub.get("window_rms", []), dtype=np.float64)
    rate = float(sub.get("rate_hz", 48000))
    samples = int(sub.get("samples", 0))
    _metric(metrics, "working", bool(windows.size) and samples > 0)
    if not windows.size:
        return
    level = audio.dbfs(float(np.sqrt(np.mean(windows * windows))))
    peak = audio.dbfs(float(sub.get("peak", 0.0)))
    silent = bool(sub.get("all_zero")) or peak < SILENT_PEAK_DBFS
    _metric(metrics, "silent", silent)
    _metric(metrics, "level_dbfs", round(level, 2), "dBFS")
    _metric(metrics, "peak_dbfs", round(peak, 2), "dBFS")
    _metric(metrics, "noise_floor_dbfs", round(audio.dbfs(float(np.percentile(windows, 10))), 2), "dBFS")
    _metric(metrics, "clipping_runs", int(sub.get("clipping_runs", 0)))
    if samples:
        _metric(metrics, "dc_offset_pct", round(float(sub.get("sum", 0.0)) / samples * 100.0, 3), "%")
    details.update({"sample_rate_hz": rate, "duration_s": round(samples / rate, 3),
                    "digital_silence": bool(sub.get("all_zero")),
                    "processing_off": bool(sub.get("processing_off")),
                    "charts": [{"title": "Microphone level over the recording", "y_unit": "dBFS", "x_label": "s",
                                "points": [[round(i * 0.1, 1), round(audio.dbfs(float(np.sqrt(np.mean(w * w)))), 1)]
                                           for i, w in enumerate(_groups(windows, 5))]}]})


def _groups(values: Any, size: int) -> list[Any]:
    return [values[i:i + size] for i in range(0, len(values) - size + 1, size)]


def _speakers(sub: dict[str, Any], metrics: dict, details: dict) -> None:
    # The person is the only microphone a browser has here: a tone played that nobody heard is
    # no sound from the speakers, so "Speakers play sound" fails with the person's word as the cause.
    heard = sub.get("heard")
    _metric(metrics, "playback_ok", bool(sub.get("played")) and heard is not False)
    if heard is not None:
        _metric(metrics, "heard_by_person", heard)
    if heard is False:
        details.setdefault("findings", []).append({"code": "browser_not_heard", "args": {}})
    if sub.get("tone_hz"):
        details["tone_hz"] = sub["tone_hz"]


def _bandwidth(sub: dict[str, Any], metrics: dict, details: dict, idle_ms: float | None = None) -> None:
    """Rates by the agent's steady-rate estimator; latency under load by the agent's summary of
    the probes sent inside the steady window, over ``idle_ms`` (the latency step's median)."""

    details["backend"] = "browser fetch to this server"
    for direction, name in (("down", "download_mbps"), ("up", "upload_mbps")):
        part = sub.get(direction)
        if not part:
            continue
        ticks = sorted((float(t), int(b)) for t, b in (p for p in part.get("ticks", []) if len(p) == 2))
        probes = [Sample(seq=i, sent_at=float(p[0]), rtt_s=None if p[1] is None else p[1] / 1000)
                  for i, p in enumerate(part.get("probes", [])) if len(p) == 2 and p[0] is not None]
        entry: dict[str, Any] = {"streams": part.get("streams"), "errors": part.get("errors", [])}
        if len(ticks) >= 2 and ticks[-1][1] > 0:
            est = estimator.steady_rate(ticks, [(x.sent_at, x.rtt_s) for x in probes if x.rtt_s is not None])
            if est.bps > 0:
                _metric(metrics, name, round(est.bps / 1e6, 3), "Mbit/s")
                entry.update({"mbps": round(est.bps / 1e6, 3), "ramp_s": round(est.ramp_s, 3), "steady": est.steady,
                              "seconds": round(ticks[-1][0] - ticks[0][0], 3), "bytes": ticks[-1][1],
                              "slice_mbps": list(est.slice_mbps)})
                entry.update(loaded.summarize(probes, idle_ms, ticks[0][0] + est.ramp_s, ticks[-1][0]))
        details[direction] = entry
    if idle_ms is not None and any("latency_increase_ms" in details.get(d, {}) for d in ("down", "up")):
        _metric(metrics, "idle_rtt_ms", idle_ms, "ms")
        details["probe"] = "data channel to this server every 50 ms (idle: the latency step's median)"
    facts: dict[str, Any] = {}  # the agent's worst-direction rule, on plain values
    loaded.add_loaded_facts(facts, details)
    for key, value in facts.items():
        _metric(metrics, key, value, "ms" if key.endswith("_ms") else "")


def _latency(sub: dict[str, Any], metrics: dict, details: dict) -> None:

    interval = float(sub.get("interval_ms", 20.0)) / 1000
    rtts = sub.get("rtt_ms", [])
    samples = [Sample(seq=i, sent_at=i * interval, rtt_s=None if r is None else r / 1000) for i, r in enumerate(rtts)]
    for order, seq in enumerate(sub.get("arrival", [])):
        if 0 <= seq < len(samples) and samples[seq].rtt_s is not None and samples[seq].arrival is None:
            samples[seq].arrival = order
    st = netstats.summarize(samples, interval_s=interval)
    method = sub.get("method", "webrtc")
    details.update({"method": "webrtc-datachannel (unordered, no retransmits)" if method == "webrtc"
                    else "http-requests (tcp; WebRTC did not connect)",
                    "interval_ms": interval * 1000, "sent": st.get("sent"), "received": st.get("received")})
    if sub.get("webrtc_error"):
        details["webrtc_error"] = sub["webrtc_error"]
    keys = ("rtt_min_ms", "rtt_median_ms", "rtt_p95_ms")
    if method == "webrtc":
        # the agent's UDP figures; over TCP, loss and jitter hide behind retransmits
        keys += ("jitter_ms", "loss_pct", "burst_loss_pct", "reorder_pct", "mos")
    for k in keys:
        if k in st:
            _metric(metrics, k, float(st[k]), "" if k == "mos" else "%" if k.endswith("_pct") else "ms")
    if method != "webrtc":
        details.setdefault("findings", []).append({"code": "latency_tcp_only", "args": {}})


def _browser(sub: dict[str, Any], metrics: dict, details: dict) -> None:
    _metric(metrics, "webrtc", sub.get("webrtc"))
    _metric(metrics, "cpu_threads", sub.get("cpu_threads"), "threads")
    _metric(metrics, "memory_class_gb", sub.get("memory_class_gb"), "GB")
    details.update({k: sub[k] for k in ("name", "version", "platform", "mobile", "secure_context") if k in sub})


def _idle_ms(lat: CheckRecord | None) -> float | None:
    """The idle round trip over the data channel, when the latency step measured one there."""
    if lat is None or lat.status != "ok" or not str(lat.details.get("method", "")).startswith("webrtc"):
        return None
    value = lat.value("rtt_median_ms")
    return float(value) if isinstance(value, (int, float)) else None


# latency before bandwidth: its median is the idle round trip the loaded probes are set against
_MEASURE = {"camera": _camera, "microphone": _microphone, "speakers": _speakers,
            "latency": _latency, "bandwidth": _bandwidth, "browser": _browser}
PAGE_CHECKS = frozenset(_MEASURE) - {"browser"}  # the agent's checks the page measures its own way


def agent_only(checks: Any) -> list[str]:
    """The loaded checks (``{name: class}``) the page cannot measure, in the loader's order."""
    return [name for name in checks if name not in PAGE_CHECKS]


def build_result(sub: dict[str, Any], profile: Any, started_utc: str | None = None) -> Result:
    """The result document for a checked submission ``sub``.

    A browser has no computer name, and its network address is not recorded (privacy, as the
    agent records none): the host is named after the run, the person's labels say who it was.
    """
    started = started_utc or utc_now()
    checks: dict[str, CheckRecord] = {}
    for name, measure in _MEASURE.items():
        part = sub.get(name)
        if name == "browser" and part is not None:
            part = dict(part, state="ok")
        if name == "bandwidth":
            measure = partial(_bandwidth, idle_ms=_idle_ms(checks.get("latency")))
        try:
            checks[name] = _record(name, part, started, measure)
        except ValueError as exc:
            checks[name] = CheckRecord(name=name, title=_title(name), status="error", started_utc=started,
                                       duration_s=0.0, details={"measured_by": "browser"}, error=str(exc))
    br = sub.get("browser", {})
    run_id = new_run_id()
    host = {"hostname": f"browser-{run_id[:8]}", "os": br.get("platform", ""), "measured_by": "browser",
            "browser": f"{br.get('name', '')} {br.get('version', '')}".strip()}
    labels = {k: v for k, v in sub.get("labels", {}).items() if v}
    return Result(run_id=run_id, started_utc=started, finished_utc=utc_now(), host=host, labels=labels,
                  profile=profile.summary(), checks=checks, tool_version=__version__, warnings=[])
