"""Run every benchmark in bench/ in turn (python3 bench/run_all.py); each prints its own figures
beside the reference it measured in the same run. Exit code 1 if any missed its target."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    worst = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == "run_all.py" or script.name.startswith("_"):
            continue
        print(f"== {script.name}", flush=True)
        code = subprocess.run([sys.executable, str(script)], check=False).returncode
        worst = max(worst, code)
        print(flush=True)
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
