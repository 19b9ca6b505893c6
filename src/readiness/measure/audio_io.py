"""Audio device I/O for the microphone and speakers checks: open, record, play, loop back.

Sits between the checks (``checks/microphone.py``, ``checks/speakers.py``) and PortAudio
(through ``sounddevice``). Every wait here has a deadline, so a device that stops delivering
(unplugged mid-test) becomes a plain :class:`~readiness.check.CheckError`; a driver call that
hangs inside PortAudio itself is handled one level up: the checks are ``isolated`` and the
runner kills their child process at the budget.

Input and output always use *separate* streams, each at its device's own sample rate: a duplex
stream across host APIs fails (PortAudio -9993) and WASAPI rejects a foreign rate (-9996).

Imports sounddevice and numpy at module level: only the checks' run path imports this module.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from readiness.atomic import write_atomic
from readiness.check import CheckError
from readiness.measure import audio_devices

OUTPUT_LATENCY = 0.1  # seconds asked of the output: shorter buffers underrun through ALSA's pulse plugin under load, chopping the test signal
LEAD_IN_S = 0.15  # silence before a test signal: output streams drop their first buffers on some hosts


def load_sounddevice() -> Any:
    """Import sounddevice, turning a missing PortAudio library into a plain message."""
    try:
        import sounddevice  # noqa: PLC0415 - heavy, only on the run path
    except OSError as exc:  # raised when libportaudio is missing
        raise CheckError(
            f"the PortAudio audio library is not installed ({exc}); on Debian/Ubuntu: "
            "apt install libportaudio2", code="no_portaudio", error=str(exc)
        ) from None
    except ImportError as exc:
        raise CheckError(f"the Python package sounddevice is not installed ({exc})") from None
    return sounddevice


def device_rate(device: dict) -> int:
    return int(device.get("default_samplerate") or 48000)


@dataclass
class Capture:
    """Samples from an input stream, with when each callback block was delivered."""

    rate: int
    blocks: list = field(default_factory=list)
    times: list = field(default_factory=list)  # perf_counter at each callback
    overflows: int = 0
    frames: int = 0

    def samples(self) -> np.ndarray:
        if not self.blocks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self.blocks)


def _input_stream(sd: Any, device: dict, capture: Capture, stop_after: int | None, done: threading.Event) -> Any:
    def callback(indata, frames, time_info, status):  # runs in PortAudio's thread
        now = time.perf_counter()
        if status.input_overflow:
            capture.overflows += 1
        capture.blocks.append(indata[:, 0].copy())
        capture.times.append(now)
        capture.frames += frames
        if stop_after is not None and capture.frames >= stop_after:
            done.set()

    with audio_devices.routed(device, "input"):
        return sd.InputStream(
            device=device["index"],
            samplerate=capture.rate,
            channels=1,
            dtype="float32",
            blocksize=0,  # host-chosen: a fixed 10 ms block stalls ALSA's pulse plugin for seconds
            callback=callback,
        )


# PortAudio's answers when a one-way stream's device is gone by the time it opens (unplugged,
# its sound server stopped): -9993 "Illegal combination of I/O devices" is what ALSA's pulse
# plugin gives then, although no second device is involved.
_GONE_AT_OPEN = {-9999, -9996, -9993, -9986}


@dataclass(frozen=True)
class _Device:
    """A microphone or speaker as its failures name it: in the log's English (``str``), and as a
    finding whose words the report takes from the reader's catalog (``finding.<kind>_…``)."""

    kind: str  # "microphone" or "speaker"
    name: str
    CODES = {"microphone": ("microphone_gone", "microphone_open_failed", "microphone_stopped"),
             "speaker": ("speaker_gone", "speaker_open_failed", "speaker_stopped")}

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}"

    def error(self, message: str, which: int, **facts: Any) -> CheckError:
        return CheckError(message, code=self.CODES[self.kind][which], device=self.name, **facts)


def _open(sd: Any, factory: Any, what: _Device) -> Any:
    try:
        return factory()
    except sd.PortAudioError as exc:
        code = next((a for a in getattr(exc, "args", ()) if isinstance(a, int)), None)
        if code is None:
            code = next((k for k in _GONE_AT_OPEN if f"[PaErrorCode {k}]" in str(exc)), None)
        if code in _GONE_AT_OPEN:
            raise what.error(f"the {what} is not available: it was unplugged, switched off or its sound "
                             f"server stopped (PortAudio error {code})", 0, portaudio_error=code) from None
        raise what.error(f"could not open the {what}: {audio_devices.portaudio_message(exc)}", 1,
                         error=audio_devices.portaudio_message(exc)) from None
    except ValueError as exc:  # sounddevice's own argument checks (e.g. unsupported settings)
        raise what.error(f"could not open the {what}: {exc}", 1, error=str(exc)) from None


STALL_S = 2.5  # an open stream without callbacks this long has lost its device (some sources deliver in 2 s lumps)


def _wait(
    event: threading.Event, timeout: float, what: _Device, stream: Any = None, tick: Any = None, stamps: list | None = None
) -> None:
    """Wait for ``event``; raise a plain CheckError when the device stops or vanishes.

    Polls so that a stream PortAudio gave up on (device unplugged, server gone) or one whose
    callbacks stopped coming is noticed within about a second, not only at ``timeout``.
    """
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    while not event.wait(0.1):
        if tick is not None:
            tick()
        stalled = False
        if stamps is not None:  # input: blocks must keep coming (the first may take longer)
            last = stamps[-1] if stamps else started
            stalled = time.perf_counter() - last > (STALL_S if stamps else STALL_S + 2.0)
        inactive = stream is not None and not stream.active and not event.is_set()
        if time.monotonic() > deadline or stalled or inactive:
            raise what.error(f"the {what} stopped delivering audio (unplugged, switched off or taken by another program?)", 2)


def record(sd: Any, device: dict, seconds: float, on_block: Any = None) -> Capture:
    """Record ``seconds`` of mono audio from ``device`` at its own rate."""
    capture = Capture(rate=device_rate(device))
    done = threading.Event()
    wanted = int(capture.rate * seconds)
    what = _Device("microphone", device["name"])
    stream = _open(sd, lambda: _input_stream(sd, device, capture, wanted, done), what)
    with stream:
        tick = (lambda: on_block(capture)) if on_block is not None else None  # interactive meter
        _wait(done, seconds + 3.0, what, stream, tick, capture.times)
    samples = capture.samples()[:wanted]
    capture.blocks = [samples]
    return capture


@dataclass
class Playback:
    opened: bool = False
    underruns: int = 0
    latency_s: float | None = None
    start_time: float | None = None  # perf_counter when the block holding the mark was handed over
    stamps: list = field(default_factory=list)  # (perf_counter, position of the block's first sample)


def _output_stream(
    sd: Any, device: dict, rate: int, signal: np.ndarray, result: Playback, done: threading.Event, mark: int = 0
) -> Any:
    """A callback output stream playing ``signal``; stamps the block holding sample ``mark``."""
    position = [0]

    def callback(outdata, frames, time_info, status):
        now = time.perf_counter()
        if status.output_underflow:
            result.underruns += 1
        start = position[0]
        chunk = signal[start : start + frames]
        outdata.fill(0)
        outdata[: chunk.size, 0] = chunk
        if outdata.shape[1] > 1:
            outdata[: chunk.size, 1:] = chunk[:, None]
        result.stamps.append((now, start))
        if start <= mark < start + frames and result.start_time is None:
            result.start_time = now
        position[0] = start + frames
        if position[0] >= signal.size:
            done.set()

    channels = max(1, min(2, int(device.get("channels") or 1)))
    with audio_devices.routed(device, "output"):
        return sd.OutputStream(
            device=device["index"],
            samplerate=rate,
            channels=channels,
            dtype="float32",
            blocksize=0,
            latency=OUTPUT_LATENCY,
            callback=callback,
        )


def play(sd: Any, device: dict, signal: np.ndarray, rate: int) -> Playback:
    """Play ``signal`` (mono float32 at ``rate``) on ``device`` after a short silent lead-in."""
    result = Playback()
    done = threading.Event()
    padded = _with_silence(signal, rate)
    mark = int(rate * LEAD_IN_S)
    what = _Device("speaker", device["name"])
    stream = _open(sd, lambda: _output_stream(sd, device, rate, padded, result, done, mark), what)
    result.opened = True
    result.latency_s = float(stream.latency)
    _run_output(stream, done, padded.size / rate, what)
    return result


def _run_output(stream: Any, done: threading.Event, seconds: float, what: _Device) -> None:
    """Start, wait until every sample was handed over and has had time to sound, then abort.

    Aborting rather than stopping: a stop drains the buffers, which through some drivers
    (ALSA's pulse plugin) takes seconds longer than the audio itself.
    """
    stream.start()
    try:
        _wait(done, seconds + 3.0, what, stream)
        time.sleep(min(0.5, float(stream.latency)) + 0.02)
    finally:
        stream.abort()
        stream.close()


def _with_silence(signal: np.ndarray, rate: int, tail_s: float = 0.05) -> np.ndarray:
    lead = np.zeros(int(rate * LEAD_IN_S), dtype=np.float32)
    tail = np.zeros(int(rate * tail_s), dtype=np.float32)
    return np.concatenate([lead, np.asarray(signal, dtype=np.float32), tail])


@dataclass
class Loopback:
    recording: np.ndarray
    input_rate: int
    playback: Playback
    mark_index: float | None  # recording position captured when the signal was handed over
    input_latency_s: float | None


def loopback(
    sd: Any, out_dev: dict, in_dev: dict, signal_out: np.ndarray, out_rate: int, listen_s: float = 0.35
) -> Loopback:
    """Play ``signal_out`` while recording from ``in_dev``; listen ``listen_s`` after its end.

    The two streams share no sample clock, so both are tied to ``perf_counter``. Each stream's
    callbacks are stamped with the position they hand over (output) or have delivered (input);
    a callback can only ever run late, so the lower envelope of ``stamp - position / rate``
    over the steady part of each stream gives its timing free of scheduling delays.
    ``mark_index`` is the recording position delivered when the signal's first sample was
    handed to the output; the signal's lag in the recording minus ``mark_index`` is the round
    trip "handed to the speaker -> delivered by the microphone".
    """
    capture = Capture(rate=device_rate(in_dev))
    in_done = threading.Event()
    padded = _with_silence(signal_out, out_rate)
    total = int(capture.rate * (padded.size / out_rate + listen_s))
    in_what, out_what = _Device("microphone", in_dev["name"]), _Device("speaker", out_dev["name"])
    in_stream = _open(sd, lambda: _input_stream(sd, in_dev, capture, total, in_done), in_what)
    playback = Playback()
    out_done = threading.Event()
    mark = int(out_rate * LEAD_IN_S)
    with in_stream:
        out_stream = _open(
            sd, lambda: _output_stream(sd, out_dev, out_rate, padded, playback, out_done, mark), out_what
        )
        playback.opened = True
        playback.latency_s = float(out_stream.latency)
        _run_output(out_stream, out_done, padded.size / out_rate, out_what)
        _wait(in_done, total / capture.rate + 3.0, in_what, in_stream, None, capture.times)
        input_latency = float(in_stream.latency)
    mark_index = None
    # Steady parts: the output after its buffer was first filled, the input after the lead-in
    # (streams often deliver a backlog in a burst when they start).
    out_steady = [(t, q) for t, q in playback.stamps if q >= (playback.latency_s or 0) * out_rate]
    in_steady, position = [], 0
    for block, stamp in zip(capture.blocks, capture.times):
        position += block.size
        if position >= LEAD_IN_S * capture.rate:
            in_steady.append((stamp, position))
    if playback.start_time is not None and out_steady and in_steady:
        out_offset = min(t - q / out_rate for t, q in out_steady)
        in_offset = min(t - p / capture.rate for t, p in in_steady)
        handed = out_offset + mark / out_rate
        mark_index = (handed - in_offset) * capture.rate
    return Loopback(capture.samples()[:total], capture.rate, playback, mark_index, input_latency)


class Terminal:
    """The person's terminal for ``--interactive``, opened directly (``/dev/tty``, ``CON``).

    The check runs in a child process whose stdin is not the terminal, so the terminal is
    opened by name. Where there is none (a service, CI, a pipe) :meth:`open` returns None
    and the check carries on without asking.
    """

    def __init__(self, read: Any, write: Any) -> None:
        self._read, self._write = read, write

    @classmethod
    def open(cls) -> "Terminal | None":
        import os
        import sys

        try:
            if sys.platform.startswith("win"):
                return cls(open("CONIN$", "r"), open("CONOUT$", "w"))  # noqa: SIM115
            # Two handles: a terminal is not seekable, so Python refuses one "r+" text handle.
            read = os.fdopen(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY), "r")
            write = os.fdopen(os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY), "w")
            if not read.isatty():
                read.close()
                write.close()
                return None
            return cls(read, write)
        except (OSError, ValueError):  # no terminal (service, CI, pipe); io.UnsupportedOperation is both
            return None

    def say(self, text: str, end: str = "\n") -> None:
        self._write.write(text + end)
        self._write.flush()

    def ask(self, question: str, timeout_s: float = 30.0) -> str | None:
        """One line from the person, or None when nothing comes within ``timeout_s``."""
        self.say(question, end=" ")
        answer: list[str] = []
        reader = threading.Thread(target=lambda: answer.append(self._read.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        return answer[0].strip() if answer else None

    def close(self) -> None:
        for handle in {id(self._read): self._read, id(self._write): self._write}.values():
            try:
                handle.close()
            except OSError:
                pass


def meter(level_dbfs: float, width: int = 30) -> str:
    """A text level bar from -60 to 0 dBFS, with the -22 dBFS speech target marked."""
    filled = int(round(max(0.0, min(1.0, (level_dbfs + 60) / 60)) * width))
    target = int(round((60 - 22) / 60 * width))
    bar = ["#" if i < filled else "-" for i in range(width)]
    bar[min(target, width - 1)] = "|"
    return f"[{''.join(bar)}] {level_dbfs:6.1f} dBFS"


def write_wav(path: str, samples: np.ndarray, rate: int) -> None:
    """16-bit mono WAV (only with --keep-audio), through the one atomic writer."""
    import io
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(pcm.tobytes())
    write_atomic(path, buf.getvalue())
