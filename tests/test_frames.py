"""readiness.measure.frames: the picture rules on frames whose content is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from readiness.measure import frames as F


def gray(value: int, shape=(360, 640)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


def test_to_gray_accepts_bgr_bgra_gray_and_16_bit():
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 1] = 255  # pure green: luma 0.587 * 255
    assert F.to_gray(bgr)[0, 0] == 150
    assert F.to_gray(np.dstack([bgr, np.full((4, 4), 255, np.uint8)]))[0, 0] == 150
    assert F.to_gray(gray(7, (4, 4)))[0, 0] == 7
    assert F.to_gray(np.full((4, 4), 65535, np.uint16))[0, 0] == 255


def test_black_pixel_rule_is_ten_percent_of_full_range():
    # 10 % of 255 is 25.5: 25 is black, 26 is not.
    assert F.black_share(gray(25)) == 1.0
    assert F.black_share(gray(26)) == 0.0
    assert F.bright_share(gray(230)) == 1.0
    assert F.bright_share(gray(229)) == 0.0


def test_black_frame_needs_98_percent_of_pixels():
    img = gray(0)
    img[:7, :] = 200  # 7 of 360 rows bright: 98.06 % black
    assert F.analyse_frame(img).black
    img[:8, :] = 200  # 97.8 % black
    assert not F.analyse_frame(img).black
    assert F.analyse_frame(gray(250)).overexposed
    assert not F.analyse_frame(gray(128)).overexposed


def test_brightness_is_mean_luma_share():
    img = gray(0)
    img[:, :320] = 255
    assert F.brightness(img) == pytest.approx(0.5)


def test_freeze_threshold_separates_identical_frames_from_sensor_noise():
    rng = np.random.default_rng(1)
    base = rng.integers(40, 200, (360, 640), dtype=np.uint8)
    assert F.mean_abs_diff(base, base.copy()) == 0.0
    # Sensor noise of sigma 2 levels gives a mean difference of ~2.3 levels = 0.009 >> 0.001.
    noisy = (base + rng.normal(0, 2, base.shape)).clip(0, 255).astype(np.uint8)
    assert F.mean_abs_diff(base, noisy) > 5 * F.FREEZE_DIFF
    assert F.mean_abs_diff(base, gray(0, (10, 10))) == 1.0  # size change: not frozen


def test_longest_still_run_in_seconds():
    ts = [i * 0.1 for i in range(11)]
    diffs = [0.01, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.01, 0.0, 0.01]
    # frames 1..4 identical: from t=0.1 to t=0.4
    assert F.longest_still_s(ts, diffs) == pytest.approx(0.3)
    assert F.longest_still_s(ts, [0.01] * 10) == 0.0


def test_delivered_fps_counts_intervals_over_their_span():
    assert F.delivered_fps([0.0, 0.5, 1.0]) == pytest.approx(2.0)
    assert F.delivered_fps([i / 12 for i in range(37)]) == pytest.approx(12.0)
    assert F.delivered_fps([1.0]) is None
    assert F.delivered_fps([1.0, 1.0]) is None


def test_sharpness_falls_when_the_picture_is_blurred():
    import cv2

    y, x = np.mgrid[0:360, 0:640]
    checker = ((((x // 8) + (y // 8)) % 2) * 200 + 20).astype(np.uint8)
    blurred = cv2.GaussianBlur(checker, (0, 0), 6)
    assert F.sharpness(checker) > 100 * F.sharpness(blurred)
    # Fixed analysis size: the same picture at twice the resolution scores about the same.
    double = cv2.resize(checker, (1280, 720), interpolation=cv2.INTER_NEAREST)
    assert F.sharpness(double) == pytest.approx(F.sharpness(checker), rel=0.05)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_estimate_recovers_known_gaussian_noise(sigma):
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:360, 0:640]
    smooth = 60 + 100 * (x / 640) + 30 * (y / 360)  # a ramp: no structure the mask sees
    img = (smooth + rng.normal(0, sigma, smooth.shape)).round().clip(0, 255).astype(np.uint8)
    assert F.noise_sigma(img) * 255 == pytest.approx(sigma, rel=0.1)
    assert F.noise_sigma(smooth.astype(np.uint8)) * 255 < 0.5


def test_window_stats_summary():
    stats = F.WindowStats(every_nth_detail=2)
    for i in range(10):
        img = gray(0) if i < 5 else gray(128)
        stats.add(np.dstack([img, img, img]), i * 0.5)
    s = stats.summary(freeze_s=2.0)
    assert stats.count == 10 and stats.shape == (360, 640, 3)
    assert s["fps"] == pytest.approx(2.0)
    assert s["black_pct"] == pytest.approx(50.0)
    assert s["overexposed_pct"] == 0.0
    assert s["brightness_pct"] == pytest.approx(100 * 128 / 255 / 2)
    assert s["still_s"] == pytest.approx(2.0)
    assert s["frozen"] is True
    assert F.WindowStats().summary()["fps"] is None
