"""Statistics over a probe stream: RTT, RFC 3550 jitter, loss, burst loss, reorder, MOS.

Sits between ``stun.py`` (which produces one :class:`~readiness.measure.stun.Sample` per probe) and the
network checks (which turn these numbers into metrics). Pure functions, no I/O, so tests feed
them hand-made samples with known answers.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of nothing")
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def rfc3550_jitter(transits: Sequence[float]) -> tuple[float, float]:
    """Interarrival jitter of RFC 3550 §6.4.1 over transit times in arrival order.

    For consecutive packets, D = transit_i − transit_{i−1} and J += (|D| − J)/16. Returns
    (final J, mean of J after its first 16 updates). The estimator is an exponential average
    with a memory of ~16 packets, so its final value alone wanders; the mean of its running
    value over the stream is the same estimator read steadily. Both in the input's unit.
    With RTTs as the transit times (a round trip instead of one way), D is the variation of
    the whole path, which is what a call's jitter buffer has to absorb.
    """
    j = 0.0
    trail: list[float] = []
    for i in range(1, len(transits)):
        d = transits[i] - transits[i - 1]
        j += (abs(d) - j) / 16.0
        trail.append(j)
    if not trail:
        return 0.0, 0.0
    settled = trail[16:] or trail
    return j, sum(settled) / len(settled)


def worst_window_loss(lost: Sequence[bool], window: int) -> float:
    """Largest fraction of lost probes among any ``window`` consecutive probes (sliding)."""
    if not lost:
        return 0.0
    window = max(1, min(window, len(lost)))
    run = sum(lost[:window])
    worst = run
    for i in range(window, len(lost)):
        run += lost[i] - lost[i - window]
        worst = max(worst, run)
    return worst / window


def reorder_fraction(seqs_in_arrival_order: Iterable[int]) -> float:
    """Fraction of arrivals whose sequence number is below one that already arrived."""
    top = -1
    late = total = 0
    for s in seqs_in_arrival_order:
        total += 1
        if s < top:
            late += 1
        else:
            top = s
    return late / total if total else 0.0


def mos(rtt_ms: float, jitter_ms: float, loss_pct: float) -> float:
    """Estimated MOS from a simplified ITU-T G.107 E-model (as Twilio's preflight test does).

    effective latency  EL = rtt + 2·jitter + 10 ms (jitter-buffer and codec allowance)
    rating             R  = 94.768 − EL/40          if EL < 160 ms
                       R  = 94.768 − (EL − 120)/10  otherwise
    loss               R  = R − 2.5·loss_pct, floored at 6.52 (R = 0 once loss_pct > R/2.5)
    MOS                   = 1 + 0.035·R + 7·10⁻⁶·R·(R − 60)·(100 − R)
    R 94.768 (a perfect path) gives MOS 4.41; R ≥ 80 (MOS ≥ 4.0) is "users satisfied" in G.109.
    """
    el = rtt_ms + 2 * jitter_ms + 10
    r = 94.768 - el / 40 if el < 160 else 94.768 - (el - 120) / 10
    if loss_pct > r / 2.5:
        r = 0.0
    else:
        r = max(r - 2.5 * loss_pct, 6.52)
    if r <= 0:
        return 1.0
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def summarize(samples: Sequence, interval_s: float = 0.020, burst_window_s: float = 0.200) -> dict:
    """Numbers for a probe stream (``stun.Sample``-like objects: seq, rtt_s, arrival).

    Times are in ms, fractions in %. ``jitter_ms`` is the RFC 3550 estimator (steady reading,
    see :func:`rfc3550_jitter`); ``jitter_mean_abs_diff_ms`` is the mean |ΔRTT| many speed
    tests call jitter. Keys whose value cannot be computed (no answers) are left out.
    """
    sent = len(samples)
    answered = [s for s in samples if s.rtt_s is not None]
    out: dict = {"sent": sent, "received": len(answered)}
    if not sent:
        return out
    lost = [s.rtt_s is None for s in samples]
    out["loss_pct"] = 100.0 * sum(lost) / sent
    window = max(1, round(burst_window_s / interval_s))
    out["burst_loss_pct"] = 100.0 * worst_window_loss(lost, window)
    if not answered:
        return out
    rtts = [s.rtt_s * 1000 for s in answered]
    out["rtt_min_ms"] = min(rtts)
    out["rtt_median_ms"] = percentile(rtts, 50)
    out["rtt_p95_ms"] = percentile(rtts, 95)
    out["rtt_max_ms"] = max(rtts)
    by_arrival = sorted(answered, key=lambda s: s.arrival if s.arrival is not None else s.seq)
    # transit = arrival − actual send time = the RTT, so the sender's pacing slips do not count
    transits = [s.rtt_s * 1000 for s in by_arrival]
    final, steady = rfc3550_jitter(transits)
    out["jitter_ms"] = steady
    out["jitter_final_ms"] = final
    diffs = [abs(transits[i] - transits[i - 1]) for i in range(1, len(transits))]
    out["jitter_mean_abs_diff_ms"] = sum(diffs) / len(diffs) if diffs else 0.0
    out["reorder_pct"] = 100.0 * reorder_fraction(s.seq for s in by_arrival)
    out["mos"] = mos(out["rtt_median_ms"], out["jitter_ms"], out["loss_pct"])
    return out
