"""The steady-rate estimator and the responsiveness arithmetic: pure functions on made-up counters.

Counters are built the way the kernel reports them: cumulative in-order bytes read every
50 ms. A lost packet over a deep queue is a "hole": the count stalls, then jumps when the
retransmission arrives. The link behind them delivers exactly ``RATE`` bytes/s.
"""

from __future__ import annotations

import pytest

from readiness.checks.bandwidth import responsiveness
from readiness.measure import estimator

RATE = 1_250_000  # bytes/s: 10 Mbit/s
TICK = 0.05


def counter(seconds: float, *, ramp_s: float = 0.0, holes: tuple = (), idle: tuple = (),
            flags: bool = False) -> list[tuple]:
    """Ticks of a link at RATE after a linear ramp; ``holes`` = (start, length) where the in-order
    count stalls and catches up; ``idle`` = (start, length) where the link carries nothing."""
    ticks, delivered, t = [], 0.0, 0.0
    while t <= seconds + 1e-9:
        ticks.append((round(t, 6), int(delivered)))
        idle_now = any(a <= t < a + n for a, n in idle)
        rate = 0.0 if idle_now else RATE * (min(1.0, (t + TICK) / ramp_s) if ramp_s else 1.0)
        delivered += rate * TICK
        t += TICK
    out = []
    for tt, b in ticks:
        in_hole = False
        for a, n in holes:
            if a <= tt < a + n:  # in-order count frozen at the hole's start
                b = next(bb for t2, bb in ticks if t2 >= a)
                in_hole = True
        out.append((tt, b, in_hole) if flags else (tt, b))
    return out


def mbps(bps: float) -> float:
    return bps / 1e6


def test_a_clean_link_is_steady_and_exact():
    ticks = counter(1.5)
    assert estimator.is_steady(ticks)
    est = estimator.steady_rate(ticks)
    assert est.steady and mbps(est.bps) == pytest.approx(10.0, rel=0.005)


def test_the_ramp_is_cut_off():
    ticks = counter(3.0, ramp_s=1.0)
    est = estimator.steady_rate(ticks)
    assert mbps(est.bps) == pytest.approx(10.0, rel=0.01)
    assert 0.5 <= est.ramp_s <= 1.1


def test_an_open_hole_at_the_end_is_not_steady():
    """The deep-queue defect: two correct readings with the later one inside a hole read 13 % low."""
    ticks = counter(2.0, holes=((1.75, 0.3),))
    assert not estimator.is_steady(ticks)
    naive = (ticks[-1][1] - ticks[0][1]) / (ticks[-1][0] - ticks[0][0]) * 8
    assert mbps(naive) < 8.9  # what a plain bytes/time gives
    # the time limit came first: the rate is read off the hull, a round trip trimmed at each end
    assert mbps(estimator.steady_rate(ticks).bps) == pytest.approx(10.0, rel=0.05)


def test_a_closed_hole_inside_the_window_does_not_bend_the_rate():
    ticks = counter(3.0, holes=((1.0, 0.3),))
    assert estimator.is_steady(ticks)
    assert mbps(estimator.steady_rate(ticks).bps) == pytest.approx(10.0, rel=0.01)


def test_an_even_but_slow_recovery_is_not_steady_where_the_kernel_shows_the_hole():
    """Loss recovery over a deep queue: the in-order count advances evenly at 70 % for seconds,
    gated by retransmissions, while out-of-order data piles up behind the holes."""
    ticks = [(round(i * TICK, 6), int(0.7 * RATE * i * TICK)) for i in range(41)]
    assert estimator.is_steady(ticks)  # evenness alone is fooled
    flagged = [(t, b, True) for t, b in ticks]
    assert not estimator.is_steady(flagged)
    est = estimator.steady_rate(flagged)
    assert not est.steady


def test_holes_reopening_every_round_trip_are_a_recovery_not_a_steady_state():
    """Seen over a 300 ms queue: the count advanced evenly at 85 % while a hole reopened for
    100 ms of every 250 ms; both ends of the window were clean."""
    ticks = [(round(i * TICK, 6), int(0.85 * RATE * i * TICK), i % 5 in (1, 2)) for i in range(41)]
    assert not estimator.is_steady(ticks)
    # the odd one-reading hole of a shallow queue is no recovery
    ticks = [(round(i * TICK, 6), int(RATE * i * TICK), i == 17) for i in range(41)]
    assert estimator.is_steady(ticks)


def test_a_window_never_starts_or_ends_inside_a_hole():
    ticks = counter(3.0, holes=((1.0, 0.3),), flags=True)
    est = estimator.steady_rate(ticks)
    assert est.steady and mbps(est.bps) == pytest.approx(10.0, rel=0.01)
    assert not estimator.is_steady(counter(2.0, holes=((1.75, 0.3),), flags=True))


def test_steady_waits_for_the_queue_to_stop_filling():
    """Rate steady, but the probes' RTT still climbs 60 ms per slice: TCP is filling the queue."""
    ticks = counter(1.5)
    filling = [(t / 20, 0.010 + 0.24 * t / 20) for t in range(31)]  # 10 ms -> 370 ms over 1.5 s
    assert not estimator.is_steady(ticks, filling)
    settled = [(t / 20, 0.300 + 0.001 * (t % 3)) for t in range(31)]
    assert estimator.is_steady(ticks, settled)


def test_slices_last_one_loaded_round_trip():
    assert estimator.slice_length(None) == estimator.SLICE_S
    assert estimator.slice_length(0.3) == 0.3
    assert estimator.slice_length(5.0) == estimator.MAX_SLICE_S
    # 300 ms round trips: four slices need 1.2 s of even counting, 1.0 s is not enough
    rtts = [(t / 20, 0.3) for t in range(40)]
    assert not estimator.is_steady(counter(1.0), rtts)
    assert estimator.is_steady(counter(1.3), rtts)


def test_upper_hull_bridges_dips():
    pts = [(0, 0), (1, 10), (2, 10), (3, 30), (4, 40)]
    hull = estimator.upper_hull(pts)
    assert (2, 10) not in hull and hull[0] == (0, 0) and hull[-1] == (4, 40)
    assert estimator.hull_at(hull, 2) >= 10


def test_too_few_ticks_give_nothing():
    assert estimator.steady_rate([(0.0, 0)]).bps == 0.0
    assert not estimator.is_steady([(0.0, 0)])


def test_spread_is_the_coefficient_of_variation():
    s = estimator.spread([9.0, 10.0, 11.0])
    assert s["n"] == 3 and s["mean"] == 10.0 and s["cv_pct"] == pytest.approx(10.0)
    assert estimator.spread([5.0]) is None


def test_trimmed_mean_drops_the_worst_five_percent():
    vals = [10.0] * 19 + [1000.0]
    assert responsiveness.trimmed_mean(vals) == 10.0
    assert responsiveness.trimmed_mean([]) is None


def test_rpm_follows_the_drafts_formula_and_bands():
    # TCP-only: Foreign = 60000 / ((tcp + http) / 2), Loaded = 60000 / http_l, RPM = their mean
    r = responsiveness.rpm([100.0] * 10, [], [300.0] * 10, [200.0] * 10)
    assert r["foreign_rpm"] == pytest.approx(300.0) and r["self_rpm"] == pytest.approx(300.0)
    assert r["rpm"] == pytest.approx(300.0) and r["band"] == "fair"
    # with TLS the foreign part averages three times
    r = responsiveness.rpm([30.0], [30.0], [30.0], [30.0])
    assert r["rpm"] == pytest.approx(2000.0) and r["band"] == "good"
    assert [responsiveness.band(x) for x in (299, 300, 999, 1000, 5999, 6000)] == \
        ["poor", "fair", "fair", "good", "good", "excellent"]
    assert "rpm" not in responsiveness.rpm([], [], [], [])
