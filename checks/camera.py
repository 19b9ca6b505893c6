"""The camera check: real frames from the chosen camera (or stream, or file), what really arrives.

Opens the source through OpenCV in this check's child process (``isolated``: camera drivers
can block forever), asks for the profile's resolution (FOURCC MJPG first, then width and
height), and over a short window measures what arrives: the frame size (``frame.shape``, not
what ``get()`` claims), the time to the first frame, the delivered frame rate from arrival
times (``CAP_PROP_FPS`` is reported in details only, because drivers and FFmpeg make it up),
and the picture (brightness, black / over-exposed / frozen by FFmpeg's rules, sharpness,
noise; see ``readiness.measure.frames``).

A camera that cannot be opened or sends no picture is a measurement, not a crash:
``working`` is false and ``details["findings"]`` holds the facts as codes with numbers
(``{"code": "no_picture", "args": {"source": ..., "seconds": 3.0}}``); the words are in the
catalogs, and whether anything is bad is the profile's word alone. No image leaves
the process unless the run asked for ``snapshot``; then one downscaled JPEG is returned as
base64 in ``details["snapshot_jpeg_b64"]``.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from typing import Any

from readiness.check import Check, CheckContext, Measurement, Metric, Repeatability, Setting
from readiness.measure.cameras import CameraNotFound, quiet_opencv, resolve_source

SNAPSHOT_WIDTH = 480  # px; enough to judge framing and light, small enough for a report
STOP_MARGIN_S = 1.0  # the check answers this long before its budget, whatever hangs
JOIN_GRACE_S = 0.4  # how long a stopped capture thread gets to notice


class _Capture(threading.Thread):
    """Opens the source and reads frames into window statistics, in a daemon thread.

    Native open/read calls release the GIL and may never return; the check waits for this
    thread only until its own deadline and then reports what the thread got so far.
    """

    def __init__(self, source: Any, settings: dict[str, Any], open_timeout_s: float,
                 keep_last: bool) -> None:
        super().__init__(daemon=True, name="camera-capture")
        from readiness.measure.frames import WindowStats  # lazy: numpy, OpenCV (plugins load fast)

        self.source = source
        self.settings = settings
        self.open_timeout_s = open_timeout_s
        self.keep_last = keep_last
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.stats = WindowStats()
        self.phase = "opening"
        self.opened = False
        self.open_s: float | None = None
        self.first_frame_s: float | None = None
        self.frames_total = 0
        self.warmup_frames = 0
        self.ended = ""  # why reading ended: "window", "end of file", "read failed", "stopped"
        self.driver: dict[str, Any] = {}
        self.last_frame: Any = None
        self.shape: tuple[int, ...] | None = None  # of the latest frame, warm-up included
        self.failure = ""

    def _open(self):
        import cv2

        src = self.source
        if src.kind == "camera":
            # Camera backends ignore or reject FFmpeg's timeout properties; the thread's
            # deadline covers them.
            return cv2.VideoCapture(src.target, src.backend)
        ms = int(max(self.open_timeout_s, 0.5) * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, min(ms, 3000)]
        return cv2.VideoCapture(src.target, cv2.CAP_FFMPEG, params)

    def _negotiate(self, cap) -> None:
        """Ask for the wanted format; the answer is in the frames, not in these calls."""
        import cv2

        fourcc = str(self.settings.get("fourcc") or "")
        if len(fourcc) == 4:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
        if self.settings.get("width"):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(self.settings["width"]))
        if self.settings.get("height"):
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(self.settings["height"]))

    def _driver_claims(self, cap) -> dict[str, Any]:
        import cv2

        code = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)) if code > 0 else ""
        try:
            backend = cap.getBackendName()
        except Exception:  # not opened through a named backend
            backend = ""
        return {
            "backend": backend,
            "claimed_width_px": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            "claimed_height_px": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            "claimed_fps": round(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), 3),
            "fourcc": fourcc if fourcc.isprintable() else "",
        }

    def run(self) -> None:
        import cv2

        t0 = time.monotonic()
        try:
            cap = self._open()
        except Exception as exc:  # cv2.error on a malformed source
            self.failure = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            self.phase = "failed"
            return
        self.open_s = time.monotonic() - t0
        if not cap.isOpened():
            self.phase = "failed"
            return
        self.opened = True
        try:
            self._negotiate(cap)
            self.driver = self._driver_claims(cap)
            self.phase = "reading"
            self._read_loop(cap, t0)
            # What the driver settled on once streaming (MJPG may only apply from the first read).
            self.driver = self._driver_claims(cap)
        finally:
            cap.release()
            self.phase = "done"

    def _read_loop(self, cap, t0: float) -> None:
        import cv2

        live = self.source.live
        warmup = float(self.settings["warmup_s"]) if live else 0.0
        window = float(self.settings["window_s"])
        start: float | None = None
        while not self.stop.is_set():
            ok, frame = cap.read()
            now = time.monotonic()
            if not ok or frame is None:
                self.ended = "read failed" if live else "end of file"
                return
            # Live: arrival time. File: its own presentation time (a file decodes faster than
            # real time, so arrival says nothing about its rate).
            ts = now if live else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            with self.lock:
                self.frames_total += 1
                self.shape = tuple(frame.shape)
                if self.first_frame_s is None:
                    self.first_frame_s = now - t0
                    start = ts
                if ts < start + warmup:
                    self.warmup_frames += 1  # drivers hand over buffered frames in a burst
                    continue
                if ts > start + warmup + window:
                    self.ended = "window"
                    return
                self.stats.add(frame, ts)
                if self.keep_last:
                    self.last_frame = frame
        self.ended = "stopped"


def _snapshot(frame: Any) -> str | None:
    import base64

    import cv2

    h, w = frame.shape[:2]
    if w > SNAPSHOT_WIDTH:
        frame = cv2.resize(frame, (SNAPSHOT_WIDTH, max(1, round(h * SNAPSHOT_WIDTH / w))),
                           interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 75])
    return base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None


def _finding(code: str, **args: Any) -> dict[str, Any]:
    """One neutral fact (the words are in the catalogs, ``finding.<code>``; see NOTES/README)."""
    return {"code": code, "args": args}


def _permission_hint(source: Any) -> dict[str, Any] | None:
    """Where the platform may be refusing a camera that exists (a fact about the platform)."""
    system = platform.system()
    if system == "Darwin":
        return _finding("camera_permission_macos")
    if system == "Windows":
        return _finding("camera_permission_windows")
    path = getattr(source, "path", None)
    if path and os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return _finding("camera_permission_device", path=path)
    return None


def _open_failure(source: Any, elapsed_s: float, timeout_s: float, detail: str) -> list[dict[str, Any]]:
    """Facts about a source that did not open."""
    what = source.describe()
    slow = elapsed_s >= 0.9 * timeout_s
    extra = f": {detail}" if detail else ""
    seconds = round(timeout_s, 1)
    if source.kind == "url":
        if slow:
            return [_finding("stream_no_picture", source=what, seconds=seconds)]
        return [_finding("stream_open_failed", source=what, detail=extra)]
    if source.kind == "file":
        if slow:
            return [_finding("camera_open_hangs", source=what, seconds=seconds)]
        return [_finding("file_unreadable", source=what, detail=extra)]
    if not source.name:  # an index the enumeration did not list
        return [_finding("camera_named_not_found", source=what)]
    found = [_finding("camera_open_hangs", source=what, seconds=seconds) if slow
             else _finding("camera_open_failed", source=what, detail=extra)]
    if not slow:
        found.append(_finding("camera_may_be_in_use"))
    hint = _permission_hint(source)
    if hint:
        found.append(hint)
    return found


def _content_findings(wanted: tuple[int, int], got: tuple[int, int], fps: float | None,
                      claimed_fps: float) -> list[dict[str, Any]]:
    """Facts about the picture that the metrics do not already hold. Whether a black, dark,
    frozen or washed-out picture is a problem is the profile's word (``black_pct``,
    ``brightness_pct``, ``frozen``, ``overexposed_pct``), not this check's."""
    found = []
    if all(wanted) and all(got) and got != wanted:
        found.append(_finding("resolution_differs", asked=f"{wanted[0]}x{wanted[1]}", got=f"{got[0]}x{got[1]}"))
    if fps is not None and claimed_fps > 0 and abs(claimed_fps - fps) > max(2.0, 0.2 * fps):
        # a driver's claim that differs from what arrives (more than timing noise) is a fact worth saying
        found.append(_finding("driver_fps_claim", claimed=round(claimed_fps, 1), measured=round(fps, 1)))
    return found


class CameraCheck(Check):
    name = "camera"
    title = "Camera"
    description = ("Captures a few seconds from the camera: delivered resolution and frame rate, "
                   "time to the first frame, and whether the picture is black, frozen, dark or blurred.")
    section = "equipment"
    fix = "camera"
    metrics = (
        Metric("working", "", "Frames arrive from the camera", kind="bool"),
        Metric("width_px", "px", "Width of the frames that arrive"),
        Metric("height_px", "px", "Height of the frames that arrive", key_figure=60,
               repeatability=Repeatability(0.0, 0.0, "the driver negotiates the size: any change is real")),
        Metric("fps", "fps", "Frame rate delivered, measured from arrival times", key_figure=61,
               repeatability=Repeatability(0.0, 1.0, "bench/camera.py section 1: delivered fps within 1 fps of the served rate")),
        Metric("first_frame_ms", "ms", "Time from opening the camera to its first frame"),
        Metric("brightness_pct", "%", "Mean brightness of the picture"),
        Metric("black_pct", "%", "Share of frames that are black (FFmpeg blackdetect rule)"),
        Metric("overexposed_pct", "%", "Share of frames that are over-exposed"),
        Metric("frozen", "", "The picture stops changing (FFmpeg freezedetect rule)", kind="bool"),
        Metric("sharpness", "", "Variance of the Laplacian at 640x360; low means blurred"),
        Metric("noise_pct", "%", "Estimated picture noise (standard deviation, % of full range)"),
    )
    settings = {
        "device": Setting("", "Camera to use: part of its name, its index, a stream URL or a video "
                              "file; empty = first camera (--camera overrides)", type=(str, int)),
        "width": Setting(1280, "Frame width to ask for (px); 0 = the camera's default"),
        "height": Setting(720, "Frame height to ask for (px); 0 = the camera's default"),
        "fourcc": Setting("MJPG", "Pixel format to ask for first (MJPG lets USB cameras reach HD "
                                  "rates); empty = the camera's default"),
        "window_s": Setting(3.0, "Seconds of frames to measure"),
        "warmup_s": Setting(0.5, "Seconds of frames to skip first (buffered bursts, auto-exposure)"),
        "freeze_s": Setting(2.0, "Seconds without change that count as frozen"),
    }
    isolated = True
    resource = None
    budget_s = 8.0

    def run(self, ctx: CheckContext) -> Measurement:
        # Before cv2 loads: keep Windows' MSMF from its slow hardware-transform open, and keep
        # OpenCV's and FFmpeg's console chatter out of the user's terminal.
        os.environ.setdefault("OPENCV_VIDEOIO_MSMF_ENABLE_HW_TRANSFORMS", "0")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

        with quiet_opencv():  # a timed-out stream is reported in findings, not on stderr
            return self._measure(ctx)

    def _measure(self, ctx: CheckContext) -> Measurement:
        started = time.monotonic()
        deadline = started + max(ctx.budget_s - STOP_MARGIN_S, 0.8 * ctx.budget_s)
        settings = ctx.settings
        choice = ctx.options.get("camera")
        if choice in (None, ""):
            choice = settings.get("device", "")
        details: dict[str, Any] = {"findings": []}
        try:
            source = resolve_source(choice)
        except CameraNotFound:
            if choice not in (None, ""):
                raise  # the user named something that is not there: an error, in plain words
            details["findings"] = [_finding("no_camera_found")]
            return Measurement(metrics={"working": False}, details=details)
        details["source"] = {"kind": source.kind, "name": source.describe(), "path": source.path}
        wanted = (int(settings.get("width") or 0), int(settings.get("height") or 0))
        details["requested"] = {"width_px": wanted[0], "height_px": wanted[1],
                                "fourcc": settings.get("fourcc") or ""}
        ctx.say(f"opening {source.describe()}", step="camera_opening", source=source.describe())

        capture_s = float(settings["warmup_s"]) + float(settings["window_s"])
        open_timeout = max(deadline - time.monotonic() - capture_s - JOIN_GRACE_S, 1.0)
        cap = _Capture(source, settings, open_timeout, bool(ctx.options.get("snapshot")))
        cap.start()
        cap.join(max(deadline - time.monotonic(), 0))
        if cap.is_alive():
            cap.stop.set()
            cap.join(JOIN_GRACE_S)
        elapsed = time.monotonic() - started

        with cap.lock:
            summary = cap.stats.summary(float(settings["freeze_s"]))
            shape = cap.stats.shape or cap.shape
            details["driver"] = dict(cap.driver)
            details["frames"] = {"total": cap.frames_total, "skipped_warmup": cap.warmup_frames,
                                 "measured": cap.stats.count, "ended": cap.ended or "deadline"}
            last = cap.last_frame
            first_frame_s = cap.first_frame_s
        # Working: pictures kept coming. A stream that stalls after a few frames is not.
        metrics: dict[str, Any] = {"working": first_frame_s is not None and cap.ended != "read failed"
                                   and (cap.stats.count >= 2 or not source.live)}
        if cap.open_s is not None:
            details["open_ms"] = round(cap.open_s * 1000, 1)

        if not cap.opened:
            if cap.open_s is None:  # still inside the driver's open call: it hangs
                details["findings"] = _open_failure(source, elapsed, elapsed, "")
            else:
                details["findings"] = _open_failure(source, cap.open_s, open_timeout, cap.failure)
            return Measurement(metrics=metrics, details=details)
        if first_frame_s is None:
            waited = round(elapsed - (cap.open_s or 0.0), 1)
            code = {"camera": "no_picture", "url": "stream_no_picture"}.get(source.kind, "file_unreadable")
            details["findings"] = [_finding(code, source=source.describe(), seconds=waited, detail="")]
            if source.kind == "camera":
                details["findings"].append(_finding("camera_may_be_in_use"))
            return Measurement(metrics=metrics, details=details)

        metrics["first_frame_ms"] = round(first_frame_s * 1000, 1)
        if shape is not None:
            metrics["height_px"], metrics["width_px"] = int(shape[0]), int(shape[1])
        for key in ("fps", "brightness_pct", "black_pct", "overexposed_pct", "frozen", "sharpness",
                    "noise_pct"):
            value = summary[key]
            if value is not None:
                metrics[key] = value if isinstance(value, bool) else round(float(value), 3)
        if cap.stats.count >= 2:
            details["window_s"] = round(cap.stats.timestamps[-1] - cap.stats.timestamps[0], 3)
        details["still_s"] = round(float(summary["still_s"] or 0.0), 3)
        got = (metrics.get("width_px", 0), metrics.get("height_px", 0))
        details["findings"] = _content_findings(wanted, got, metrics.get("fps"),
                                                float(cap.driver.get("claimed_fps") or 0.0))
        if cap.ended == "read failed":
            details["findings"].append(_finding("camera_stopped", frames=cap.frames_total))
        elif not cap.ended or cap.ended == "stopped":
            details["findings"].append(_finding("short_window", open_s=round(cap.open_s or 0, 1),
                                                window_s=round(details.get("window_s", 0), 1),
                                                budget_s=ctx.budget_s))
        if last is not None:
            snap = _snapshot(last)
            if snap:
                details["snapshot_jpeg_b64"] = snap
        return Measurement(metrics=metrics, details=details)
