"""Which cameras this machine has, and which one a ``--camera`` choice means.

Used by ``readiness devices`` (:func:`list_cameras`) and by the camera check
(:func:`resolve_source`). OpenCV cannot list cameras or their names, so names, USB VID/PID,
device paths and the index+backend to open come from ``cv2-enumerate-cameras``; where it finds
nothing, a few indices are probed with OpenCV itself. A choice may be part of a camera's NAME,
its INDEX, or a URL / file path (an IP camera's RTSP or MJPEG stream, a video file).

cv2 is imported only inside functions: the CLI imports this module at start.
"""

from __future__ import annotations

import os
import platform
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from readiness.check import CheckError

PROBE_INDICES = 4  # indices probed when enumeration finds nothing
PROBE_TIMEOUT_S = 3.0  # per probed index: some drivers block on open

# Where a backend exists on several platforms, the native one is tried first: its indices are
# the ones the enumeration reports, and it is the one meeting apps use.
_PREFERRED = {"Linux": ("V4L2",), "Windows": ("MSMF", "DSHOW"), "Darwin": ("AVFOUNDATION",)}


class CameraNotFound(CheckError):
    """The chosen camera does not exist; the message lists what does."""


@dataclass(frozen=True)
class Source:
    """What to hand to ``cv2.VideoCapture``: a camera index with its backend, a URL or a file."""

    kind: str  # "camera", "url" or "file"
    target: int | str  # camera index, URL or path
    backend: int = 0  # cv2.CAP_* id; 0 (CAP_ANY) lets OpenCV choose
    name: str = ""
    path: str | None = None  # device node of a camera, where known (Linux: /dev/videoN)

    @property
    def live(self) -> bool:
        """Frames arrive in real time (camera, stream), not as fast as a file decodes."""
        return self.kind != "file"

    def describe(self) -> str:
        if self.kind == "camera":
            return f'"{self.name}" (index {self.target})' if self.name else f"at index {self.target}"
        return str(self.target)


def _backend_name(backend: int) -> str:
    import cv2

    try:
        return cv2.videoio_registry.getBackendName(backend)
    except Exception:  # unknown id: keep the number
        return str(backend)


def _hex4(value: int | None) -> str | None:
    return None if value is None else f"{value:04x}"


def _enumerated() -> list[dict[str, Any]]:
    """Cameras as cv2-enumerate-cameras reports them, from the first backend that finds any."""
    try:
        import cv2_enumerate_cameras as ece
    except ImportError:
        return []
    backends = list(ece.supported_backends)
    preferred = _PREFERRED.get(platform.system(), ())
    backends.sort(key=lambda b: preferred.index(_backend_name(b)) if _backend_name(b) in preferred
                  else len(preferred))
    for backend in backends:
        try:
            found = ece.enumerate_cameras(backend)
        except Exception:  # a broken backend must not hide the others
            continue
        if found:
            return [{
                "index": int(cam.index),
                "name": str(cam.name or f"camera {cam.index}"),
                "path": None if cam.path is None else str(cam.path),
                "vid": _hex4(cam.vid),
                "pid": _hex4(cam.pid),
                "backend": _backend_name(backend),
                "backend_id": int(backend),
                "found_by": "enumeration",
            } for cam in found]
    return []


def _opens(index: int, timeout_s: float) -> bool:
    """Whether OpenCV opens camera ``index`` within ``timeout_s`` (the open runs in a thread)."""
    import cv2

    outcome: list[bool] = []

    def attempt() -> None:
        cap = cv2.VideoCapture(index)
        outcome.append(bool(cap.isOpened()))
        cap.release()

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout_s)
    return bool(outcome and outcome[0])


def _probed() -> list[dict[str, Any]]:
    cameras = []
    for index in range(PROBE_INDICES):
        if not _opens(index, PROBE_TIMEOUT_S):
            break
        cameras.append({"index": index, "name": f"camera {index}", "path": None, "vid": None,
                        "pid": None, "backend": "ANY", "backend_id": 0, "found_by": "probe"})
    return cameras


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV logs only fatal errors meanwhile: failures are reported in plain words instead."""
    import cv2

    log = getattr(getattr(cv2, "utils", None), "logging", None)  # OpenCV >= 4.5; 5 has only this
    get = getattr(log, "getLogLevel", None) or getattr(cv2, "getLogLevel", None)
    set_ = getattr(log, "setLogLevel", None) or getattr(cv2, "setLogLevel", None)
    if get is None or set_ is None:
        yield
        return
    before = get()
    set_(1)  # LOG_LEVEL_FATAL
    try:
        yield
    finally:
        set_(before)


def list_cameras() -> list[dict[str, Any]]:
    """The cameras of this machine, first one first; JSON-safe dicts.

    Keys: ``index`` and ``backend`` / ``backend_id`` (what to open), ``name``, ``path`` (device
    node where known), ``vid`` / ``pid`` (USB ids as 4 hex digits, or None), ``found_by``
    ("enumeration" or "probe"), ``default`` (true for the first: the one the check uses).
    """
    with quiet_opencv():  # probing logs a warning per missing index
        cameras = _enumerated() or _probed()
    for position, cam in enumerate(cameras):
        cam["default"] = position == 0  # what the camera check uses unless told otherwise
    return cameras


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _as_index(choice: Any) -> int | None:
    if isinstance(choice, bool):
        return None
    if isinstance(choice, int):
        return choice
    if isinstance(choice, str) and choice.strip().isdigit():
        return int(choice.strip())
    return None


def _camera_source(cam: dict[str, Any]) -> Source:
    return Source("camera", cam["index"], cam["backend_id"], cam["name"], cam.get("path"))


def _names(cameras: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['index']}: {c['name']}" for c in cameras) or "none"


def resolve_source(choice: Any = None, cameras: list[dict[str, Any]] | None = None) -> Source:
    """The source a user's choice means: None/"" = first camera, INDEX, URL, file path or NAME part.

    Raises :class:`CameraNotFound` with a plain message (naming the cameras there are) when the
    choice matches nothing. ``cameras`` defaults to :func:`list_cameras`; a URL needs no list.
    """
    if isinstance(choice, str):
        choice = choice.strip()
        if _URL.match(choice):
            return Source("url", choice)
    if cameras is None:
        cameras = list_cameras()
    if isinstance(choice, str) and choice:
        for cam in cameras:
            if cam.get("path") and os.path.abspath(cam["path"]) == os.path.abspath(choice):
                return _camera_source(cam)  # a device node: the camera, through its own backend
        if os.path.exists(choice) and not os.path.isdir(choice):
            return Source("file", os.path.abspath(choice))  # a video file (or a pipe)
        if os.sep in choice or "/" in choice:
            raise CameraNotFound(f"No such video file: {choice}")
    index = _as_index(choice)
    if choice in (None, ""):
        if not cameras:
            raise CameraNotFound("No camera found. Connect a camera (or open the laptop lid) and "
                                 "check that it is switched on.")
        return _camera_source(cameras[0])
    if index is not None:
        for cam in cameras:
            if cam["index"] == index:
                return _camera_source(cam)
        # Not enumerated (e.g. a platform the enumeration does not know): let OpenCV try it.
        return Source("camera", index, 0)
    wanted = str(choice).casefold()
    matches = [cam for cam in cameras if wanted in cam["name"].casefold()]
    if not matches:
        raise CameraNotFound(f"No camera matches {choice!r}. Cameras found: {_names(cameras)}. "
                             "Give part of a name, an index, a stream URL or a video file.")
    return _camera_source(matches[0])
