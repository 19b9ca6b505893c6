"""A private PulseAudio server for the audio tests: real sound paths, no hardware.

The server runs in its own temporary directory (runtime dir, socket, state, HOME), so it
never touches a desktop session's sound server, and it is torn down after the tests. PortAudio
reaches it through ALSA's pulse plugin (Debian: libasound2-plugins): its ``pulse`` and
``default`` devices follow ``PULSE_SERVER``, which the fixture sets for the test process and
every child it starts. Which Pulse source/sink those devices use is the server's default
source/sink, so a test routes audio with :meth:`PulseServer.route`.

Layout loaded at start:

- ``spk``: a null sink, the speaker. Its monitor ``spk.monitor`` hears what is played to it.
- ``other``: a second null sink nobody plays to; ``other.monitor`` is a microphone fed nothing.
- ``sine``: ``module-sine-source`` at 1000 Hz; it emits amplitude 0.5 (-6.02 dBFS peak,
  -9.03 dBFS RMS).
- ``muted``: another sine source, muted: PulseAudio delivers exact zeros, like an OS mute.

Runs as root without ``--system`` (PulseAudio only warns), with ``-n`` (no default.pa) and
``--exit-idle-time=-1`` (never exit on its own).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Iterator

import pytest

from support import need

SINE_HZ = 1000
SINE_RMS_DBFS = -9.03  # 20*log10(0.5/sqrt(2)): module-sine-source's fixed amplitude is 0.5
SINE_PEAK_DBFS = -6.02


class PulseServer:
    """One private PulseAudio daemon; :meth:`stop` always removes it and its files."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="readiness-pulse-")
        self.socket = os.path.join(self.dir, "native")
        self.env = {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": os.path.join(self.dir, "runtime"),
            "PULSE_STATE_PATH": os.path.join(self.dir, "state"),
            "PULSE_COOKIE": os.path.join(self.dir, "cookie"),
        }
        self.proc: subprocess.Popen | None = None
        self.keepers: list[subprocess.Popen] = []

    def _child_env(self) -> dict:
        env = dict(os.environ)
        env.update(self.env)
        env["HOME"] = self.dir  # PulseAudio writes ~/.config/pulse otherwise
        env["XDG_RUNTIME_DIR"] = self.dir
        env["XDG_CONFIG_HOME"] = os.path.join(self.dir, "config")
        return env

    def start(self, timeout_s: float = 10.0) -> None:
        os.makedirs(self.env["PULSE_RUNTIME_PATH"], exist_ok=True)
        loads = [
            f"module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            "module-null-sink sink_name=spk rate=48000",
            "module-null-sink sink_name=other rate=48000",
            f"module-sine-source source_name=sine frequency={SINE_HZ} rate=48000",
            f"module-sine-source source_name=muted frequency={SINE_HZ} rate=48000",
        ]
        cmd = [
            shutil.which("pulseaudio") or "pulseaudio",
            "-n",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--disable-shm=yes",
            "--log-target=stderr",
            "--log-level=error",
            *[f"--load={m}" for m in loads],
        ]
        self.log = open(os.path.join(self.dir, "pulse.log"), "wb")
        self.proc = subprocess.Popen(
            cmd, env=self._child_env(), stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.socket) and self.pactl("info", check=False).returncode == 0:
                self.pactl("set-source-mute", "muted", "1")
                self.route(source="sine", sink="spk")
                self._keep_latency_low()
                self.warm_up()
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("private PulseAudio server did not start")

    def _keep_latency_low(self) -> None:
        # A null sink runs in 2 s blocks unless a client asks for low latency, and ALSA's pulse
        # plugin does not ask: a test tone would reach the monitor in 2 s lumps. A desktop
        # always has such a client; here one plays silence into each null sink at 10 ms.
        for sink in ("spk", "other"):
            self.keepers.append(
                subprocess.Popen(
                    ["pacat", "--playback", "--latency-msec=10", "--raw", "-d", sink, "/dev/zero"],
                    env=self._child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                )
            )

    def warm_up(self, source: str = "spk.monitor", timeout_s: float = 5.0) -> None:
        """Record from ``source`` until its first block arrives.

        The first recording from a new source waits ~1.5 s for its first block (later ones:
        ~10 ms). A desktop's server is long running; wait that out once, here."""
        rec = subprocess.Popen(
            ["parec", "--latency-msec=10", "--raw", "-d", source],
            env=self._child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        timer = threading.Timer(timeout_s, rec.kill)
        timer.start()
        try:
            rec.stdout.read(4096)
        finally:
            timer.cancel()
            rec.kill()
            rec.wait(5)
            rec.stdout.close()

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", *args], env=self._child_env(), capture_output=True, text=True, timeout=10, check=check
        )

    def route(self, source: str | None = None, sink: str | None = None) -> None:
        """Make ``source``/``sink`` what PortAudio's ``pulse``/``default`` devices use."""
        if source:
            self.pactl("set-default-source", source)
        if sink:
            self.pactl("set-default-sink", sink)

    def stop(self) -> None:
        for keeper in self.keepers:
            keeper.kill()
            keeper.wait(5)
        self.keepers = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def room_sink(pulse: PulseServer, name: str, rate: int = 48000) -> Iterator[str]:
    """A fresh null sink as the room (with a low-latency client, as on a desktop)."""
    import subprocess

    index = pulse.pactl("load-module", "module-null-sink", f"sink_name={name}", f"rate={rate}",
                        "format=s16le").stdout.strip()
    keeper = subprocess.Popen(["pacat", "--playback", "--latency-msec=10", "--raw", "-d", name, "/dev/zero"],
                              env=pulse._child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pulse.route(source=f"{name}.monitor", sink=name)
    try:
        yield name
    finally:
        keeper.kill()
        keeper.wait(5)
        pulse.route(source="spk.monitor", sink="spk")
        pulse.pactl("unload-module", index, check=False)


@contextlib.contextmanager
def noise_into(pulse: PulseServer, sink: str, rms_dbfs: float, folder) -> Iterator[None]:
    """White noise at ``rms_dbfs`` played into ``sink`` for as long as the block runs."""
    import subprocess

    import numpy as np

    noise = np.random.default_rng(7).normal(size=48000 * 40) * 10 ** (rms_dbfs / 20)
    path = folder / f"noise{rms_dbfs:g}.raw"
    path.write_bytes(noise.astype("<f4").tobytes())
    p = subprocess.Popen(["pacat", "--playback", "-d", sink, "--raw", "--format=float32le", "--rate=48000",
                          "--channels=1", str(path)], env=pulse._child_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        p.kill()
        p.wait(5)


def pulse_available() -> bool:
    return bool(shutil.which("pulseaudio") and shutil.which("pactl") and shutil.which("parec")) and _alsa_pulse_plugin()


def _alsa_pulse_plugin() -> bool:
    # ALSA's plugin folder is fixed at build time: multiarch on Debian, lib/lib64 elsewhere.
    patterns = ("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so", "/usr/lib*/alsa-lib/libasound_module_pcm_pulse.so")
    return any(glob.glob(p) for p in patterns)


@contextlib.contextmanager
def running_pulse() -> Iterator[PulseServer]:
    """A started server, with PULSE_SERVER set for this process and its children; then gone."""
    server = PulseServer()
    server.start()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="module")
def pulse():
    """A private server for the test module that imports this fixture (see :func:`running_pulse`).

    Module scope, not session: each importing module registers a fixture of its own, so a session
    scope kept one server (and its two low-latency clients, ~10 % of a core) alive per module to
    the end of the whole run, slowing every timing-sensitive test after them."""
    need(pulse_available(), "PulseAudio and ALSA's pulse plugin are not installed (tests/run.sh installs them)")
    with running_pulse() as server:
        yield server


def run_on_a_terminal(code: str, answers: dict[bytes, bytes], timeout_s: float = 60.0) -> str:
    """Run ``code`` in a child whose controlling terminal is a pseudo-terminal; answer prompts."""
    import os
    import pty
    import select
    import sys
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its stdin/stdout and /dev/tty
        os.execv(sys.executable, [sys.executable, "-c", code])
    seen = b""
    deadline = time.monotonic() + timeout_s
    pending = dict(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            for prompt in list(pending):
                if prompt in seen:
                    os.write(fd, pending.pop(prompt))
    finally:
        os.close(fd)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
    return seen.decode("utf-8", "replace")
