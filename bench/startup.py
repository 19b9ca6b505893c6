"""Start-up and system-check speed of this tree beside a reference tree, measured in the same run.

`readiness --help` (target ≤ 0.15 s) and `readiness run --check system` (target: no slower than the
reference), each beside a bare Python start. The reference is another commit of this repository
(default: REFERENCE below, the last commit before the layout of folders per stage), installed into
a throw-away virtual environment; the two are timed in alternation, so a busy machine slows both.

Run: python3 bench/startup.py [--ref COMMIT] [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = "c91d46c"  # the last landed commit before src/readiness/ was split into measure/, judge/, ...
ROOT = Path(__file__).resolve().parent.parent


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=False)
    return time.perf_counter() - t0


def install(src: Path, where: Path) -> Path:
    """The tree at ``src`` installed (not editable, byte-compiled as pip does) into a venv that sees
    this Python's packages; returns its python. Both trees are installed the same way, so neither
    pays for compiling its modules at every start (an editable install under
    PYTHONDONTWRITEBYTECODE would)."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(where)], check=True)
    py = where / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(src)],
                   check=True, capture_output=True)
    return py


def install_reference(ref: str, where: Path) -> Path:
    """``ref`` of this repository, installed into a throw-away venv; returns its python."""
    src = where / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return install(src, where / "venv")


def alternate(commands: dict[str, list[str]], runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default=REFERENCE, help="commit to compare with (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref_py = str(install_reference(a.ref, Path(tmp) / "ref"))
        py = str(install(ROOT, Path(tmp) / "this"))
        out = Path(tmp) / "out"
        help_t = alternate({"bare": [sys.executable, "-c", "pass"], "this": [py, "-m", "readiness.cli", "--help"],
                            "ref": [ref_py, "-m", "readiness.cli", "--help"]}, a.runs)
        system = [ "run", "--check", "system", "--no-open", "-q", "-o", str(out)]
        sys_t = alternate({"this": [py, "-m", "readiness.cli", *system], "ref": [ref_py, "-m", "readiness.cli", *system]},
                          max(3, a.runs // 2))
    help_ok = help_t["this"] <= 0.15
    sys_ratio = sys_t["this"] / sys_t["ref"]
    print(f"python -c pass (reference)       {help_t['bare']:6.3f} s")
    print(f"readiness --help      this tree  {help_t['this']:6.3f} s   target <= 0.150 s   {'ok' if help_ok else 'SLOW'}"
          f"   ({help_t['this'] / help_t['bare']:.2f}x a bare start)")
    print(f"readiness --help      {a.ref:<9}  {help_t['ref']:6.3f} s   this/ref {help_t['this'] / help_t['ref']:.2f}")
    print(f"run --check system    this tree  {sys_t['this']:6.3f} s   (1.0 s of it is the CPU-load sample)")
    print(f"run --check system    {a.ref:<9}  {sys_t['ref']:6.3f} s   this/ref {sys_ratio:.2f}   "
          f"{'ok' if sys_ratio <= 1.05 else 'SLOWER'}")
    return 0 if help_ok and sys_ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
