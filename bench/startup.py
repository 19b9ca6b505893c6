"""Start-up and system-check speed: `readiness --help` (target < 0.3 s) and
`readiness run --check system` (target < 3 s), beside a bare Python start measured in the same run.

Run: python3 bench/startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 7


def timed(cmd: list[str], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    py = sys.executable
    bare = timed([py, "-c", "pass"])
    helped = timed([py, "-m", "readiness.cli", "--help"])
    with tempfile.TemporaryDirectory() as out:
        system = timed([py, "-m", "readiness.cli", "run", "--check", "system", "--no-open", "-q", "-o", out], runs=3)
    print(f"python -c pass (reference)        {bare:6.3f} s")
    print(f"readiness --help                  {helped:6.3f} s   target < 0.300 s   {'ok' if helped < 0.3 else 'SLOW'}"
          f"   ({helped / bare:.1f}x a bare start)")
    print(f"readiness run --check system      {system:6.3f} s   target < 3.000 s   {'ok' if system < 3 else 'SLOW'}"
          f"   (of which 1.0 s is the CPU-load sample)")
    return 0 if helped < 0.3 and system < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
