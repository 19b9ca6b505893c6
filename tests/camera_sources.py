"""Camera sources with known content, for the camera tests and bench.

OpenCV's real capture path reads these exactly as it reads a camera or an IP camera:
- :func:`write_video` writes an MJPG/AVI file of a known scene (moving, black, over-exposed,
  frozen after the first frame, strongly blurred, noisy) at a known size and rate;
- :class:`MjpegServer` serves a scene as MJPEG over HTTP on loopback, in real time, at a known
  frame rate (the stream itself carries no rate, so FFmpeg invents one for CAP_PROP_FPS);
- :class:`SilentServer` accepts connections and never answers: an open that never delivers;
  ``MjpegServer(stall_after=N)`` sends N frames and then holds the connection silent.
"""

from __future__ import annotations

import socket
import threading
import time
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

KINDS = ("moving", "black", "overexposed", "frozen", "blurred", "noisy", "dark")


@lru_cache(maxsize=4)
def _texture_cached(width: int, height: int) -> np.ndarray:
    """A detailed, deterministic background: checkerboard, gradient and fine stripes."""
    y, x = np.mgrid[0:height, 0:width]
    checker = (((x // 40) + (y // 40)) % 2) * 90
    gradient = (x * 100) // max(width - 1, 1)
    stripes = ((x // 3) % 2) * 40
    gray = (40 + checker + gradient // 2 + stripes).clip(0, 255).astype(np.uint8)
    frame = np.dstack([gray, np.roll(gray, 17, axis=1), np.roll(gray, 29, axis=0)])
    frame.setflags(write=False)
    return frame


def _texture(width: int, height: int) -> np.ndarray:
    return _texture_cached(width, height).copy()


def frame(kind: str, i: int, width: int = 1280, height: int = 720, fps: float = 25.0) -> np.ndarray:
    """Frame number ``i`` (BGR, uint8) of a scene of the given kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; one of {KINDS}")
    if kind == "black":
        return np.full((height, width, 3), 4, np.uint8)
    if kind == "overexposed":
        return np.full((height, width, 3), 252, np.uint8)
    if kind == "frozen":
        i = 0  # every frame is the first one
    img = _texture(width, height)
    # A bright disc crossing the picture at a steady speed: one picture width per 2 s.
    cx = int((i / fps) * width / 2) % width
    cy = height // 2 + int(height / 4 * np.sin(i / fps * 2 * np.pi))
    cv2.circle(img, (cx, cy), max(height // 8, 8), (30, 200, 240), -1)
    cv2.putText(img, f"{i:05d}", (20, height - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (255, 255, 255), 3)
    if kind == "blurred":
        # Out of focus: detail below 1/16 of the size is gone (cheaper than a wide Gaussian).
        small = cv2.resize(img, (max(width // 16, 1), max(height // 16, 1)), interpolation=cv2.INTER_AREA)
        img = cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 2)
    elif kind == "noisy":
        img = (img.astype(np.int16) + _noise(30.0, i % 8, img.shape)).clip(0, 255).astype(np.uint8)
    elif kind == "dark":
        # Low light: a quarter of the light and the sensor noise that comes with it.
        img = ((img // 4).astype(np.int16) + _noise(3.0, i % 8, img.shape)).clip(0, 255).astype(np.uint8)
    return img


@lru_cache(maxsize=16)
def _noise(sigma: float, seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian noise fields, made once and reused: eight differ enough to keep frames moving."""
    field = np.random.default_rng(seed).normal(0, sigma, shape).round().astype(np.int16)
    field.setflags(write=False)
    return field


def write_video(path: Path | str, kind: str, width: int = 1280, height: int = 720,
                fps: float = 25.0, seconds: float = 5.0) -> Path:
    """Write an MJPG/AVI file of the scene; return its path."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for i in range(int(round(fps * seconds))):
            writer.write(frame(kind, i, width, height, fps))
    finally:
        writer.release()
    return path


class _Server:
    """A loopback HTTP server in a background thread; use as a context manager."""

    path = "/stream.mjpg"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class MjpegServer(_Server):
    """MJPEG over HTTP (multipart/x-mixed-replace), frames sent in real time at ``fps``.

    Frames are encoded once up front (two seconds of the scene, repeated), so serving costs
    almost no CPU and the send schedule holds even on a busy machine.
    """

    def __init__(self, fps: float, kind: str = "moving", width: int = 640, height: int = 480,
                 quality: int = 80, stall_after: int | None = None) -> None:
        self.fps = fps
        self.stall_after = stall_after  # frames sent before the stream goes silent (a hung camera)
        count = max(int(round(fps * 2)), 1)
        self.jpegs = [cv2.imencode(".jpg", frame(kind, i, width, height, fps),
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
                      for i in range(count)]
        self.frames_sent = 0
        self.sent_at: list[float] = []  # time.monotonic() of each frame written: the reference
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                boundary = "readinessframe"
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={boundary}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                start = time.monotonic()
                i = 0
                try:
                    while not server._stop.is_set():
                        if server.stall_after is not None and i >= server.stall_after:
                            server._stop.wait()  # connection held open, nothing more sent
                            break
                        due = start + i / server.fps
                        delay = due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        jpeg = server.jpegs[i % len(server.jpegs)]
                        self.wfile.write(
                            f"--{boundary}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                        self.wfile.flush()
                        server.frames_sent += 1
                        server.sent_at.append(time.monotonic())
                        i += 1
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentServer(_Server):
    """Accepts TCP connections on loopback and never sends a byte (a hung camera stream)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)
        for conn in self.accepted:
            conn.close()
        self.sock.close()
