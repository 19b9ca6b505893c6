"""The browser self-test's speed and weight: the whole page test in headless Chromium (target
<= 20 s from opening the page to the judged result stored) and the page with its script and
style (target <= 150 kB), beside references measured in the same run: the time its measurements
themselves need (camera, microphone and tone side by side, latency, download and upload, as the
stored result records them) and the size of the agent's own HTML report for the same result.

As root the page runs as on a LAN: Chromium in the client namespace of a veth pair shaped to
100 Mbit/s (tests/netns.py), `readiness serve` in the server namespace. Otherwise on loopback,
where the transfers are bound by the CPU and rarely steady, so they run to their 4 s limit:
a worst case. Fake camera and microphone files either way.
Run: python3 bench/selftest.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import Chromium, chromium_path  # noqa: E402
from fake_media import write_wav, write_y4m  # noqa: E402
from netns import Link, available, wait_line  # noqa: E402
from test_selftest_browser import fake_media_flags, run_page  # noqa: E402

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
LAN_MBIT = 100
TIME_TARGET_S = 20.0
WEIGHT_TARGET_KB = 150.0


def fetch(url: str) -> bytes:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=10) as r:
        return r.read()


def fetch_in(link: Link, url: str) -> bytes:
    """GET from inside the client namespace (the server is reachable only there)."""
    code = "import sys, urllib.request as u; sys.stdout.buffer.write(u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=10).read())"
    return subprocess.run(["ip", "netns", "exec", link.client_ns, sys.executable, "-c", code, url],
                          capture_output=True, check=True, timeout=30).stdout


def main() -> int:
    if chromium_path() is None:
        print("chromium is not installed (tests/run.sh installs it)")
        return 1
    lan, why = available()
    with tempfile.TemporaryDirectory(prefix="readiness-bench-selftest-") as tmp:
        folder = Path(tmp)
        flags = fake_media_flags(write_y4m(folder / "v.y4m", 1280, 720, 30), write_wav(folder / "a.wav"))
        link = Link() if lan else None
        try:
            if link is not None:
                link.shape(LAN_MBIT, queue_ms=20)
                server = link.popen(link.server_ns, [sys.executable, "-m", "readiness.cli", "serve", "--host", link.server_ip,
                                                     "--http-port", "8080", "--stun-port", "3478",
                                                     "--results-dir", str(folder / "results")])
                wait_line(server, "listening on", timeout=20)
                url, host = f"http://{link.server_ip}:8080", link.server_ip
                flags.append(f"--unsafely-treat-insecure-origin-as-secure={url}")
                prefix = ["ip", "netns", "exec", link.client_ns]
                where = f"a veth link shaped to {LAN_MBIT} Mbit/s"
            else:
                server = subprocess.Popen([sys.executable, "-m", "readiness.cli", "serve", "--host", "127.0.0.1",
                                           "--http-port", "0", "--stun-port", "0", "--results-dir", str(folder / "results")],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                port = int(re.search(r"http://127\.0\.0\.1:(\d+)", wait_line(server, "listening on")).group(1))
                url, host, prefix = f"http://127.0.0.1:{port}", "127.0.0.1", None
                where = f"loopback ({why}; transfers bound by the CPU: a worst case)"
            get = (lambda path: fetch_in(link, url + path)) if link is not None else (lambda path: fetch(url + path))
            weights = {name: len(get(path)) for name, path in
                       (("page", "/"), ("script", "/__selftest/selftest.js"), ("style", "/__selftest/selftest.css"))}
            walls, measured, steps = [], [], []
            report_kb = 0.0
            for _ in range(RUNS):
                with Chromium(flags, allow=[host], prefix=prefix, timeout=60) as b:
                    t0 = time.perf_counter()
                    page = run_page(b, url + "/", timeout=60)
                    walls.append(time.perf_counter() - t0)
                doc = json.loads(get(f"/__selftest/report/{page['run']}.json"))
                d = {n: c["duration_s"] for n, c in doc["checks"].items()}
                # camera and microphone run side by side, so do the tone and the latency probes
                measured.append(max(d["camera"], d["microphone"]) + max(d["speakers"], d["latency"]) + d["bandwidth"])
                bw = doc["checks"]["bandwidth"]["details"]
                steps.append(", ".join(f"{n} {v:.1f}" for n, v in d.items() if v) + " (transfers: " + ", ".join(
                    f"{k} {bw[k].get('seconds', 0):.1f} s{'' if bw[k].get('steady') else ' unsteady'}" for k in ("down", "up") if k in bw) + ")")
                report_kb = len(get(f"/__selftest/report/{page['run']}.html")) / 1000
        finally:
            if link is not None:
                link.close()
            else:
                server.terminate()
                server.wait(10)
    print(f"page served over {where}")
    for line in steps:
        print(f"  steps (s): {line}")
    wall = sorted(walls)[len(walls) // 2]
    need = sorted(measured)[len(measured) // 2]
    total_kb = sum(weights.values()) / 1000
    ok_time, ok_weight = wall <= TIME_TARGET_S, total_kb <= WEIGHT_TARGET_KB
    print(f"measurements alone (reference)   {need:6.2f} s   (median of {RUNS} runs; machine shared, figures noisy)")
    print(f"whole page test                  {wall:6.2f} s   target <= {TIME_TARGET_S:g} s   {'ok' if ok_time else 'SLOW'}"
          f"   ({wall / need:.2f}x its measurements; runs: {', '.join(f'{w:.1f}' for w in walls)})")
    print(f"agent's HTML report (reference)  {report_kb:6.1f} kB")
    print(f"page + script + style            {total_kb:6.1f} kB   target <= {WEIGHT_TARGET_KB:g} kB   "
          f"{'ok' if ok_weight else 'HEAVY'}   ({total_kb / report_kb:.2f}x the report; "
          + ", ".join(f"{k} {v / 1000:.1f}" for k, v in weights.items()) + ")")
    return 0 if ok_time and ok_weight else 1


if __name__ == "__main__":
    sys.exit(main())
