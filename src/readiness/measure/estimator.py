"""The steady-rate estimator shared by the bandwidth backends: pure functions, no I/O.

Input is a list of ``(monotonic seconds, cumulative bytes)`` ticks as a transfer reads its
byte counters (every 50 ms), optionally with ``(seconds, rtt seconds)`` samples of the
latency probes running beside it.

Two facts about those counters shape it:

- They count *in-order* bytes (the kernel's bytes received, or bytes acknowledged on upload).
  A lost packet leaves a hole: the count stalls while later packets pile up out of order,
  then jumps when the retransmission fills it. Over a deep queue a hole lasts a round trip
  or more (300 ms and up), so two counter readings can both be right and still give a rate
  13 % low when the later one falls inside a hole. So "steady" is judged on the raw readings:
  four slices advancing evenly (±5 %), no hole open at either end, and no loss recovery
  (a hole open over 200 ms, or holes open at over 15 % of the readings) inside, where the kernel tells (a tick's third field: out-of-order
  arrivals on download, SACKed data held by the receiver on upload; Linux). During a long
  recovery after the slow-start overshoot the count can advance evenly but 15 % slow for a
  second or more, so evenness alone is not enough. Where
  the time limit comes first, the link's delivery line, which lies on or above every reading
  and touches it whenever no hole is open, is taken from the *upper concave hull* of the
  readings, which bridges the holes.
- While TCP is still filling a deep queue the rate may look steady for a moment and then
  stall when the queue overflows. So slices last one loaded round trip (at least 250 ms),
  and "steady" also needs the probes' round trip to have stopped growing fast (the queue
  has filled). A shallow queue fills within the first second, so ordinary links still stop
  at 1.5 s or soon after.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

SLICE_S = 0.25  # shortest slice; slices grow to the loaded round trip, up to MAX_SLICE_S
MAX_SLICE_S = 1.0
STEADY_SLICES = 4
STEADY_TOLERANCE = 0.05  # each slice within ±5 % of the slices' mean
RAMP_SHARE = 0.85  # the ramp ends at the first slice carrying 85 % of the steady rate
QUEUE_GROWTH_S = 0.010  # RTT growth per slice still counted as a settled queue: 10 ms ...
QUEUE_GROWTH_SHARE = 0.10  # ... or 10 % of the RTT, whichever is larger
MAX_HOLE_S = 0.2  # a hole open longer than this inside a window is a loss recovery, not noise
MAX_HOLE_SHARE = 0.15  # ... and so are holes open at more than this share of its readings

Tick = tuple  # (seconds, cumulative bytes) or (seconds, cumulative bytes, hole open: bool | None)


@dataclass(frozen=True)
class Estimate:
    """bits/s over the steady part; seconds of ramp cut off; whether the end was steady."""

    bps: float
    ramp_s: float
    steady: bool
    window_s: float
    slice_mbps: tuple[float, ...] = ()  # the steady window's slices, for the spread
    loaded_from_s: float = 0.0  # end of the ramp: from here on the link is loaded (latency under load)


def upper_hull(points: list[Tick]) -> list[Tick]:
    """The upper concave hull of time-ordered points (Andrew's monotone chain, upper half)."""
    hull: list[Tick] = []
    for p in points:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2][:2], hull[-1][:2]
            # drop the middle point when it lies on or under the chord from hull[-2] to p
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def hull_at(hull: list[Tick], t: float) -> float:
    """The hull's value at ``t`` (linear between vertices, clamped at the ends)."""
    if t <= hull[0][0]:
        return float(hull[0][1])
    for (x1, y1), (x2, y2) in ((a[:2], b[:2]) for a, b in zip(hull, hull[1:])):
        if t <= x2:
            return y1 + (y2 - y1) * (t - x1) / (x2 - x1) if x2 > x1 else float(y2)
    return float(hull[-1][1])


def slice_length(rtt_s: float | None) -> float:
    """A slice lasts one loaded round trip, within [SLICE_S, MAX_SLICE_S]."""
    return max(SLICE_S, min(MAX_SLICE_S, rtt_s or 0.0))


def recent_rtt(rtts: list[tuple[float, float]] | None, t_from: float, t_to: float) -> float | None:
    """Median probe RTT (seconds) of the samples sent in [t_from, t_to]."""
    vals = [r for t, r in rtts or () if t_from <= t <= t_to]
    return statistics.median(vals) if vals else None


def queue_settled(rtts: list[tuple[float, float]] | None, t_end: float, slice_s: float) -> bool:
    """True when the probes' RTT grew by no more than 10 ms (or 10 %) over the last slice.

    Without probes (none answered) nothing can be said, and the rate rule alone decides.
    """
    if not rtts:
        return True
    now = recent_rtt(rtts, t_end - slice_s, t_end)
    before = recent_rtt(rtts, t_end - 2 * slice_s, t_end - slice_s)
    if now is None or before is None:
        return True
    return now - before <= max(QUEUE_GROWTH_S, QUEUE_GROWTH_SHARE * before)


def clean(tick: Tick) -> bool:
    """True unless the tick says a loss hole was open when it was read (unknown counts as clean)."""
    return len(tick) < 3 or not tick[2]


def _no_long_recovery(ticks: list[Tick], t_from: float, t_to: float) -> bool:
    """No hole open at either end of [t_from, t_to]; inside, none open over MAX_HOLE_S and
    holes open at no more than MAX_HOLE_SHARE of the readings.

    The ends matter for the count. Inside, a loss recovery gated by retransmissions shows as
    a long hole, or as holes that reopen every round trip (seen over a 300 ms queue: 100 ms
    of every 250 for over a second, while the count advanced evenly at 85 %); the odd short
    hole of a shallow queue (one reading, about one loaded round trip of 20-50 ms) costs
    nothing, however often it comes."""
    inside = [tk for tk in ticks if t_from - 1e-9 <= tk[0] <= t_to + 1e-9]
    if not inside or not clean(inside[0]) or not clean(inside[-1]):
        return False
    runs: list[list[Tick]] = []
    for prev, tk in zip([None, *inside], inside):
        if not clean(tk):
            if prev is None or clean(prev):
                runs.append([])
            runs[-1].append(tk)
    if any(run[-1][0] - run[0][0] > MAX_HOLE_S for run in runs):
        return False
    # holes seen at one reading only are the short holes of a shallow queue; runs of two or
    # more readings (100 ms and up) that keep coming back are a recovery
    sustained = sum(len(run) for run in runs if len(run) >= 2)
    return sustained <= MAX_HOLE_SHARE * len(inside)


def _raw_slices(ticks: list[Tick], t_end: float, slice_s: float, count: int) -> list[tuple[float, float, float]]:
    """The last ``count`` slices as (start, end, bytes/s) from the raw counter readings."""
    out = []
    for k in range(count, 0, -1):
        a = _at(ticks, t_end - k * slice_s)
        b = _at(ticks, t_end - (k - 1) * slice_s)
        if b[0] <= a[0]:
            return []
        out.append((a[0], b[0], (b[1] - a[1]) / (b[0] - a[0])))
    return out


def is_steady(ticks: list[Tick], rtts: list[tuple[float, float]] | None = None) -> bool:
    """Steady: the last four slices agree within ±10 % and the queue has stopped filling.

    Judged on the raw counter, not the hull: only a counter that advances evenly for four
    round trips shows that no hole is open at the end, which is what makes the end usable.
    """
    if len(ticks) < 2:
        return False
    t_end = ticks[-1][0]
    slice_s = slice_length(recent_rtt(rtts, t_end - 0.5, t_end))
    if t_end - ticks[0][0] < STEADY_SLICES * slice_s:
        return False
    last = _raw_slices(ticks, t_end, slice_s, STEADY_SLICES)
    if len(last) < STEADY_SLICES or not _no_long_recovery(ticks, last[0][0], t_end):
        return False  # a reading inside a hole, or a loss recovery: short of the link
    rates = [r for _, _, r in last]
    mean = sum(rates) / len(rates)
    if mean <= 0 or max(abs(r - mean) for r in rates) > STEADY_TOLERANCE * mean:
        return False
    return queue_settled(rtts, t_end, slice_s)


def _at(ticks: list[Tick], t: float) -> Tick:
    """The last tick at or before ``t``."""
    best = ticks[0]
    for tk in ticks:
        if tk[0] <= t + 1e-9:
            best = tk
        else:
            break
    return best


def steady_rate(ticks: list[Tick], rtts: list[tuple[float, float]] | None = None) -> Estimate:
    """The rate over the steady part of a transfer.

    Steady end (``is_steady``): the window is the longest run of whole slices, back from the
    end, each within ±10 % of the last four's mean, and not reaching into the ramp; its rate
    is read from the raw counter at both ends, both taken where no hole was open.

    Not steady (the time limit came first): the end may fall inside a hole, so the rate is
    the slope of the upper hull from the end of the ramp to the end, with a tenth (at least
    one loaded round trip) trimmed at each end. The ramp ends at the first 250 ms slice
    carrying 85 % of the last second's hull rate; searching forward keeps a stall and its
    catch-up burst together inside the window.
    """
    if len(ticks) < 2 or ticks[-1][0] <= ticks[0][0]:
        return Estimate(0.0, 0.0, False, 0.0)
    t0 = ticks[0][0]
    t_end = ticks[-1][0]
    slice_s = slice_length(recent_rtt(rtts, t_end - 0.5, t_end))
    steady = is_steady(ticks, rtts)
    ref_span = min(t_end - t0, max(1.0, STEADY_SLICES * slice_s))
    ref_hull = upper_hull([tk for tk in ticks if tk[0] >= t_end - ref_span - 1e-9])
    ref_start = max(t0, t_end - ref_span)
    ref_rate = (hull_at(ref_hull, t_end) - hull_at(ref_hull, ref_start)) / max(1e-9, t_end - ref_start)
    ramp_end = ref_start
    t = t0
    while t + SLICE_S <= ref_start + 1e-9:
        a_t, a_b = _at(ticks, t)[:2]
        b_t, b_b = _at(ticks, t + SLICE_S)[:2]
        if b_t > a_t and (b_b - a_b) / (b_t - a_t) >= RAMP_SHARE * ref_rate:
            ramp_end = a_t
            break
        t += SLICE_S
    if steady:
        last = _raw_slices(ticks, t_end, slice_s, STEADY_SLICES)
        mean = sum(r for _, _, r in last) / len(last)
        k = STEADY_SLICES
        while True:
            more = _raw_slices(ticks, t_end, slice_s, k + 1)
            if (not more or more[0][0] < ramp_end - 1e-9 or abs(more[0][2] - mean) > STEADY_TOLERANCE * mean
                    or not _no_long_recovery(ticks, more[0][0], t_end)):
                break
            k += 1
        window = _raw_slices(ticks, t_end, slice_s, k)
        start_t = window[0][0]
        start_b = _at(ticks, start_t)[1]
        rate = (ticks[-1][1] - start_b) / (t_end - start_t)
        slices = tuple(round(r * 8 / 1e6, 3) for _, _, r in window)
    else:
        start_t = ramp_end
        hull = upper_hull([tk for tk in ticks if tk[0] >= start_t - 1e-9])
        # a hole open at the end lasts about a loaded round trip: trim at least that much
        trim = min(0.3 * (t_end - start_t), max(0.1 * (t_end - start_t), slice_s))
        a, b = start_t + trim, t_end - trim
        rate = (hull_at(hull, b) - hull_at(hull, a)) / (b - a) if b > a else 0.0
        n = max(1, int((t_end - start_t) // slice_s))
        slices = tuple(round(r * 8 / 1e6, 3) for _, _, r in _raw_slices(ticks, t_end, (t_end - start_t) / n, n))
    return Estimate(rate * 8, start_t - t0, steady, t_end - start_t, slices, min(ramp_end, start_t) - t0)


def spread(values: list[float]) -> dict | None:
    """Mean, standard deviation and coefficient of variation (%) of repeated figures."""
    vals = [float(v) for v in values if v is not None]
    if len(vals) < 2:
        return None
    mean = statistics.fmean(vals)
    sd = statistics.stdev(vals)
    return {"n": len(vals), "mean": round(mean, 3), "stdev": round(sd, 3),
            "cv_pct": round(100 * sd / mean, 2) if mean else None}
