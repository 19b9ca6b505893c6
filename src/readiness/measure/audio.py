"""Audio measurement helpers: signal analysis, test signals and speech quality.

Used by the microphone and speakers checks (``checks/microphone.py``, ``checks/speakers.py``)
and the self-test page. The analysis is pure numpy on float samples in [-1, 1]; nothing here
opens a device, so all of it is testable without sound hardware. Device choice is
``audio_devices``'; streams are ``audio_io``'s.

Imports numpy at module level: import this module only on a check's run path, never from
anything the CLI imports at start.
"""

from __future__ import annotations

import math
from typing import Any

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
