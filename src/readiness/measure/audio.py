"""Audio measurement helpers: signal analysis, test signals and device choice.

Used by the microphone and speakers checks (``checks/microphone.py``, ``checks/speakers.py``)
and by ``readiness devices`` (``devices.py``). The analysis is pure numpy on float samples in
[-1, 1]; nothing here opens a device, so all of it is testable without sound hardware. The
device part works on the plain dicts PortAudio (``sounddevice.query_devices()``) returns.

Imports numpy at module level: import this module only on a check's run path, never from
anything the CLI imports at start.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterable

import numpy as np

DB_FLOOR = -120.0  # dBFS reported for a signal of exact zeros (JSON has no -inf)
CLIP_LEVEL = 0.999  # |sample| at or above this counts as full scale
CLIP_RUN_48K = 12  # consecutive full-scale samples at 48 kHz that make one clipping run
BAND_HZ = (500.0, 4000.0)  # loopback test band: small laptop speakers are weak below ~300 Hz
HEARD_PEAK_TO_MEDIAN = 15.0  # GCC-PHAT detection: pure noise gives about 5-7 over ~1 s of lags


# --------------------------------------------------------------------------- levels


def dbfs(amplitude: float) -> float:
    """Amplitude (1.0 = full scale) in dBFS, floored at :data:`DB_FLOOR`."""
    if not amplitude > 0:
        return DB_FLOOR
    return max(DB_FLOOR, 20.0 * math.log10(amplitude))


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def window_rms(x: np.ndarray, rate: float, window_s: float = 0.02) -> np.ndarray:
    """RMS of consecutive non-overlapping windows (the last partial window is dropped)."""
    n = max(1, int(rate * window_s))
    x = np.asarray(x, dtype=np.float64)
    count = x.size // n
    if count == 0:
        return np.array([rms(x)])
    frames = x[: count * n].reshape(count, n)
    return np.sqrt(np.mean(frames * frames, axis=1))


def noise_floor_dbfs(x: np.ndarray, rate: float) -> float:
    """Level of the quiet stretches: the 10th percentile of 20 ms window RMS, in dBFS."""
    return dbfs(float(np.percentile(window_rms(x, rate), 10)))


def clipping_runs(x: np.ndarray, rate: float, level: float = CLIP_LEVEL) -> int:
    """Number of runs of consecutive full-scale samples long enough to be clipping.

    A lone full-scale sample happens in clean audio; a run of them (12 at 48 kHz, scaled to
    the rate) is the flat top of a waveform the converter could not follow.
    """
    min_run = max(2, round(CLIP_RUN_48K * rate / 48000.0))
    full = np.abs(np.asarray(x)) >= level
    if not full.any():
        return 0
    edges = np.diff(np.concatenate(([0], full.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return int(np.sum((ends - starts) >= min_run))


def dominant_frequency(x: np.ndarray, rate: float) -> float | None:
    """Frequency (Hz) of the strongest spectral peak, refined between bins; None for silence."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 16 or not np.any(x):
        return None
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size)))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < k < spectrum.size - 1:
        # Parabolic interpolation on log magnitudes: sub-bin accuracy for a steady tone.
        a, b, c = (math.log(max(v, 1e-300)) for v in spectrum[k - 1 : k + 2])
        denom = a - 2 * b + c
        if denom != 0:
            offset = 0.5 * (a - c) / denom
    return float((k + offset) * rate / x.size)


def level_stats(x: np.ndarray, rate: float) -> dict[str, Any]:
    """Everything the microphone check reports about one mono capture."""
    x = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return {
        "level_dbfs": round(dbfs(rms(x)), 2),
        "peak_dbfs": round(dbfs(peak), 2),
        "noise_floor_dbfs": round(noise_floor_dbfs(x, rate), 2),
        "clipping_runs": clipping_runs(x, rate),
        "dc_offset_pct": round(float(np.mean(x)) * 100.0, 3) if x.size else 0.0,
        "digital_silence": bool(x.size and not np.any(x)),
        "dominant_frequency_hz": _round_or_none(dominant_frequency(x, rate), 1),
    }


def level_series(x: np.ndarray, rate: float, step_s: float = 0.1) -> list[float]:
    """RMS level per ``step_s`` in dBFS, for a small chart in the report."""
    return [round(dbfs(float(v)), 1) for v in window_rms(x, rate, step_s)]


def _round_or_none(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# --------------------------------------------------------------------------- test signals


def band_limited_burst(
    rate: float, duration_s: float = 0.3, band: tuple[float, float] = BAND_HZ, seed: int = 7
) -> np.ndarray:
    """Hann-windowed noise limited to ``band`` (FFT mask), peak normalized to 1.0.

    Noise rather than a tone: its autocorrelation has one sharp peak, so the cross-correlation
    finds the delay without ambiguity even in an echoing room.
    """
    n = max(16, int(rate * duration_s))
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    spectrum[(freqs < band[0]) | (freqs > band[1])] = 0.0
    burst = np.fft.irfft(spectrum, n) * np.hanning(n)
    return (burst / np.max(np.abs(burst))).astype(np.float32)


def chirp(rate: float, duration_s: float = 0.3, band: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """Exponential sine sweep across ``band`` with 10 ms fades, peak 1.0."""
    n = max(16, int(rate * duration_s))
    t = np.arange(n) / rate
    f0, f1 = band
    k = math.log(f1 / f0)
    phase = 2 * math.pi * f0 * duration_s / k * (np.exp(t * k / duration_s) - 1.0)
    out = np.sin(phase)
    fade = min(n // 2, int(rate * 0.01))
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, fade))
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    return out.astype(np.float32)


def tone(rate: float, frequency: float, duration_s: float, amplitude: float) -> np.ndarray:
    """A plain sine with 10 ms fades (the quiet "can you hear this" signal)."""
    n = max(1, int(rate * duration_s))
    out = amplitude * np.sin(2 * math.pi * frequency * np.arange(n) / rate)
    fade = min(n // 2, int(rate * 0.01))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    return out.astype(np.float32)


# --------------------------------------------------------------------------- delay


def gcc_phat(
    recording: np.ndarray, reference: np.ndarray, rate: float, band: tuple[float, float] = BAND_HZ
) -> tuple[int, float]:
    """Where ``reference`` starts inside ``recording``: (lag in samples, peak-to-median ratio).

    Generalized cross-correlation with phase transform: every frequency is weighted equally,
    so the peak stays sharp in a reverberant room. Only bins inside ``band`` (where the test
    signal has energy) take part; outside it PHAT would amplify noise. Only lags >= 0 are
    searched (the sound cannot arrive before it was played). The ratio of the correlation
    peak to the median of |correlation| says how clearly the signal was found; pure noise
    gives about 5-7.
    """
    recording = np.asarray(recording, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    span = recording.size - reference.size + 1
    if span < 1 or not np.any(recording) or not np.any(reference):
        return 0, 0.0
    n = 1 << int(math.ceil(math.log2(recording.size + reference.size)))
    cross = np.fft.rfft(recording, n) * np.conj(np.fft.rfft(reference, n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    cross[(freqs < band[0]) | (freqs > band[1])] = 0.0
    magnitude = np.abs(cross)
    cross = np.where(magnitude > 1e-12 * magnitude.max(), cross / np.maximum(magnitude, 1e-300), 0)
    corr = np.abs(np.fft.irfft(cross, n)[:span])
    lag = int(np.argmax(corr))
    median = float(np.median(corr))
    ratio = float(corr[lag] / median) if median > 0 else 0.0
    return lag, ratio


# --------------------------------------------------------------------------- devices

# Host APIs in order of preference per platform. On Windows one physical device appears
# once per host API; WASAPI has full names and the device's own rate (MME truncates names).
_HOSTAPI_PREFERENCE = {
    "win32": ("Windows WASAPI", "Windows DirectSound", "MME", "Windows WDM-KS", "ASIO"),
    "darwin": ("Core Audio",),
    "linux": ("ALSA", "JACK Audio Connection Kit", "OSS"),
}
# On Linux the sound server's devices mix and route; raw hw: devices are often busy.
_SOUND_SERVER_NAMES = ("pipewire", "pulse", "default", "sysdefault")


def platform_key(platform: str | None = None) -> str:
    p = platform or sys.platform
    if p.startswith("win"):
        return "win32"
    if p == "darwin":
        return "darwin"
    return "linux"


def _channels_key(kind: str) -> str:
    if kind not in ("input", "output"):
        raise ValueError("kind must be 'input' or 'output'")
    return "max_input_channels" if kind == "input" else "max_output_channels"


def _rank(device: dict, hostapi_name: str, platform: str) -> tuple[int, int]:
    """Sort key: lower is preferred (host API first, then sound server over raw hw:)."""
    order = _HOSTAPI_PREFERENCE.get(platform, ())
    api_rank = order.index(hostapi_name) if hostapi_name in order else len(order)
    name = str(device.get("name", "")).lower()
    if platform == "linux":
        if name in _SOUND_SERVER_NAMES or name.startswith(("pipewire", "pulse")):
            server_rank = 0
        elif "(hw:" in name or name.startswith("hw:"):
            server_rank = 2
        else:
            server_rank = 1
    else:
        server_rank = 0
    return api_rank, server_rank


def _same_device(a: str, b: str) -> bool:
    """Names of one physical device under two host APIs (MME cuts names at ~31 characters)."""
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 28 and long_.startswith(short)


def usable_devices(
    devices: Iterable[dict], hostapis: list[dict], kind: str, platform: str | None = None
) -> list[dict]:
    """Devices of ``kind`` ("input"/"output"), one entry per physical device, best first.

    Each entry is a JSON-safe dict: index, name, hostapi, channels, default_samplerate.
    On Windows a device listed by several host APIs is kept once, under the preferred API.
    """
    plat = platform_key(platform)
    key = _channels_key(kind)
    candidates = []
    for index, dev in enumerate(devices):
        if int(dev.get(key, 0) or 0) <= 0:
            continue
        api = hostapis[dev["hostapi"]]["name"] if 0 <= dev.get("hostapi", -1) < len(hostapis) else "?"
        idx = int(dev.get("index", index))
        candidates.append((_rank(dev, api, plat), idx, dev, api))
    candidates.sort(key=lambda c: (c[0], c[1]))
    kept: list[dict] = []
    for _, idx, dev, api in candidates:
        name = str(dev.get("name", ""))
        if plat == "win32" and any(_same_device(name, k["name"]) for k in kept):
            continue
        kept.append(
            {
                "index": idx,
                "name": name,
                "hostapi": api,
                "channels": int(dev.get(key, 0)),
                "default_samplerate": float(dev.get("default_samplerate") or 0) or None,
            }
        )
    return kept


def preferred_default(hostapis: list[dict], kind: str, fallback: int = -1, platform: str | None = None) -> int:
    """The system default device as seen through the preferred host API (WASAPI on Windows).

    PortAudio's own default is the default host API's (MME on Windows), whose "Sound Mapper"
    hides which device it is and truncates names.
    """
    key = "default_input_device" if kind == "input" else "default_output_device"
    by_name = {str(h.get("name")): h for h in hostapis}
    for api_name in _HOSTAPI_PREFERENCE.get(platform_key(platform), ()):
        api = by_name.get(api_name)
        if api is not None and int(api.get(key, -1)) >= 0:
            return int(api[key])
    if fallback >= 0:
        return fallback
    for api in hostapis:
        if int(api.get(key, -1)) >= 0:
            return int(api[key])
    return -1


class DeviceNotFound(LookupError):
    """No device of the wanted kind, or none matching the name given; message is plain.
    ``code`` names the fact for the catalogs when there is no device at all."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def select_device(
    devices: list[dict],
    hostapis: list[dict],
    kind: str,
    name_part: str | int | None = None,
    default_index: int | None = None,
    platform: str | None = None,
) -> dict:
    """Pick a device by (part of) its name, by index, or the system default.

    Raises :class:`DeviceNotFound` with a message listing the devices that do exist.
    """
    usable = usable_devices(devices, hostapis, kind, platform)
    word = "microphone" if kind == "input" else "speaker"
    if not usable:
        raise DeviceNotFound(f"no {word} found: the system lists no audio {kind} device", f"no_{word}_found")
    listing = "; ".join(f"{d['name']} ({d['hostapi']})" for d in usable)
    if name_part is None or str(name_part).strip() == "":
        if default_index is not None and default_index >= 0:
            for d in usable:
                if d["index"] == default_index:
                    return d
            # The default may have been dropped as a duplicate: take its preferred twin.
            dev = devices[default_index] if default_index < len(devices) else {}
            for d in usable:
                if _same_device(d["name"], str(dev.get("name", ""))):
                    return d
        return usable[0]
    text = str(name_part).strip()
    if text.isdigit():
        for d in usable:
            if d["index"] == int(text):
                return d
        raise DeviceNotFound(f"no {word} with number {text}; the {word}s are: {listing}")
    matches = [d for d in usable if text.lower() in d["name"].lower()]
    if not matches:
        raise DeviceNotFound(f"no {word} named like {text!r}; the {word}s are: {listing}")
    return matches[0]  # usable is sorted best first


def parse_pactl(text: str) -> list[dict]:
    """Sources or sinks from ``pactl -f json list sources|sinks`` (or ``pactl list short ...``).

    On Linux desktops PortAudio sees only the sound server as one device (``pulse``,
    ``default``); the real microphones and speakers behind it are PulseAudio's (or
    PipeWire's) sources and sinks. Returns dicts with ``name`` and ``description``.
    """
    import json

    text = text.strip()
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError:
            return []
        return [
            {"name": str(r.get("name", "")), "description": str(r.get("description") or r.get("name", ""))}
            for r in rows
            if isinstance(r, dict) and r.get("name")
        ]
    found = []
    for line in text.splitlines():  # short form: index, name, driver, sample spec, state
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1]:
            found.append({"name": parts[1], "description": parts[1]})
    return found


def match_by_name(entries: list[dict], name_part: str) -> dict | None:
    """The first entry whose name or description contains ``name_part`` (case-insensitive)."""
    text = name_part.strip().lower()
    for entry in entries:
        if text in entry["name"].lower() or text in entry.get("description", "").lower():
            return entry
    return None


# --------------------------------------------------------------------------- errors

_PORTAUDIO_MESSAGES = {
    -9999: "the audio driver reported an error",
    -9998: "the device does not support that number of channels",
    -9997: "the device does not support its sample rate in this mode (try another host API)",
    -9996: "the audio device is not available (unplugged, or the sample rate does not match the device's own)",
    -9993: "input and output devices cannot be used together in one stream (different drivers)",
    -9987: "the audio driver timed out",
    -9986: "internal error in the audio driver",
    -9985: (
        "the audio device is unavailable: it is in use by another program, or access is blocked "
        "(Windows: Settings > Privacy > Microphone; macOS: System Settings > Privacy & Security > Microphone)"
    ),
    -9981: "input overflowed (the computer was too busy to collect the audio in time)",
    -9980: "output underflowed (the computer was too busy to feed the speaker in time)",
    -10000: "the audio system is not initialized",
}


def portaudio_message(exc: BaseException) -> str:
    """A plain-language message for a PortAudio (sounddevice) error."""
    code = None
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, int):
            code = arg
    text = str(exc.args[0]) if getattr(exc, "args", None) else str(exc)
    if code is None:
        for known in _PORTAUDIO_MESSAGES:
            if f"[PaErrorCode {known}]" in text:
                code = known
    plain = _PORTAUDIO_MESSAGES.get(code) if code is not None else None
    if plain:
        return f"{plain} (PortAudio {code}: {text})"
    return f"audio error: {text}"


# --------------------------------------------------------------------------- speech quality

SPEECH_RATE = 16000  # ViSQOL's speech mode scores wide-band speech at 16 kHz
SPEECH_BAND_HZ = (300.0, 3400.0)  # where speech has its energy: the band used to find it


def speech_reference() -> tuple[np.ndarray, int]:
    """The shipped speech sample (``readiness/sounds/speech_en.wav``, see ORIGIN.md there)."""
    import io
    import wave
    from importlib import resources

    raw = resources.files("readiness.sounds").joinpath("speech_en.wav").read_bytes()
    with wave.open(io.BytesIO(raw)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0, rate


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy, which the speech-quality model brings along)."""
    from scipy.signal import resample_poly

    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float64)
    g = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(np.asarray(x, dtype=np.float64), int(to_rate) // g, int(from_rate) // g)


class SpeechModelMissing(ImportError):
    """The speech-quality model (visqol-python) is not installed."""


def speech_mos(reference: np.ndarray, recording: np.ndarray, rate: int) -> dict[str, Any]:
    """MOS-LQO of ``recording`` against ``reference`` (both at ``rate``), ViSQOL speech mode.

    ViSQOL (Google's Virtual Speech Quality Objective Listener, v3) through visqol-python,
    a pure-Python port that matches the C++ reference in its conformance tests; the speech
    mode with its polynomial MOS mapping (the lattice model would need a TensorFlow Lite
    runtime). Chosen over ITU-T P.862 PESQ: Apache-2.0 code, where PESQ's reference code
    carries ITU's and the patent holders' licence terms, and a maintained Python package
    (PESQ's wrappers are old C extensions). Installing it builds libsvm from source where
    PyPI has no wheel (a C compiler), which is why it is an optional extra. The recording is found in time by GCC-PHAT over
    the speech band, cut to the reference's length and resampled to 16 kHz; the score is
    1 (bad) to 5 (as good as the reference). Level does not matter: ViSQOL compares
    spectro-temporal patterns.
    """
    try:
        from visqol import VisqolApi
    except ImportError as e:  # optional extra: readiness[speech]
        raise SpeechModelMissing(str(e)) from None
    import logging

    lag, ratio = gcc_phat(recording, reference, rate, band=SPEECH_BAND_HZ)
    segment = np.asarray(recording[lag : lag + reference.size], dtype=np.float64)
    if segment.size < reference.size:
        segment = np.concatenate([segment, np.zeros(reference.size - segment.size)])
    ref16 = resample(reference, rate, SPEECH_RATE)
    deg16 = resample(segment, rate, SPEECH_RATE)
    logging.getLogger("visqol").setLevel(logging.ERROR)  # it warns about the fallback mapping
    api = VisqolApi()
    api.create(mode="speech", use_lattice_model=False)
    result = api.measure_from_arrays(ref16, deg16, SPEECH_RATE)
    return {"mos_lqo": round(float(result.moslqo), 3), "found_at_s": round(lag / rate, 3),
            "peak_ratio": round(ratio, 1),
            "model": "ViSQOL v3 speech mode (visqol-python), polynomial MOS mapping"}
