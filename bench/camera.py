"""Bench: the camera check's frame-rate accuracy and its time, working and hung.

    python bench/camera.py

1. Frame rate: MJPEG over HTTP on loopback, served in real time at 5, 12, 25 and 30 fps. The
   check's delivered fps beside the reference measured in the same run (the rate at which the
   server actually wrote frames, from its own send times), and beside the CAP_PROP_FPS that
   FFmpeg claims for the stream. Target: within 1 fps of the served rate.
2. Time, through the real runner (`readiness run --check camera --json`, the check in its
   killable child process) at default settings: a working 720p30 stream (target <= 5 s), a
   server that accepts and never answers, one that stalls after 3 frames, and a FIFO whose
   open() never returns (target: within the check's budget + 1 s). Shown: the check's recorded duration and the command's wall time.

Exit code 1 if a target is missed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from camera_sources import MjpegServer, SilentServer  # noqa: E402
from readiness.check import CheckContext  # noqa: E402
from readiness.checks.camera import CameraCheck  # noqa: E402
from readiness.measure.frames import delivered_fps  # noqa: E402

RATES = (5, 12, 25, 30)
WORKING_TARGET_S = 5.0
BUDGET_S = CameraCheck.budget_s


def fps_accuracy() -> bool:
    print("1. delivered frame rate, MJPEG over HTTP, 640x480, default settings (3 s window)")
    print(f"   {'served':>7} {'server sent':>12} {'measured':>9} {'error':>7} {'CAP_PROP_FPS':>13}")
    ok = True
    for rate in RATES:
        with MjpegServer(fps=rate) as server:
            m = CameraCheck().run(CheckContext(settings=CameraCheck.default_settings(),
                                               options={"camera": server.url}, budget_s=BUDGET_S))
            sent = delivered_fps(server.sent_at)
        fps = m.metrics.get("fps")
        err = None if fps is None else fps - rate
        good = err is not None and abs(err) <= 1.0
        ok &= good
        print(f"   {rate:>7.1f} {sent or 0:>12.2f} {fps or 0:>9.2f} {err or 0:>+7.2f} "
              f"{m.details.get('driver', {}).get('claimed_fps', 0):>13.1f}  {'ok' if good else 'MISSED'}")
    return ok


def cli_run(source: str, out: str) -> tuple[dict, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "readiness.cli", "run", "--check", "camera",
                           "--camera", source, "--json", "--no-open", "-q", "-o", out],
                          capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t0
    return json.loads(proc.stdout)["checks"]["camera"], wall


class _Fifo:
    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.url = str(path)

    def __enter__(self) -> "_Fifo":
        return self

    def __exit__(self, *exc) -> None:
        os.unlink(self.url)


def timing() -> bool:
    print(f"2. time through `readiness run --check camera` (child process, budget {BUDGET_S:g} s)")
    print(f"   {'case':<34} {'check s':>8} {'wall s':>7} {'target':>9}  working  outcome")
    ok = True
    with tempfile.TemporaryDirectory() as out:
        cases = [
            ("working stream 1280x720 @ 30 fps", lambda: MjpegServer(fps=30, width=1280, height=720),
             WORKING_TARGET_S),
            ("silent server (never answers)", SilentServer, BUDGET_S + 1),
            ("stream stalls after 3 frames", lambda: MjpegServer(fps=25, stall_after=3), BUDGET_S + 1),
        ]
        if hasattr(os, "mkfifo"):
            # A FIFO without a writer: FFmpeg's open() blocks in the kernel, beyond any OpenCV
            # timeout, like a camera driver whose open never returns.
            cases.append(("open blocks forever (FIFO)", lambda: _Fifo(Path(out) / "hung"), BUDGET_S + 1))
        for label, make, target in cases:
            with make() as server:
                record, wall = cli_run(server.url, out)
            took = record["duration_s"]
            good = took <= target and record["status"] == "ok"
            ok &= good
            working = record["metrics"].get("working", {}).get("value")
            said = (record["details"].get("diagnosis") or [record.get("error") or "no findings"])[-1]
            print(f"   {label:<34} {took:>8.2f} {wall:>7.2f} {'<= ' + format(target, 'g'):>9}  "
                  f"{str(working):<7}  {'ok' if good else 'MISSED'}: {said[:70]}")
    return ok


def main() -> int:
    ok = fps_accuracy()
    print()
    ok &= timing()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
