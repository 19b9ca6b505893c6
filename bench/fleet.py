"""Bench: `readiness aggregate` over 10 000 result files — time and peak memory.

    python bench/fleet.py [--files 10000] [--hosts 2500] [--keep DIR [--reuse]] [--no-distinct]

1. Writes a realistic, varied fleet THROUGH THE PROJECT'S OWN RESULT MODEL: ``Result`` and
   ``CheckRecord`` filled with the metrics the installed checks declare (and, for checks whose
   plugin is not there yet, the names the shipped profiles reference, else sensible ones),
   judged by ``judge`` against the shipped profiles (meeting rooms: meeting-room; desks:
   video-call; a few: audio-call), written by ``write_result``. Several sites and rooms,
   months of repeated runs, and failures of every kind: missed bounds, checks that failed,
   timed out or were skipped, metrics that could not be measured, a HTML report beside one
   result in ten, duplicate copies of runs, and a sprinkle of bad files.
2. Times ``readiness aggregate DIR -o fleet.html --csv fleet.csv`` (a real subprocess) and
   measures its peak RSS and CPU (``wait4``), beside the floor measured in the same run: plain
   ``json.loads`` of every file in one process; and, in interleaved rounds, beside ``orjson.loads``
   of every file in one process (issue 22's target: at most 1.5x, wall time against wall time;
   aggregate reads in worker processes when there is more than one CPU, so its CPU per file is
   printed too).
3. Peak RSS at 2 500 / 5 000 / 10 000 files with the SAME hosts (1, 2, 4 runs each: memory
   should stay flat, it grows with hosts, not files), and at 2 500 / 5 000 / 10 000 DISTINCT
   hosts for comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from readiness.fleet.read import _auto_workers
from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from readiness.render.report import render_report
from readiness.judge.requirements import load_profile, shipped_profiles
from readiness.result import CheckRecord, Result, write_atomic, write_result

TARGET_S = 10.0
SITES = [("Stockholm", 0.30, 24), ("Göteborg", 0.18, 14), ("Malmö", 0.14, 10), ("Uppsala", 0.10, 8),
         ("Linköping", 0.09, 6), ("Umeå", 0.08, 6), ("Luleå", 0.06, 4), ("Kiruna", 0.05, 2)]
# Units of the metrics the profiles may name before their check plugin exists.
FALLBACK_METRICS = {
    "bandwidth.download_mbps": "Mbit/s", "bandwidth.upload_mbps": "Mbit/s", "bandwidth.loaded_latency_increase_ms": "ms",
    "latency.rtt_median_ms": "ms", "latency.rtt_p95_ms": "ms", "latency.jitter_ms": "ms", "latency.loss_pct": "%",
    "latency.mos": "", "connectivity.udp_media_reachable": "", "connectivity.dns_ms": "ms",
    "microphone.level_dbfs": "dBFS", "microphone.snr_db": "dB", "microphone.clipping_pct": "%",
    "speakers.played": "", "camera.height_px": "px", "camera.fps": "fps",
}
ERRORS = {
    "camera": ["no camera found", "the camera is in use by another program", "camera access denied by privacy settings"],
    "microphone": ["no microphone found", "the microphone is muted in the operating system", "device unavailable"],
    "speakers": ["no output device", "the audio device stopped answering"],
    "bandwidth": ["the speed test server did not answer", "connection reset during upload"],
    "latency": ["no STUN server answered (UDP 3478 blocked?)"],
    "connectivity": ["DNS lookups fail"],
}


class Host:
    """Properties of one machine that stay from run to run (its hardware, its room, its link)."""

    def __init__(self, rng: random.Random, index: int, rooms_taken: dict[str, int]) -> None:
        r = rng.random()
        acc = 0.0
        for name, weight, rooms in SITES:
            acc += weight
            if r <= acc:
                break
        self.site = name
        self.is_room = rng.random() < 0.35
        n = rooms_taken[name] = rooms_taken.get(name, 0) + 1  # a room number once per site
        self.room = f"{1 + n // 20}.{n % 20 + 1:02d}" if self.is_room else ""
        slug = "".join(c for c in name.lower() if c.isascii() and c.isalnum())[:5]
        self.hostname = f"{slug}-{'mr' if self.is_room else 'ws'}{index:05d}"
        self.profile = "meeting-room" if self.is_room else ("audio-call" if rng.random() < 0.1 else "video-call")
        self.label = f"asset-{rng.randint(10000, 99999)}" if rng.random() < 0.5 else ""
        self.cores = rng.choice([1] + [2] * 3 + [4] * 8 + [6] * 4 + [8] * 6 + [12, 16])
        self.ram = rng.choice([2] + [4] * 3 + [8] * 8 + [16] * 10 + [32] * 3)
        self.freq = round(rng.uniform(0.9, 4.2), 2)
        self.wired = rng.random() < (0.9 if self.is_room else 0.35)
        self.link = rng.choice([100, 1000, 1000, 1000, 2500]) if self.wired else None
        cameras = [(1920, 1080)] * 8 + [(1280, 720), (3840, 2160)] if self.is_room else \
            [(640, 480)] + [(1280, 720)] * 5 + [(1920, 1080)] * 4
        self.camera = rng.choice(cameras)
        self.camera_fps = rng.choice([15] + [30] * 12 + [60] * 2)
        self.no_camera = rng.random() < 0.04
        self.site_bw = rng.lognormvariate(math.log(120 if self.wired else 40), 0.9)
        self.site_rtt = rng.lognormvariate(math.log(25), 0.6)


def _value(metric: str, unit: str, kind: str, host: Host, rng: random.Random, bounds: dict[str, Any]) -> Any:
    """One measured value: realistic for the metrics known here, around the bound otherwise."""
    check, _, name = metric.partition(".")
    if kind == "bool":
        known = {"system.wired_network": host.wired, "system.vpn_active": rng.random() < 0.08,
                 "system.proxy_configured": rng.random() < 0.05, "system.on_ac_power": rng.random() < 0.9,
                 "camera.working": not host.no_camera, "camera.frozen": rng.random() < 0.01,
                 "connectivity.proxy_detected": rng.random() < 0.1, "connectivity.vpn_detected": rng.random() < 0.15}
        if metric in known:
            return known[metric]
        expect = bounds.get("expect")
        return (expect if rng.random() < 0.98 else not expect) if expect is not None else rng.random() < 0.5
    known_num = {
        "system.cpu_cores": host.cores, "system.cpu_threads": host.cores * 2, "system.cpu_freq_ghz": host.freq,
        "system.cpu_load_pct": round(rng.uniform(2, 95), 1), "system.ram_total_gb": host.ram,
        "system.ram_available_gb": round(host.ram * rng.uniform(0.1, 0.7), 2), "system.disk_free_gb": round(rng.uniform(1, 400), 1),
        "system.battery_pct": round(rng.uniform(5, 100)), "system.wired_link_mbps": host.link,
        "camera.width_px": host.camera[0], "camera.height_px": host.camera[1],
        "camera.fps": round(host.camera_fps * rng.uniform(0.88, 1.0), 1), "camera.first_frame_ms": round(rng.uniform(80, 2500)),
        "camera.brightness_pct": round(rng.uniform(5, 90), 1), "camera.black_pct": 100.0 if rng.random() < 0.01 else 0.0,
        "camera.overexposed_pct": round(max(0.0, rng.gauss(3, 15)), 1), "camera.sharpness": round(rng.lognormvariate(math.log(120), 0.9), 1),
        "camera.noise_pct": round(rng.uniform(0.3, 6), 2),
        "bandwidth.download_mbps": round(host.site_bw * rng.lognormvariate(0, 0.35), 2),
        "bandwidth.upload_mbps": round(host.site_bw * 0.4 * rng.lognormvariate(0, 0.5), 2),
        "bandwidth.loaded_latency_increase_ms": round(rng.lognormvariate(math.log(30), 1.0), 1),
        "bandwidth.idle_rtt_ms": round(host.site_rtt * rng.lognormvariate(0, 0.2), 1),
        "latency.rtt_min_ms": round(host.site_rtt * 0.8, 1), "latency.rtt_median_ms": round(host.site_rtt * rng.lognormvariate(0, 0.25), 1),
        "latency.rtt_p95_ms": round(host.site_rtt * rng.lognormvariate(0.5, 0.4), 1),
        "latency.jitter_ms": round(rng.lognormvariate(math.log(4), 0.9), 2),
        "latency.loss_pct": round(max(0.0, rng.lognormvariate(math.log(0.08), 1.3) - 0.05), 2),
        "latency.burst_loss_pct": round(rng.lognormvariate(math.log(1), 1.1), 1), "latency.reorder_pct": 0.0,
        "latency.mos": round(min(4.41, rng.gauss(4.22, 0.18)), 2), "microphone.level_dbfs": round(rng.gauss(-30, 9), 1),
        "microphone.snr_db": round(rng.gauss(35, 10), 1), "microphone.clipping_pct": round(max(0.0, rng.gauss(0, 0.5)), 2),
    }
    if metric in known_num:
        return known_num[metric]
    lo, hi = bounds.get("min"), bounds.get("max")
    if lo is not None:
        return round(lo * rng.lognormvariate(0.4, 0.5), 2) if lo else round(rng.uniform(0, 10), 2)
    if hi is not None:
        return round(hi * rng.lognormvariate(-0.6, 0.6), 2)
    return round(rng.uniform(0, 100), 2)


def metric_catalog(plugins: Any, profiles: dict[str, Any]) -> dict[str, dict[str, tuple[str, str]]]:
    """check -> metric -> (unit, kind): installed checks first, then what profiles name, then fallbacks."""
    cat: dict[str, dict[str, tuple[str, str]]] = {}
    for cname, cls in plugins.checks.items():
        cat[cname] = {m.name: (m.unit, m.kind) for m in cls.metrics}
    for prof in profiles.values():
        for req in prof.requirements:
            check, _, name = req.metric.partition(".")
            cat.setdefault(check, {}).setdefault(name, (FALLBACK_METRICS.get(req.metric, ""), "bool" if req.expect is not None else "number"))
    for qualified, unit in FALLBACK_METRICS.items():
        check, _, name = qualified.partition(".")
        if check not in plugins.checks:
            cat.setdefault(check, {}).setdefault(name, (unit, "bool" if name in ("udp_media_reachable", "played") else "number"))
    return cat


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_run(host: Host, when: datetime, run_no: int, rng: random.Random, catalog: dict[str, dict[str, tuple[str, str]]],
             profile: Any, bounds: dict[str, dict[str, Any]]) -> Result:
    checks: dict[str, CheckRecord] = {}
    for cname in profile.checks():
        metrics = catalog.get(cname, {})
        started = _iso(when)
        r = rng.random()
        if cname == "camera" and host.no_camera:
            status, error = "error", "no camera found"
        elif r < 0.012:
            status, error = "error", rng.choice(ERRORS.get(cname, ["the check failed"]))
        elif r < 0.017:
            status, error = "timeout", f"did not finish within {rng.choice([15, 20, 30])} s"
        elif r < 0.022 and cname in ("speakers", "microphone", "camera"):
            status, error = "skipped", "skipped: the room was in use (--no-sound)"
        else:
            status, error = "ok", None
        rec = CheckRecord(name=cname, status=status, started_utc=started, duration_s=round(rng.uniform(0.2, 12), 2),
                          title=cname.capitalize(), error=error)
        if status == "ok":
            for mname, (unit, kind) in metrics.items():
                if rng.random() < 0.002:
                    continue  # could not be measured this time
                v = _value(f"{cname}.{mname}", unit, kind, host, rng, bounds.get(f"{cname}.{mname}", {}))
                if v is not None:
                    rec.metrics[mname] = {"value": v, "unit": unit}
            rec.details = _details(cname, host, rng)
        checks[cname] = rec
    labels = {k: v for k, v in (("site", host.site), ("room", host.room), ("label", host.label)) if v}
    res = Result(run_id=f"{rng.getrandbits(128):032x}", started_utc=_iso(when), finished_utc=_iso(when + timedelta(seconds=18)),
                 host={"hostname": host.hostname, "os": rng.choice(["Windows", "Windows", "Darwin", "Linux"]), "os_release": "10",
                       "machine": "x86_64", "python": "3.12.1"},
                 labels=labels, profile=profile.summary(), checks=checks, tool_version="0.1.0")
    res.judgement = judge(res, profile).to_dict()
    return res


def _details(cname: str, host: Host, rng: random.Random) -> dict[str, Any]:
    """Details of the size real checks write (device names, a chart of samples)."""
    if cname == "system":
        return {"os": "Windows", "cpu_model": "Intel(R) Core(TM) i5-8350U", "interfaces": [
            {"name": "Ethernet", "kind": "wired", "up": host.wired, "speed_mbps": host.link, "addresses": ["10.1.2.3"]},
            {"name": "Wi-Fi", "kind": "wireless", "up": not host.wired, "speed_mbps": None, "addresses": []}]}
    if cname == "latency":
        pts = [[round(i * 0.02, 2), round(host.site_rtt + rng.gauss(0, 3), 1)] for i in range(120)]
        return {"targets": ["stun.example.org:3478"], "charts": [{"title": "Round-trip time", "y_unit": "ms", "x_label": "s", "points": pts}]}
    if cname == "camera":
        return {"device": "Logitech MeetUp" if host.is_room else "Integrated Camera", "backend": "MSMF", "fourcc": "MJPG",
                "diagnosis": [] if rng.random() < 0.9 else ["the picture is dark: light the room from the front"]}
    if cname == "bandwidth":
        return {"server": "https://speed.example.org", "samples_mbps": [round(host.site_bw * rng.uniform(0.7, 1.1), 1) for _ in range(20)]}
    if cname in ("microphone", "speakers"):
        return {"device": "Jabra Speak 710" if host.is_room else "Realtek Audio", "sample_rate": 48000}
    return {}


def generate(top: Path, files: int, hosts: int, seed: int = 7, bad_every: int = 500, html_every: int = 10) -> dict[str, Any]:
    """Write ``files`` results for ``hosts`` hosts into top/run<N>/<site>/...; return what was written."""
    rng = random.Random(seed)
    plugins = load_plugins()
    profiles = {name: load_profile(name, checks=plugins.checks, broken=plugins.broken) for name in shipped_profiles()}
    catalog = metric_catalog(plugins, profiles)
    bounds = {}
    for prof in profiles.values():
        for req in prof.requirements:
            bounds.setdefault(req.metric, {"min": req.min, "max": req.max, "expect": req.expect})
    rooms_taken: dict[str, int] = {}
    fleet = [Host(rng, i, rooms_taken) for i in range(hosts)]
    per_host = max(1, files // hosts)
    # the fleet ends yesterday, so its rooms are reporting (the default not-reporting age is
    # 3 days) and the view's verdict counts are exercised: each host's newest run is 7 h to 2.7 days
    # old, its earlier ones spaced 180 / per-host days back
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    spacing = 180 / per_host
    written = dupes = bad = 0
    for run_no in range(per_host):
        for i, host in enumerate(fleet):
            if written >= files:
                break
            back = (per_host - 1 - run_no) * spacing + rng.uniform(0, 1.0)
            when = end - timedelta(days=back) + timedelta(hours=rng.uniform(7, 17))
            res = make_run(host, when, run_no, rng, catalog, profiles[host.profile], bounds)
            folder = top / f"run{run_no + 1}" / host.site
            folder.mkdir(parents=True, exist_ok=True)
            path = write_result(res, folder)
            written += 1
            if written % html_every == 0:
                write_atomic(path.with_suffix(".html"), render_report(res, judge(res, profiles[host.profile])))
            if written % 997 == 0:  # a share synced twice: a copy of one run elsewhere
                dup = top / f"run{run_no + 1}" / "sync-conflict"
                dup.mkdir(exist_ok=True)
                shutil.copyfile(path, dup / path.name)
                dupes += 1
            if written % bad_every == 0:
                text = path.read_text(encoding="utf-8")
                (folder / f"broken-{written}.json").write_text(text[: len(text) // 3], encoding="utf-8")
                bad += 1
    return {"results": written, "hosts": hosts, "duplicates": dupes, "bad": bad, "checks": sorted(catalog),
            "profiles": sorted(profiles)}


def run_aggregate(args: list[str], cwd: Path, cpu: list[float] | None = None) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of one `readiness aggregate` subprocess; ``cpu``: its CPU
    seconds (its worker processes' included) appended there."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "readiness.cli", "aggregate", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"aggregate failed ({proc.returncode}): {out}")
    return wall, usage.ru_maxrss / 1024, out.strip().splitlines()[0] if out.strip() else ""


def json_floor(top: Path, loads: Any = json.loads) -> float:
    """Reading and parsing every file in one process, nothing else (``loads``: the parser)."""
    t0 = time.perf_counter()
    for dirpath, _, names in os.walk(top):
        for n in names:
            if n.endswith(".json"):
                try:
                    loads(Path(dirpath, n).read_bytes())
                except ValueError:
                    pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--hosts", type=int, default=2_500)
    ap.add_argument("--keep", metavar="DIR", help="write the fleet here and keep it")
    ap.add_argument("--no-distinct", action="store_true", help="skip the distinct-hosts memory series")
    ap.add_argument("--reuse", action="store_true", help="with --keep: time the fleet already there")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of orjson's parse and aggregate")
    ap.add_argument("--default-only", action="store_true",
                    help="time only the default aggregate (no --all-runs, re-judging or memory series)")
    a = ap.parse_args()
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="readiness-fleet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        top = work / "share"
        if a.keep and top.is_dir() and a.reuse:
            print(f"reusing the fleet in {top}")
        else:
            t0 = time.perf_counter()
            info = generate(top, a.files, a.hosts)
            gen_s = time.perf_counter() - t0
            print(f"generated {info['results']} results for {info['hosts']} hosts in {gen_s:.1f} s "
                  f"({info['duplicates']} duplicate copies, {info['bad']} broken files); "
                  f"checks: {', '.join(info['checks'])}; profiles: {', '.join(info['profiles'])}")
        sizes = [p.stat().st_size for p in top.rglob("*.json")]
        print(f"{len(sizes)} .json files, {sum(sizes) / 1e6:.0f} MB, {sum(sizes) / len(sizes) / 1e3:.0f} kB each on average; "
              f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        floor = json_floor(top)
        floor = min(floor, json_floor(top))
        print(f"floor: json.loads of every file in one process: {floor:.2f} s")
        try:
            import orjson  # the reference (the server extra); skipped when not installed
            fast = min(json_floor(top, orjson.loads), json_floor(top, orjson.loads))
            print(f"floor: orjson.loads of every file in one process: {fast:.2f} s")
        except ImportError:
            fast = None

        out = work / "out"
        out.mkdir(exist_ok=True)
        if fast:
            # the figure: aggregate beside orjson's parse of the same files, in interleaved
            # rounds (load from others on the machine hits both alike), the ratio taken per round
            rounds = []
            for _ in range(a.rounds):
                ref = json_floor(top, orjson.loads)
                cpu: list[float] = []
                wall, _, _ = run_aggregate([str(top), "-o", str(out / "fleet.html"), "--csv", str(out / "fleet.csv")],
                                           work, cpu)
                rounds.append((wall / ref, wall, ref, cpu[0], os.getloadavg()[0]))
            ratio, wall, ref, cpu_s, load = sorted(rounds)[len(rounds) // 2]
            print(f"aggregate {a.files} files beside orjson.loads of them, median of {a.rounds} interleaved rounds: "
                  f"{wall:.2f} s wall against {ref:.2f} s = {ratio:.2f}x (target <= 1.5x, wall time against orjson in one "
                  f"process) {'OK' if ratio <= 1.5 else 'MISSED'}; CPU {cpu_s:.2f} s = {cpu_s / len(sizes) * 1000:.3f} ms "
                  f"per file on {_auto_workers(len(sizes))} process(es) reading; load average {load:.1f} on "
                  f"{os.cpu_count()} CPUs; every round: " + ", ".join(f"{r[0]:.2f}x" for r in rounds))
        runs = {}
        for name, extra in [("default (latest per host)", []), ("--all-runs", ["--all-runs"]),
                            ("--profile meeting-room (re-judge all)", ["--profile", "meeting-room"])]:
            wall, rss, line = run_aggregate([str(top), "-o", str(out / "fleet.html"), "--csv", str(out / "fleet.csv"), *extra], work)
            runs[name] = (wall, rss)
            html_kb = (out / "fleet.html").stat().st_size / 1024
            ratio = f"; {wall / fast:.2f}x orjson's parse (target <= 1.5x)" if fast else ""
            print(f"aggregate {a.files} files, {name}: {wall:.2f} s (target <= {TARGET_S:.0f} s; floor {floor:.2f} s"
                  f"{ratio}), peak RSS {rss:.0f} MB, HTML {html_kb:.0f} kB — {line}")
            if a.default_only:
                break

        if a.default_only:
            return
        print("peak RSS, same hosts, more runs each (should stay flat):")
        per = max(1, a.files // a.hosts)
        for k in sorted({max(1, per // 4), max(1, per // 2), per}):
            paths = [str(top / f"run{i + 1}") for i in range(k)]
            wall, rss, line = run_aggregate([*paths, "-o", str(out / "f.html"), "--csv", str(out / "f.csv")], work)
            print(f"  {k * a.hosts:6d} files, {a.hosts} hosts: {rss:5.0f} MB, {wall:.2f} s")
        if not a.no_distinct:
            print("peak RSS, distinct hosts (grows with hosts):")
            for n in (a.files // 4, a.files // 2, a.files):
                d = work / f"distinct{n}"
                generate(d, n, n, seed=11, bad_every=10**9, html_every=10**9)
                wall, rss, line = run_aggregate([str(d), "-o", str(out / "d.html"), "--csv", str(out / "d.csv")], work)
                print(f"  {n:6d} files, {n} hosts: {rss:5.0f} MB, {wall:.2f} s")
                shutil.rmtree(d)
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
