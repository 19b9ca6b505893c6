"""Bench: the audio checks' accuracy and the audio part's time, on a private PulseAudio server.

    python bench/audio.py

Starts the same private PulseAudio server the tests use (tests/pulse.py: null sink `spk` as
the speaker, its monitor as the microphone, `module-sine-source` as a known tone) and prints:

1. Level and frequency: the microphone check on the sine source at 100 %, 50 % and 30 % source
   volume, beside the reference measured in the same run by PulseAudio's own `parec` (raw
   float samples, RMS computed here), and beside the frequency the module was loaded with.
   Target: within 1 dB, and within 1 Hz.
2. Loopback: the speakers check through the null sink, 5 runs: heard, peak-to-median ratio,
   round-trip latency (median and spread; beside the output buffer the driver reports), received level beside the level played (a chirp at
   -20 dBFS peak has an RMS of about -23 dBFS). Target: heard every time, spread <= 10 ms.
3. Time of the whole audio part at default settings, each piece in a fresh process as in real
   use: the audio inventory (`python -m readiness.measure.devices --audio`, what `readiness devices`
   runs for audio), and `readiness run --check microphone --check speakers` through the real
   runner (checks in killable child processes). Target: inventory + the two checks' recorded
   durations <= 6 s. Shown beside it: the command's wall time (which adds the CLI's start,
   judging and the HTML report) and `readiness devices` as a whole (cameras in parallel).

4. Speech quality through the room (speakers check, ViSQOL speech mode MOS-LQO): clean, noise at
   three levels, the room at three sample rates, clipping at three sink volumes, each through
   the sound server beside the same degradation applied to the sample in numbers (the reference
   from the same run), and the time the speech part adds. Target: each series falls
   monotonically through the room, and the clean room scores >= 4.5.

Sections 2 and 3 run with ``speech_quality = false`` (section 4 measures that part), so their
targets mean what they meant before the speech score existed.

Exit code 1 if a target is missed.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import numpy as np  # noqa: E402

from pulse import SINE_HZ, PulseServer, noise_into, room_sink, running_pulse  # noqa: E402
from readiness.check import CheckContext  # noqa: E402
from readiness.checks.microphone import MicrophoneCheck  # noqa: E402
from readiness.measure import audio  # noqa: E402
from readiness.checks.speakers import CHIRP_S, SpeakersCheck  # noqa: E402

TIME_TARGET_S = 6.0


def parec_level(server: PulseServer, source: str, seconds: float = 1.0) -> float:
    """RMS (dBFS) of ``source`` recorded by PulseAudio's own client, without PortAudio."""
    rate = 48000
    need = int(rate * (seconds + 0.2)) * 4
    proc = subprocess.Popen(
        ["parec", "--raw", "--format=float32le", "--channels=1", f"--rate={rate}", "-d", source],
        env=server._child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        data = b""
        deadline = time.monotonic() + seconds + 5
        while len(data) < need and time.monotonic() < deadline:
            chunk = proc.stdout.read(need - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        proc.kill()
        proc.wait(5)
        proc.stdout.close()
    x = np.frombuffer(data, dtype="<f4")[int(rate * 0.2):].astype(np.float64)
    return 20 * math.log10(math.sqrt(float(np.mean(x * x))))


def run_check(cls, options=None, **settings):
    ctx = CheckContext(settings=cls.default_settings() | settings, options=options or {}, budget_s=25)
    return cls().run(ctx)


def level_accuracy(server: PulseServer) -> bool:
    print("1. microphone level and frequency, module-sine-source (1000 Hz), default settings (2 s)")
    print(f"   {'source volume':>13} {'parec RMS':>10} {'check RMS':>10} {'error dB':>9} {'check Hz':>9} {'loaded Hz':>9}")
    ok = True
    server.route(source="sine")
    for volume in ("100%", "50%", "30%"):
        server.pactl("set-source-volume", "sine", volume)
        reference = parec_level(server, "sine")
        m = run_check(MicrophoneCheck)
        level = m.metrics["level_dbfs"]
        freq = m.details["dominant_frequency_hz"]
        err = level - reference
        ok &= abs(err) <= 1.0 and freq is not None and abs(freq - SINE_HZ) <= 1.0
        print(f"   {volume:>13} {reference:10.2f} {level:10.2f} {err:+9.2f} {freq:9.1f} {SINE_HZ:9d}")
    server.pactl("set-source-volume", "sine", "100%")
    return ok


def loopback(server: PulseServer) -> bool:
    print("2. speakers loopback through the null sink, 5 runs, default settings (-20 dBFS peak chirp)")
    server.route(source="spk.monitor", sink="spk")
    rows = []
    for _ in range(5):
        t = time.monotonic()
        m = run_check(SpeakersCheck, speech_quality=False)
        rows.append((m.metrics, time.monotonic() - t))
    played = audio.dbfs(audio.rms(audio.chirp(48000, CHIRP_S) * 0.1))  # what -20 dBFS peak means in RMS
    print(f"   {'heard':>5} {'ratio':>8} {'latency ms':>10} {'received dBFS':>13} {'played RMS':>10} {'output latency':>14} {'check s':>7}")
    for metrics, took in rows:
        print(
            f"   {str(metrics.get('heard')):>5} {metrics.get('loopback_peak_ratio', 0):8.0f} "
            f"{metrics.get('loopback_latency_ms', float('nan')):10.1f} {metrics.get('received_level_dbfs', float('nan')):13.2f} "
            f"{played:10.2f} {metrics.get('output_latency_ms', float('nan')):14.1f} {took:7.2f}"
        )
    latencies = [m.get("loopback_latency_ms") for m, _ in rows if m.get("heard")]
    heard_all = len(latencies) == len(rows)
    spread = (max(latencies) - min(latencies)) if latencies else float("nan")
    print(f"   heard {len(latencies)}/{len(rows)}; latency median {statistics.median(latencies) if latencies else float('nan'):.1f} ms, spread {spread:.1f} ms (target <= 10)")
    server.route(source="other.monitor", sink="spk")
    t = time.monotonic()
    deaf = run_check(SpeakersCheck, speech_quality=False)
    print(
        f"   microphone on another sink: heard={deaf.metrics.get('heard')}, ratio {deaf.metrics.get('loopback_peak_ratio')}, "
        f"attempts {len(deaf.details.get('attempts', []))}, {time.monotonic() - t:.2f} s"
    )
    return heard_all and spread <= 10 and deaf.metrics.get("heard") is False


def timing(server: PulseServer) -> bool:
    print(f"3. time of the audio part at default settings, fresh processes (target <= {TIME_TARGET_S:g} s)")
    server.route(source="spk.monitor", sink="spk")
    t = time.monotonic()
    inv = subprocess.run([sys.executable, "-m", "readiness.measure.devices", "--audio"], capture_output=True, timeout=60)
    inventory_s = time.monotonic() - t
    found = json.loads(inv.stdout)
    with tempfile.TemporaryDirectory() as out:
        t = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "readiness.cli", "run", "--check", "microphone", "--check", "speakers",
             "--set", "speakers.speech_quality=false", "--json", "--no-open", "--output-dir", out],
            capture_output=True, text=True, timeout=120,
        )
        run_s = time.monotonic() - t
    result = json.loads(run.stdout)
    checks = result["checks"]
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "readiness.cli", "devices", "--json"], capture_output=True, timeout=60)
    devices_s = time.monotonic() - t
    total = inventory_s + sum(checks[n]["duration_s"] for n in ("microphone", "speakers"))
    print(f"   audio inventory (child process)          {inventory_s:5.2f} s  ({len(found['microphones'])} microphones, {len(found['speakers'])} speakers)")
    for name in ("microphone", "speakers"):
        c = checks[name]
        print(f"   {name:<10} check in the runner's child    {c['duration_s']:5.2f} s  (status {c['status']})")
    print(f"   readiness run -c microphone -c speakers   {run_s:5.2f} s  (wall: CLI start, both checks, judge, report)")
    print(f"   audio part: inventory + both checks       {total:5.2f} s  target <= {TIME_TARGET_S:g} s")
    print(f"   (readiness devices, cameras included: {devices_s:.2f} s)")
    return total <= TIME_TARGET_S and all(checks[n]["status"] == "ok" for n in ("microphone", "speakers"))


def speech_quality(server: PulseServer) -> bool:
    import tempfile as _tmp

    print("4. speech quality (MOS-LQO, ViSQOL speech mode): through the sound server vs the same degradation in numbers")
    try:
        import visqol  # noqa: F401
    except ImportError:
        print("   skipped: visqol-python is not installed (pip install -e '.[speech]')")
        return True
    ref, ref_rate = audio.speech_reference()
    x = audio.resample(ref, ref_rate, 48000)
    x = x / np.abs(x).max()
    rng = np.random.default_rng(7)

    def digital(y) -> float:
        return audio.speech_mos(x, np.concatenate([np.zeros(4800), y, np.zeros(4800)]), 48000)["mos_lqo"]

    def room(**settings) -> tuple[float, float]:
        t = time.monotonic()
        m = run_check(SpeakersCheck, **settings)
        return m.metrics.get("speech_mos", float("nan")), time.monotonic() - t

    series: dict[str, list[float]] = {}
    print(f"   {'case':<28} {'room':>6} {'numbers':>8} {'diff':>6} {'check s':>8}")

    def show(name: str, key: str, got: tuple[float, float], ref_score: float) -> None:
        series.setdefault(key, []).append(got[0])
        print(f"   {name:<28} {got[0]:6.3f} {ref_score:8.3f} {got[0] - ref_score:+6.3f} {got[1]:8.2f}")

    with room_sink(server, "bclean"):
        show("clean", "clean", room(), digital(x * 0.1))
    with _tmp.TemporaryDirectory() as folder, room_sink(server, "bnoise"):
        for rms in (-60, -45, -35):
            with noise_into(server, "bnoise", rms, Path(folder)):
                got = room()
            show(f"noise {rms} dBFS RMS", "noise", got, digital(x * 0.1 + rng.normal(size=x.size) * 10 ** (rms / 20)))
    for rate in (16000, 8000, 4000):
        with room_sink(server, f"b{rate}", rate=rate):
            got = room()
        show(f"room at {rate} Hz", "rate", got, digital(audio.resample(audio.resample(x * 0.1, 48000, rate), rate, 48000)[: x.size]))
    with room_sink(server, "bloud"):
        for volume, factor in (("100%", 1.0), ("250%", 2.5 ** 3), ("400%", 4.0 ** 3)):  # Pulse volume is cubic
            server.pactl("set-sink-volume", "bloud", volume)
            got = room(level_dbfs=-6.0)
            show(f"sink volume {volume} (clips)", "clip", got, digital(np.clip(x * 10 ** (-6 / 20) * factor, -1, 1)))
    falls = all(v[0] > v[1] > v[2] for k, v in series.items() if k != "clean")
    print(f"   each series falls monotonically through the room: {falls}; clean >= 4.5: {series['clean'][0] >= 4.5}")
    return falls and series["clean"][0] >= 4.5


def main() -> int:
    with running_pulse() as server:
        results = [level_accuracy(server), loopback(server), timing(server), speech_quality(server)]
    print("all targets met" if all(results) else "TARGET MISSED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
