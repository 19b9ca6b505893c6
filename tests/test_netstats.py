"""Probe statistics on hand-made streams whose answers are known."""

from __future__ import annotations

import random

import pytest

from readiness.measure import netstats
from readiness.measure.stun import Sample


def stream(rtts_ms, interval=0.020, arrival=None):
    out = []
    for i, r in enumerate(rtts_ms):
        s = Sample(seq=i, sent_at=i * interval, rtt_s=None if r is None else r / 1000)
        out.append(s)
    answered = [s for s in out if s.rtt_s is not None]
    order = arrival or sorted(answered, key=lambda s: s.sent_at + s.rtt_s)
    for k, s in enumerate(order):
        s.arrival = k
    return out


def test_constant_path_has_no_jitter_loss_or_reorder():
    st = netstats.summarize(stream([40.0] * 100))
    assert st["rtt_min_ms"] == st["rtt_median_ms"] == st["rtt_p95_ms"] == pytest.approx(40.0)
    assert st["jitter_ms"] == 0 and st["loss_pct"] == 0 and st["burst_loss_pct"] == 0
    assert st["reorder_pct"] == 0


def test_rfc3550_jitter_of_alternating_delay_converges_to_the_step():
    # transit alternates 40/50 ms: |D| = 10 ms every packet, so J -> 10 ms
    final, steady = netstats.rfc3550_jitter([40.0, 50.0] * 200)
    assert final == pytest.approx(10.0, abs=0.01)
    assert steady == pytest.approx(10.0, abs=0.5)


def test_uniform_jitter_reads_two_thirds_of_its_half_width():
    # uniform ±a around a delay: E|X−Y| = 2a/3 for independent draws
    rng = random.Random(7)
    rtts = [50 + rng.uniform(-9, 9) for _ in range(3000)]
    st = netstats.summarize(stream(rtts, interval=1.0))  # wide spacing: no reordering
    assert st["jitter_ms"] == pytest.approx(6.0, abs=0.4)
    assert st["jitter_mean_abs_diff_ms"] == pytest.approx(6.0, abs=0.3)


def test_loss_and_worst_200ms_burst():
    rtts = [30.0] * 100
    for i in range(40, 45):  # 5 consecutive losses: half of one 200 ms window
        rtts[i] = None
    rtts[80] = None
    st = netstats.summarize(stream(rtts))
    assert st["sent"] == 100 and st["received"] == 94
    assert st["loss_pct"] == pytest.approx(6.0)
    assert st["burst_loss_pct"] == pytest.approx(50.0)


def test_reorder_counts_late_arrivals():
    s = stream([30.0] * 10)
    order = [s[0], s[2], s[1], s[3], s[4], s[6], s[5], s[7], s[8], s[9]]
    for k, x in enumerate(order):
        x.arrival = k
    assert netstats.summarize(s)["reorder_pct"] == pytest.approx(20.0)


def test_percentile_interpolates():
    assert netstats.percentile([1, 2, 3, 4], 50) == 2.5
    assert netstats.percentile([5], 95) == 5


@pytest.mark.parametrize("rtt,jitter,loss,expected", [
    # worked by hand from the formula in netstats.mos
    (0, 0, 0, 4.433),  # EL = 10 ms -> R = 94.518: the best the simplified model gives
    (100, 10, 0, 4.374),  # EL = 130 ms -> R = 91.518
    (200, 20, 0, 4.089),  # EL = 250 ms -> R = 81.768 (the upper branch)
    (100, 10, 10, 3.430),  # 10 % loss costs 25 R points -> R = 66.518
])
def test_mos_follows_the_documented_e_model(rtt, jitter, loss, expected):
    assert netstats.mos(rtt, jitter, loss) == pytest.approx(expected, abs=0.01)


def test_mos_bottoms_out_when_loss_eats_the_rating():
    assert netstats.mos(50, 5, 60) == 1.0


def test_no_answers_leave_rtt_out():
    st = netstats.summarize(stream([None] * 20))
    assert st["loss_pct"] == 100 and "rtt_median_ms" not in st and "mos" not in st
