"""Accuracy and speed of the network checks against ground truth measured in the same run.

    sudo python bench/network.py            (needs root: network namespaces, tc, iptables; iperf3)

Every figure is printed beside its reference and the ratio (or difference):
- bandwidth, http backend, at 5 / 50 / 500 Mbit/s (tbf both ways) vs iperf3 on the same link;
- deep queues: 10 Mbit/s + 300 ms, 5 + 500, 50 + 100, 20 + 500 (tbf queue) vs iperf3 run 10 s
  with 2 s omitted (shorter iperf3 runs read a few % high there), and vs nominal goodput;
- responsiveness (RPM) on the deep-queue link vs 60000 / the loaded RTT the STUN probes saw;
- repeatability: 10 runs of every network figure on a shaped link, coefficient of variation;
- latency: median RTT vs the STUN responder's delay (10-200 ms), jitter vs what its uniform
  jitter implies (2/3 of the ± half-width), loss at 3 % iptables loss vs the kernel's own
  drop counter;
- bufferbloat on a 10 Mbit/s link with a 300 ms tbf queue, and the verdict the default
  profile gives it;
- wall time of connectivity + latency + bandwidth through `readiness run --server`, default
  settings, and the speedtest backend (speedtest-cli, real code, against a local legacy
  server with speedtest.net's usual 10 s test length) side by side with the http backend;
- ceiling: the http backend's download on loopback vs iperf3 on loopback.
Traffic stays inside namespaces this script creates, or on loopback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import netns  # noqa: E402

# Results of the bench runs go to a throw-away folder, removed at exit.
_out = tempfile.TemporaryDirectory(prefix="readiness-bench-")
OUT_DIR = _out.name

ROWS: list[tuple] = []


def row(what: str, value: float | None, ref: float | None, unit: str, mode: str = "ratio", note: str = "") -> None:
    if value is None or ref is None:
        cmp = "n/a"
    elif mode == "ratio":
        cmp = f"ratio {value / ref:.3f}" if ref else "n/a"
    else:
        cmp = f"diff {value - ref:+.2f} {unit}"
    v = "—" if value is None else f"{value:.2f}"
    r = "—" if ref is None else f"{ref:.2f}"
    line = f"  {what:<44} {v:>9} {unit:<7} ref {r:>9} {unit:<7} {cmp:<18} {note}"
    print(line, flush=True)
    ROWS.append((what, value, ref, unit, cmp, note))


def bandwidth_sweep(link: netns.Link, url: str) -> None:
    print("\nBandwidth, http backend vs iperf3 (4 streams, 5 s after 1 s omitted), same link, same run")
    for rate in (5, 50, 500):
        link.shape(rate)
        # 5 s: iperf3's receiver counts what sat in queues at the end of its omitted first
        # second, which inflates a short run by up to a queue's worth of bytes
        ref_down = link.iperf3(5, reverse=True)
        ref_up = link.iperf3(5)
        r = link.run_checks(["bandwidth"], options={"server": url})["bandwidth"]
        m = r.get("metrics", {})
        # what the shaper lets through as TCP payload: 1448 of every 1514 bytes on the wire
        nominal = rate * 1448 / 1514
        row(f"tbf {rate} Mbit/s download", m.get("download_mbps"), ref_down, "Mbit/s",
            note=f"vs nominal goodput {nominal:.2f}: {m.get('download_mbps', 0) / nominal:.3f}")
        row(f"tbf {rate} Mbit/s upload", m.get("upload_mbps"), ref_up, "Mbit/s",
            note=f"vs nominal goodput {nominal:.2f}: {m.get('upload_mbps', 0) / nominal:.3f}; check took {r['seconds']:.1f} s")
    link.shape(None)


def deep_queues(link: netns.Link, url: str) -> None:
    print("\nDeep queues: http backend vs iperf3 (10 s, 2 s omitted) and nominal goodput, same link, same run")
    for rate, queue in ((10, 300), (5, 500), (50, 100), (20, 500)):
        link.shape(rate, queue_ms=queue)
        ref_down = link.iperf3(10, reverse=True, omit=2)
        ref_up = link.iperf3(10, omit=2)
        r = link.run_checks(["bandwidth"], options={"server": url})["bandwidth"]
        link.shape(None)
        m, d = r.get("metrics", {}), r.get("details", {})
        nominal = rate * 1448 / 1514
        for direction, metric, ref in (("down", "download_mbps", ref_down), ("up", "upload_mbps", ref_up)):
            e = d.get(direction, {})
            row(f"tbf {rate} Mbit/s, {queue} ms queue: {direction}", m.get(metric), ref, "Mbit/s",
                note=f"nominal {nominal:.2f}: {(m.get(metric) or 0) / nominal:.3f}; {e.get('seconds', 0):.1f} s, "
                     f"steady {e.get('steady')}")
        row(f"tbf {rate} Mbit/s, {queue} ms queue: check time", r["seconds"], 15, "s", "diff")


def responsiveness_run(link: netns.Link, url: str) -> None:
    print("\nResponsiveness (RPM) vs the loaded round trip the STUN probes measured beside it")
    for rate, queue in ((10, 300), (50, 50)):
        link.shape(rate, queue_ms=queue)
        r = link.run_checks(["bandwidth"], options={"server": url})["bandwidth"]
        link.shape(None)
        d = r.get("details", {})
        for direction in ("down", "up"):
            e = d.get(direction, {})
            resp = e.get("responsiveness", {})
            loaded = e.get("loaded_rtt_median_ms")
            row(f"tbf {rate}/{queue} ms {direction}: RPM", resp.get("rpm"), 60000 / loaded if loaded else None, "RPM",
                note=f"band {resp.get('band')}; foreign {resp.get('foreign_rtt_ms')} ms, self {resp.get('self_rtt_ms')} ms,"
                     f" STUN {loaded} ms; queue limit {queue} ms")


def repeatability(link: netns.Link, url: str, runs: int = 10) -> None:
    from readiness.measure.estimator import spread

    print(f"\nRepeatability: {runs} runs of each network figure, tbf 20 Mbit/s with a 50 ms queue; responder 50 ms ± 6 ms, 1 % drop")
    link.shape(20, queue_ms=50)
    ref_down = link.iperf3(5, reverse=True)
    ref_up = link.iperf3(5)
    bw = [link.run_checks(["bandwidth"], options={"server": url})["bandwidth"] for _ in range(runs)]
    link.shape(None)
    p = link.start_responder(4400, delay_ms=50, jitter_ms=6, drop=0.01, seed=4)
    lat = [link.run_checks(["latency"], settings={"latency": {"targets": [f"{link.server_ip}:4400"]}})["latency"]
           for _ in range(runs)]
    netns.stop(p)
    figures = [("download_mbps", bw, ref_down), ("upload_mbps", bw, ref_up), ("idle_rtt_ms", bw, None),
               ("loaded_latency_increase_ms", bw, None), ("responsiveness_rpm", bw, None),
               ("rtt_median_ms", lat, 50.0), ("jitter_ms", lat, 4.0), ("loss_pct", lat, 1.0), ("mos", lat, None)]
    for name, rs, ref in figures:
        vals = [r.get("metrics", {}).get(name) for r in rs]
        sp = spread([v for v in vals if v is not None]) or {}
        row(f"{name}: mean of {sp.get('n', 0)}", sp.get("mean"), ref, "", "ratio" if ref else "diff",
            note=f"sd {sp.get('stdev')}, CV {sp.get('cv_pct')} %")
        ROWS.append((f"{name} CV", sp.get("cv_pct"), None, "%", "", ""))
    secs = [r["seconds"] for r in bw]
    row("bandwidth check time: mean", sum(secs) / len(secs), 4, "s", "diff", note=f"max {max(secs):.1f} s")


def latency_sweep(link: netns.Link) -> None:
    print("\nLatency vs the STUN responder's delay (±jitter uniform), 5 s at 20 ms, default settings")
    for i, (delay, jitter) in enumerate(((10, 3), (50, 6), (100, 9), (200, 15))):
        port = 4100 + i
        p = link.start_responder(port, delay_ms=delay, jitter_ms=jitter, seed=i)
        r = link.run_checks(["latency"], settings={"latency": {"targets": [f"{link.server_ip}:{port}"]}})["latency"]
        netns.stop(p)
        m = r["metrics"]
        row(f"delay {delay} ms: median RTT", m["rtt_median_ms"], delay, "ms", "diff")
        row(f"delay {delay} ms ±{jitter}: jitter (RFC 3550)", m["jitter_ms"], 2 * jitter / 3, "ms", "diff",
            note=f"mean|ΔRTT| {r['details']['targets'][f'{link.server_ip}:{port}']['jitter_mean_abs_diff_ms']:.2f}")


def loss_run(link: netns.Link) -> None:
    print("\nLoss: iptables statistic drops 3 % of the client's UDP; 15 s stream (750 probes)")
    p = link.start_responder(4200, delay_ms=20)
    link.drop(0.03)
    r = link.run_checks(["latency"], settings={"latency": {"targets": [f"{link.server_ip}:4200"], "duration_s": 15.0}})["latency"]
    counters = subprocess.run(["ip", "netns", "exec", link.client_ns, "iptables", "-w", "-L", "OUTPUT", "-v", "-x", "-n"],
                              capture_output=True, text=True).stdout
    link.drop(0)
    netns.stop(p)
    dropped = int(next(line.split()[0] for line in counters.splitlines() if "DROP" in line))
    st = r["details"]["targets"][f"{link.server_ip}:4200"]
    row("loss at 3 % injected", r["metrics"]["loss_pct"], 100 * dropped / st["sent"], "%", "diff",
        note=f"kernel dropped {dropped} of {st['sent']}; nominal 3.00 %")
    row("burst loss (worst 200 ms)", r["metrics"]["burst_loss_pct"], None, "%")
    row("MOS at 3 % loss, 20 ms", r["metrics"]["mos"], None, "")


def cli_run(link: netns.Link, url: str) -> tuple[float, dict]:
    exe = shutil.which("readiness")
    t = time.monotonic()
    out = subprocess.run(["ip", "netns", "exec", link.client_ns, exe, "run", "-c", "connectivity", "-c", "latency",
                          "-c", "bandwidth", "--server", url, "--json", "--no-open", "-o", OUT_DIR],
                         capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - t
    return wall, json.loads(out.stdout)


def bufferbloat(link: netns.Link, url: str) -> None:
    print("\nBufferbloat: tbf 10 Mbit/s with a 300 ms queue, loaded by the bandwidth check")
    link.shape(10, queue_ms=300)
    _, result = cli_run(link, url)
    link.shape(None)
    m = {k: v["value"] for k, v in result["checks"]["bandwidth"]["metrics"].items()}
    row("loaded latency increase", m.get("loaded_latency_increase_ms"), 300, "ms", "diff",
        note="ref: the tbf queue limit, an upper bound (TCP backs off before it stays full)")
    verdicts = [f"{i['requirement']['severity']}: {i['status']}" for i in result["judgement"]["items"]
                if i["requirement"]["metric"] == "bandwidth.loaded_latency_increase_ms"]
    print(f"  judged by video-call: {', '.join(verdicts)}; overall {result['judgement']['overall']}")


def timing(link: netns.Link, url: str) -> None:
    print("\nTime: connectivity + latency + bandwidth, default settings, `readiness run --server`, 50 Mbit/s link")
    link.shape(50)
    wall, result = cli_run(link, url)
    per = {n: c["duration_s"] for n, c in result["checks"].items()}
    row("wall time, whole network part (CLI)", wall, 15, "s", "diff",
        note=" ".join(f"{n} {s:.1f}s" for n, s in per.items()))
    st = link.popen(link.server_ns, [sys.executable, str(ROOT / "tests" / "speedtest_server.py"), "--host", link.server_ip,
                                     "--port", "8090", "--testlength", "10"])
    netns.wait_line(st, "ready")
    ref_down = link.iperf3(3, reverse=True)
    ref_up = link.iperf3(3)
    http = link.run_checks(["bandwidth"], options={"server": url})["bandwidth"]
    spd = link.run_checks(["bandwidth"], settings={"bandwidth": {"backend": "speedtest", "speedtest_secure": False}},
                          env={"http_proxy": f"http://{link.server_ip}:8090"}, timeout=120)["bandwidth"]
    netns.stop(st)
    link.shape(None)
    print("  backend     time      download (ratio to iperf3)    upload (ratio to iperf3)")
    for name, r in (("http", http), ("speedtest", spd)):
        m = r.get("metrics", {})
        d, u = m.get("download_mbps"), m.get("upload_mbps")
        print(f"  {name:<10} {r['seconds']:5.1f} s   {d or 0:7.2f} Mbit/s ({(d or 0) / ref_down:.3f})"
              f"        {u or 0:7.2f} Mbit/s ({(u or 0) / ref_up:.3f})   {r.get('error', '')}")
        ROWS.append((f"{name} backend 50 Mbit/s", d, ref_down, "Mbit/s", f"time {r['seconds']:.1f}s", ""))
    row("speedtest backend time vs its budget", spd["seconds"], 25.0, "s", "diff",
        note="speedtest.net's own config says 10 s per direction; the check runs 8")
    print(f"  iperf3 reference: download {ref_down:.2f}, upload {ref_up:.2f} Mbit/s")


def offline() -> None:
    print("\nNo network: the whole network part through `readiness run` (default targets), must end within 5 s")
    exe = shutil.which("readiness")
    with netns.Link() as link:
        for case in ("no route at all", "route, but DNS does not answer"):
            if case.startswith("route"):
                link.break_dns()
            t = time.monotonic()
            out = subprocess.run(["ip", "netns", "exec", link.client_ns, exe, "run", "-c", "connectivity", "-c", "latency",
                                  "-c", "bandwidth", "--json", "--no-open", "-o", OUT_DIR],
                                 capture_output=True, text=True, timeout=60)
            wall = time.monotonic() - t
            errors = {c["error"].split(":")[0] for c in json.loads(out.stdout)["checks"].values()}
            row(f"{case}: wall time (CLI)", wall, 5, "s", "diff", note=" / ".join(sorted(errors)))


def loopback_ceiling() -> None:
    print("\nCeiling on loopback: http backend download vs iperf3 (4 streams)")
    srv = subprocess.Popen([sys.executable, "-m", "readiness.server.measure", "--host", "127.0.0.1", "--port", "18181",
                            "--stun-port", "13481"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    netns.wait_line(srv, "listening")
    code = ("import json; from readiness.check import CheckContext; from readiness.checks.bandwidth import BandwidthCheck as C;"
            "m=C().run(CheckContext(settings=C.default_settings(), options={'server':'http://127.0.0.1:18181'}, budget_s=20));"
            "print(json.dumps(m.metrics))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    netns.stop(srv)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    ip = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", "15299"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    ref = json.loads(subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", "15299", "-t", "3", "-O", "1", "-P", "4", "-R", "-J"],
                                    capture_output=True, text=True, timeout=30).stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
    ip.wait(5)
    row("loopback download (http backend)", m["download_mbps"], ref, "Mbit/s", note="must exceed 1000 Mbit/s")
    row("loopback upload (http backend)", m["upload_mbps"], ref, "Mbit/s", note="ref: iperf3 download")


def main() -> int:
    ok, why = netns.available()
    if not ok or not shutil.which("iperf3"):
        print(f"cannot run: {why or 'iperf3 is not installed'}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    with netns.Link() as link:
        server, url = link.start_server()
        bandwidth_sweep(link, url)
        deep_queues(link, url)
        responsiveness_run(link, url)
        repeatability(link, url)
        latency_sweep(link)
        loss_run(link)
        bufferbloat(link, url)
        timing(link, url)
        netns.stop(server)
    offline()
    loopback_ceiling()
    print(f"\nbench finished in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
