"""The camera check on OpenCV's real capture path: generated video files, a live MJPEG stream
served at a known rate, and a stream that never sends a picture. Measured values and, through
`readiness run`, the verdicts of the shipped video-call profile."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_sources import MjpegServer, SilentServer, write_video
from conftest import validate_result
from support import need
from readiness.check import CheckContext, CheckError
from readiness.checks.camera import CameraCheck

BUDGET_S = CameraCheck.budget_s


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("camera-videos")
    made = {kind: write_video(folder / f"{kind}.avi", kind, 1280, 720, fps=25, seconds=3.5)
            for kind in ("moving", "black", "overexposed", "frozen", "blurred", "noisy")}
    made["small"] = write_video(folder / "small.avi", "moving", 640, 480, fps=25, seconds=3.5)
    return made


def measure(source, snapshot: bool = False, **settings):
    ctx = CheckContext(settings=CameraCheck.default_settings() | settings,
                       options={"camera": str(source), "snapshot": snapshot}, budget_s=BUDGET_S)
    return CameraCheck().run(ctx)


def test_moving_scene_file(videos):
    m = measure(videos["moving"])
    assert m.metrics["working"] is True
    assert (m.metrics["width_px"], m.metrics["height_px"]) == (1280, 720)
    assert m.metrics["fps"] == pytest.approx(25, abs=0.5)  # the file's own timestamps
    assert m.metrics["frozen"] is False
    assert m.metrics["black_pct"] == 0 and m.metrics["overexposed_pct"] == 0
    assert 40 < m.metrics["brightness_pct"] < 60
    assert m.metrics["sharpness"] > 500
    assert m.details["frames"]["measured"] >= 70  # 3 s at 25 fps
    assert m.details["findings"] == []
    assert "snapshot_jpeg_b64" not in m.details  # privacy: no picture unless asked


def test_black_file_is_black_and_says_so(videos):
    m = measure(videos["black"])
    assert m.metrics["black_pct"] == 100
    assert m.metrics["brightness_pct"] < 5
    # a fact, not a verdict: the profile's black_pct bound is the only judge of it
    assert m.details["findings"] == []


def test_overexposed_file(videos):
    m = measure(videos["overexposed"])
    assert m.metrics["overexposed_pct"] == 100 and m.metrics["black_pct"] == 0
    assert m.metrics["brightness_pct"] > 95
    assert m.details["findings"] == []


def test_frozen_after_first_frame(videos):
    m = measure(videos["frozen"])
    assert m.metrics["frozen"] is True
    assert m.details["still_s"] >= 2.0
    assert m.metrics["black_pct"] == 0
    assert m.details["findings"] == []


def test_blurred_scores_far_below_the_sharp_scene(videos):
    sharp, blurred = measure(videos["moving"]), measure(videos["blurred"])
    assert blurred.metrics["sharpness"] < 30 < sharp.metrics["sharpness"]
    assert blurred.metrics["sharpness"] * 50 < sharp.metrics["sharpness"]
    assert blurred.metrics["frozen"] is False  # the blurred disc still moves


def test_noisy_scene_has_far_more_noise(videos):
    clean, noisy = measure(videos["moving"]), measure(videos["noisy"])
    assert noisy.metrics["noise_pct"] > 5 * clean.metrics["noise_pct"]
    assert noisy.metrics["noise_pct"] > 2.0  # sigma 30 levels added, before JPEG and clipping


def test_small_file_reports_what_arrives(videos):
    m = measure(videos["small"])
    assert (m.metrics["width_px"], m.metrics["height_px"]) == (640, 480)
    assert {"code": "resolution_differs", "args": {"asked": "1280x720", "got": "640x480"}} in m.details["findings"]


def test_snapshot_only_when_asked(videos):
    m = measure(videos["moving"], snapshot=True)
    jpeg = base64.b64decode(m.details["snapshot_jpeg_b64"])
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (270, 480, 3)  # downscaled to 480 px wide


def test_live_stream_rate_is_measured_not_claimed():
    with MjpegServer(fps=12) as server:
        m = measure(server.url)
    assert m.metrics["working"] is True
    assert m.metrics["fps"] == pytest.approx(12, abs=1.0)
    # FFmpeg makes a rate up for a stream that carries none; the check does not believe it.
    claimed = m.details["driver"]["claimed_fps"]
    assert abs(claimed - 12) > 1
    (claim,) = [f for f in m.details["findings"] if f["code"] == "driver_fps_claim"]
    assert claim["args"]["claimed"] == pytest.approx(claimed, abs=0.1)
    assert claim["args"]["measured"] == pytest.approx(m.metrics["fps"], abs=0.1)
    assert (m.metrics["width_px"], m.metrics["height_px"]) == (640, 480)
    assert m.metrics["first_frame_ms"] < 1000


def test_live_stream_hd_30fps():
    with MjpegServer(fps=30, width=1280, height=720) as server:
        m = measure(server.url)
    assert m.metrics["fps"] == pytest.approx(30, abs=1.0)
    assert (m.metrics["width_px"], m.metrics["height_px"]) == (1280, 720)
    assert m.metrics["frozen"] is False


def test_dark_low_rate_stream_reports_facts_only():
    with MjpegServer(fps=12, kind="dark") as server:
        m = measure(server.url)
    assert m.metrics["brightness_pct"] < 20
    assert m.metrics["fps"] == pytest.approx(12, abs=1.0)
    # dark and slow are the metrics' facts; advice comes from the profile's requirements
    assert all(f["code"] != "dark" for f in m.details["findings"]) and "diagnosis" not in m.details


def test_silent_stream_answers_before_the_budget():
    with SilentServer() as server:
        t0 = time.monotonic()
        m = measure(server.url)
        elapsed = time.monotonic() - t0
    assert elapsed < BUDGET_S
    assert m.metrics == {"working": False}
    assert m.details["findings"][0]["code"] == "stream_no_picture"


def test_stream_that_stalls_after_a_few_frames_is_not_working():
    with MjpegServer(fps=25, stall_after=3) as server:
        t0 = time.monotonic()
        m = measure(server.url)
        elapsed = time.monotonic() - t0
    assert elapsed < BUDGET_S
    assert m.metrics["working"] is False
    assert (m.metrics["width_px"], m.metrics["height_px"]) == (640, 480)
    assert "fps" not in m.metrics  # not measurable: UNKNOWN, never a made-up number
    assert {"code": "camera_stopped", "args": {"frames": 3}} in m.details["findings"]


def test_source_from_the_profile_setting_and_budget_cut_short(videos):
    # No --camera: [checks.camera] device = ... chooses. A window longer than the budget allows
    # ends at the check's deadline, says so, and still reports what it measured.
    with MjpegServer(fps=12) as server:
        ctx = CheckContext(settings=CameraCheck.default_settings() | {"device": server.url, "window_s": 30.0},
                           options={}, budget_s=4.0)
        t0 = time.monotonic()
        m = CameraCheck().run(ctx)
        elapsed = time.monotonic() - t0
    assert elapsed < 4.0
    assert m.details["source"]["kind"] == "url"
    assert m.metrics["working"] is True and m.metrics["fps"] == pytest.approx(12, abs=1.0)
    (short,) = [f for f in m.details["findings"] if f["code"] == "short_window"]
    assert short["args"]["budget_s"] == 4.0 and short["args"]["window_s"] < 4.0


def test_unknown_camera_name_is_a_plain_error():
    with pytest.raises(CheckError, match="No camera matches"):
        measure("No Such Camera Model 9000")


# --- through the CLI: the check in its child process, judged by the shipped profile ---------


def run_cli(cli, source: str, tmp_path: Path, *extra: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    proc = cli("run", "--check", "camera", "--camera", source, "--json", "--no-open",
               "-o", str(tmp_path), *extra, timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode in (1, 3), proc.stderr
    return validate_result(proc.stdout), elapsed


def verdicts(result: dict) -> dict[str, str]:
    return {item["requirement"]["metric"]: item["status"] for item in result["judgement"]["items"]}


def test_cli_verdicts_low_rate_stream(cli, tmp_path):
    with MjpegServer(fps=12) as server:
        result, _ = run_cli(cli, server.url, tmp_path)
    assert result["checks"]["camera"]["status"] == "ok"
    assert result["checks"]["camera"]["metrics"]["fps"]["value"] == pytest.approx(12, abs=1.0)
    v = verdicts(result)
    assert v["camera.working"] == "PASS"
    assert v["camera.fps"] == "FAIL"  # 12 fps against >= 25
    assert v["camera.width_px"] == "FAIL" and v["camera.height_px"] == "FAIL"  # 640x480 < 720p
    assert v["camera.frozen"] == "PASS" and v["camera.black_pct"] == "PASS"
    assert result["judgement"]["ready"] is False


def test_cli_verdicts_good_stream(cli, tmp_path):
    with MjpegServer(fps=30, width=1280, height=720) as server:
        result, _ = run_cli(cli, server.url, tmp_path)
    v = verdicts(result)
    assert {m: s for m, s in v.items() if m.startswith("camera.")} == {
        m: "PASS" for m in v if m.startswith("camera.")}
    assert len([m for m in v if m.startswith("camera.")]) == 8


def test_cli_verdicts_black_and_frozen_files(cli, tmp_path, videos):
    black, _ = run_cli(cli, str(videos["black"]), tmp_path)
    assert verdicts(black)["camera.black_pct"] == "FAIL"
    frozen, _ = run_cli(cli, str(videos["frozen"]), tmp_path)
    v = verdicts(frozen)
    assert v["camera.frozen"] == "FAIL" and v["camera.black_pct"] == "PASS"
    blurred, _ = run_cli(cli, str(videos["blurred"]), tmp_path)
    assert verdicts(blurred)["camera.sharpness"] == "WARN"  # blur is scene-dependent: a warning
    bright, _ = run_cli(cli, str(videos["overexposed"]), tmp_path)
    assert verdicts(bright)["camera.overexposed_pct"] == "WARN"
    small, _ = run_cli(cli, str(videos["small"]), tmp_path)
    v = verdicts(small)
    assert (v["camera.width_px"], v["camera.height_px"], v["camera.fps"]) == ("FAIL", "FAIL", "PASS")


def test_cli_meeting_room_asks_for_1080p_and_judges_it(cli, tmp_path):
    with MjpegServer(fps=30, width=1280, height=720) as server:
        result, _ = run_cli(cli, server.url, tmp_path, "--profile", "meeting-room")
    record = result["checks"]["camera"]
    assert record["details"]["requested"]["width_px"] == 1920  # the profile's [checks.camera]
    v = verdicts(result)
    assert (v["camera.width_px"], v["camera.height_px"]) == ("FAIL", "FAIL")  # 720p < 1080p
    assert v["camera.fps"] == "PASS" and v["camera.working"] == "PASS"


def test_cli_silent_stream_fails_within_budget(cli, tmp_path):
    with SilentServer() as server:
        result, elapsed = run_cli(cli, server.url, tmp_path)
    record = result["checks"]["camera"]
    assert record["status"] == "ok"  # answered itself, before the runner had to kill it
    assert record["duration_s"] < BUDGET_S
    assert record["details"]["findings"][0]["code"] == "stream_no_picture"
    html = next(tmp_path.glob("**/*.html")).read_text(encoding="utf-8")
    assert "sent no picture within" in html  # the catalog's words for the fact
    assert verdicts(result)["camera.working"] == "FAIL"
    assert verdicts(result)["camera.fps"] == "UNKNOWN"


def test_cli_open_that_blocks_forever_answers_within_budget(cli, tmp_path):
    # A FIFO without a writer: FFmpeg's open() blocks in the kernel and no OpenCV timeout
    # reaches it, like a camera driver that never returns. The check's own deadline answers.
    need(hasattr(os, "mkfifo"), "named pipes (POSIX) stand in for a driver whose open never returns")
    fifo = tmp_path / "hung-camera"
    os.mkfifo(fifo)
    result, elapsed = run_cli(cli, str(fifo), tmp_path)
    record = result["checks"]["camera"]
    assert record["status"] == "ok"  # the check answered, not the runner's kill
    assert record["duration_s"] <= BUDGET_S + 1
    assert record["metrics"]["working"]["value"] is False
    assert record["details"]["findings"][0]["code"] == "camera_open_hangs"


def test_cli_snapshot_reaches_the_report_only_with_the_flag(cli, tmp_path, videos):
    plain, with_flag = tmp_path / "plain", tmp_path / "snap"
    for out, extra in ((plain, []), (with_flag, ["--snapshot"])):
        proc = cli("run", "--check", "camera", "--camera", str(videos["moving"]), "--no-open", "-q",
                   "-o", str(out), *extra, timeout=60)
        assert proc.returncode == 3, proc.stderr  # the camera alone: partial, no fault found
    assert "data:image/jpeg" not in next(plain.glob("*.html")).read_text(encoding="utf-8")
    assert "snapshot_jpeg_b64" not in next(plain.glob("*.json")).read_text(encoding="utf-8")
    assert "data:image/jpeg;base64," in next(with_flag.glob("*.html")).read_text(encoding="utf-8")
