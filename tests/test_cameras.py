"""readiness.measure.cameras: listing cameras and resolving a --camera choice."""

from __future__ import annotations

import json
import time

import pytest

from readiness.measure.cameras import CameraNotFound, list_cameras, resolve_source

CAMERAS = [
    {"index": 0, "name": "Integrated Webcam", "path": "/dev/video0", "vid": "0bda", "pid": "5521",
     "backend": "V4L2", "backend_id": 200, "found_by": "enumeration"},
    {"index": 2, "name": "Logitech BRIO", "path": "/dev/video2", "vid": "046d", "pid": "085e",
     "backend": "V4L2", "backend_id": 200, "found_by": "enumeration"},
]


def test_list_cameras_is_json_safe_and_quick():
    t0 = time.monotonic()
    cameras = list_cameras()
    assert time.monotonic() - t0 < 15  # a probe per index is bounded; see PROBE_TIMEOUT_S
    assert isinstance(cameras, list)
    json.dumps(cameras)
    for cam in cameras:
        assert {"index", "name", "path", "vid", "pid", "backend", "backend_id", "found_by"} <= set(cam)
        assert isinstance(cam["index"], int) and cam["name"]
    assert [cam["default"] for cam in cameras] == [i == 0 for i in range(len(cameras))]


def test_default_is_the_first_camera():
    src = resolve_source(None, CAMERAS)
    assert (src.kind, src.target, src.backend, src.name) == ("camera", 0, 200, "Integrated Webcam")
    assert resolve_source("", CAMERAS).target == 0


def test_choice_by_name_part_is_case_insensitive():
    src = resolve_source("brio", CAMERAS)
    assert (src.target, src.path) == (2, "/dev/video2")


def test_choice_by_index_uses_the_enumerated_backend():
    assert resolve_source("2", CAMERAS).name == "Logitech BRIO"
    assert resolve_source(2, CAMERAS).backend == 200
    unknown = resolve_source(5, CAMERAS)  # not listed: OpenCV gets to try it
    assert (unknown.kind, unknown.target, unknown.backend, unknown.name) == ("camera", 5, 0, "")


def test_urls_and_files_are_sources_without_enumeration(tmp_path):
    # cameras=[] proves no lookup is needed: a URL or file never consults the camera list.
    src = resolve_source("rtsp://10.0.0.7:554/stream1", [])
    assert (src.kind, src.target, src.live) == ("url", "rtsp://10.0.0.7:554/stream1", True)
    video = tmp_path / "room.avi"
    video.write_bytes(b"x")
    src = resolve_source(str(video), [])
    assert (src.kind, src.live) == ("file", False)


def test_unknown_choices_say_what_exists():
    with pytest.raises(CameraNotFound, match="Integrated Webcam"):
        resolve_source("Razer", CAMERAS)
    with pytest.raises(CameraNotFound, match="No camera found"):
        resolve_source(None, [])
    with pytest.raises(CameraNotFound, match="No such video file"):
        resolve_source("/no/such/dir/clip.avi", CAMERAS)
