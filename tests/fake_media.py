"""Media files whose truth is known, for a browser's fake camera and microphone.

Chromium plays ``--use-file-for-fake-video-capture=X.y4m`` as its camera (at the file's size
and frame rate, looped) and ``--use-file-for-fake-audio-capture=X.wav`` as its microphone, so
a test knows exactly what the page should measure: the size and rate in the Y4M header, a
picture that moves (or is black), a sine of a known RMS level.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np


def write_y4m(path: Path, width: int, height: int, fps: int, seconds: float = 1.0, kind: str = "moving") -> Path:
    """A 4:2:0 Y4M clip. ``moving``: a bright bar sweeping over a mid-grey textured picture
    (every frame differs, nothing is black or over-exposed); ``black``: video-range black;
    ``still``: the textured picture, unchanged (frozen)."""
    frames = max(2, round(fps * seconds))
    rng = np.random.default_rng(7)
    texture = rng.integers(90, 150, size=(height, width), dtype=np.uint8)
    chroma = np.full((height // 2) * (width // 2), 128, dtype=np.uint8).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            if kind == "black":
                y = np.full((height, width), 16, dtype=np.uint8)
            elif kind == "still":  # the same textured picture in every frame: a frozen camera
                y = texture
            else:
                y = texture.copy()
                x = int(i * width / frames)
                y[:, x:x + max(4, width // 16)] = 200
            fh.write(b"FRAME\n" + y.tobytes() + chroma + chroma)
    return path


def write_wav(path: Path, freq: float = 1000.0, rms_dbfs: float = -20.0, rate: int = 48000, seconds: float = 4.0) -> Path:
    """A 16-bit mono sine whose RMS level is ``rms_dbfs`` (a sine's peak is 3.01 dB above its RMS)."""
    amplitude = math.sqrt(2) * 10 ** (rms_dbfs / 20)
    t = np.arange(int(rate * seconds)) / rate
    x = np.round(amplitude * np.sin(2 * math.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return path
