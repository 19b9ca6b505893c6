"""Picture analysis for the camera check: pure functions on numpy frames, no capture here.

Sits under ``checks/camera.py``: the check grabs frames, this module turns them into numbers.
The rules follow FFmpeg's filters so the figures mean what a video engineer expects:
- *black* (blackdetect): a pixel is black at <= 10 % of the luma range; a frame is black when
  >= 98 % of its pixels are. *Over-exposed* is the mirror image (>= 90 % luma).
- *frozen* (freezedetect): the mean absolute difference between consecutive frames is
  <= 0.001 of full range (-60 dB); live sensor noise keeps a static scene above that.
- *sharpness*: variance of the Laplacian on a grayscale frame scaled to a fixed size, so the
  number does not depend on the camera's resolution. It depends on the scene.
- *noise*: Immerkaer's fast estimate (1996) of the standard deviation of additive noise.

Numbers are computed per frame by :func:`analyse_frame` and summarised over a capture window
by :class:`WindowStats`. cv2 and numpy are imported here at module level: import this module
only from a check's run path, never at CLI start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Sequence

import cv2
import numpy as np

BLACK_PIXEL = 0.10  # luma share of full range at or below which a pixel is black
BRIGHT_PIXEL = 0.90  # at or above which a pixel is over-exposed
FRAME_SHARE = 0.98  # share of such pixels that makes the whole frame black / over-exposed
FREEZE_DIFF = 0.001  # mean absolute difference (of full range) at or below which frames are equal
ANALYSIS_SIZE = (640, 360)  # (width, height) for sharpness and noise, whatever the camera sends

# Immerkaer's mask: the difference of two Laplacians, blind to the image's own structure to
# first order, so what it sees is mostly noise.
_NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def to_gray(frame: np.ndarray) -> np.ndarray:
    """8-bit luma of a BGR, BGRA or already gray frame."""
    if frame.ndim == 2:
        gray = frame
    elif frame.shape[2] == 4:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    elif frame.shape[2] == 3:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    else:
        gray = frame[:, :, 0]
    if gray.dtype != np.uint8:
        # 16-bit or float sources: scale into 0..255 so one set of thresholds applies.
        top = 65535.0 if gray.dtype == np.uint16 else 1.0
        gray = np.clip(gray.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
    return gray


def brightness(gray: np.ndarray) -> float:
    """Mean luma as a share (0..1) of full range."""
    return float(gray.mean()) / 255.0


def black_share(gray: np.ndarray) -> float:
    """Share (0..1) of pixels that are black by blackdetect's 10 % rule."""
    return float(np.count_nonzero(gray <= BLACK_PIXEL * 255)) / gray.size


def bright_share(gray: np.ndarray) -> float:
    """Share (0..1) of pixels at or above 90 % luma (over-exposed)."""
    return float(np.count_nonzero(gray >= BRIGHT_PIXEL * 255)) / gray.size


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two gray frames as a share (0..1) of full range."""
    if a.shape != b.shape:
        return 1.0  # the picture size changed: certainly not frozen
    return float(cv2.absdiff(a, b).mean()) / 255.0


def fixed_size(gray: np.ndarray, size: tuple[int, int] = ANALYSIS_SIZE) -> np.ndarray:
    """The gray frame scaled (area averaging when shrinking) to ``size`` = (width, height)."""
    if (gray.shape[1], gray.shape[0]) == size:
        return gray
    shrinking = gray.shape[1] > size[0]
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian of the frame at :data:`ANALYSIS_SIZE`; higher is sharper."""
    return float(cv2.Laplacian(fixed_size(gray), cv2.CV_64F).var())


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer's estimate of the noise standard deviation, as a share (0..1) of full range."""
    small = fixed_size(gray).astype(np.float32)
    h, w = small.shape
    if h < 3 or w < 3:
        return 0.0
    response = cv2.filter2D(small, cv2.CV_32F, _NOISE_MASK)[1:-1, 1:-1]
    sigma = math.sqrt(math.pi / 2) * float(np.abs(response).sum()) / (6.0 * (w - 2) * (h - 2))
    return sigma / 255.0


@dataclass(frozen=True)
class FrameFacts:
    """What one frame says about the picture (shares are 0..1 of full range)."""

    brightness: float
    black_share: float
    bright_share: float

    @property
    def black(self) -> bool:
        return self.black_share >= FRAME_SHARE

    @property
    def overexposed(self) -> bool:
        return self.bright_share >= FRAME_SHARE


def analyse_frame(gray: np.ndarray) -> FrameFacts:
    return FrameFacts(brightness(gray), black_share(gray), bright_share(gray))


def delivered_fps(timestamps: Sequence[float]) -> float | None:
    """Frames per second from arrival (or presentation) times in seconds; None under 2 frames.

    Counts intervals over the time they span, so a dropped frame lowers the figure as it lowers
    what a call receives; a camera's claimed rate plays no part.
    """
    if len(timestamps) < 2:
        return None
    span = timestamps[-1] - timestamps[0]
    if span <= 0:
        return None
    return (len(timestamps) - 1) / span


def longest_still_s(timestamps: Sequence[float], diffs: Sequence[float]) -> float:
    """Longest stretch (seconds) over which consecutive frames differed by <= FREEZE_DIFF.

    ``diffs[i]`` is the difference between frame i and frame i+1 (so one fewer than timestamps).
    """
    best = 0.0
    run_start: float | None = None
    for i, d in enumerate(diffs):
        if d <= FREEZE_DIFF:
            if run_start is None:
                run_start = timestamps[i]
            best = max(best, timestamps[i + 1] - run_start)
        else:
            run_start = None
    return best


@dataclass
class WindowStats:
    """Running summary of the frames of one capture window; frames themselves are not kept."""

    every_nth_detail: int = 5  # sharpness and noise on every n-th frame: they cost more
    timestamps: list[float] = field(default_factory=list)
    facts: list[FrameFacts] = field(default_factory=list)
    diffs: list[float] = field(default_factory=list)
    sharpness: list[float] = field(default_factory=list)
    noise: list[float] = field(default_factory=list)
    shape: tuple[int, ...] | None = None
    _previous: np.ndarray | None = None

    def add(self, frame: np.ndarray, timestamp: float) -> None:
        gray = to_gray(frame)
        self.shape = tuple(frame.shape)
        if self._previous is not None:
            self.diffs.append(mean_abs_diff(self._previous, gray))
        if len(self.facts) % self.every_nth_detail == 0:
            self.sharpness.append(sharpness(gray))
            self.noise.append(noise_sigma(gray))
        self.facts.append(analyse_frame(gray))
        self.timestamps.append(timestamp)
        self._previous = gray

    @property
    def count(self) -> int:
        return len(self.facts)

    def summary(self, freeze_s: float = 2.0) -> dict[str, float | bool | None]:
        """Window figures; percentages are 0..100. Empty window: all None.

        ``frozen`` follows freezedetect: unchanged for at least ``freeze_s``, or for two thirds
        of a shorter window, so a short window can still see a frozen picture.
        """
        if not self.facts:
            return {key: None for key in ("fps", "brightness_pct", "black_pct", "overexposed_pct",
                                          "frozen", "still_s", "sharpness", "noise_pct")}
        n = len(self.facts)
        span = self.timestamps[-1] - self.timestamps[0]
        still = longest_still_s(self.timestamps, self.diffs)
        frozen = len(self.diffs) > 0 and still > 0 and still >= min(freeze_s, span * 2 / 3)
        return {
            "fps": delivered_fps(self.timestamps),
            "brightness_pct": 100.0 * sum(f.brightness for f in self.facts) / n,
            "black_pct": 100.0 * sum(f.black for f in self.facts) / n,
            "overexposed_pct": 100.0 * sum(f.overexposed for f in self.facts) / n,
            "frozen": bool(frozen),
            "still_s": still,
            "sharpness": median(self.sharpness) if self.sharpness else None,
            "noise_pct": 100.0 * median(self.noise) if self.noise else None,
        }
