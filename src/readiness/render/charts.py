"""Inline SVG charts shared by the run report and the fleet report: a line chart, a histogram
with the requirement's bounds drawn in, and a trend of the share of ready runs.

Each function returns geometry (numbers) and labels already formatted for the language; the
templates draw it. No text from a result reaches the SVG but through the templates' escaping.
"""

from __future__ import annotations

import math
from typing import Any

from readiness.i18n.format import number


def line_chart(chart: dict[str, Any], width: int = 640, height: int = 170, lang: str = "en") -> dict[str, Any] | None:
    """Scale a chart's points ([[x, y], …]) into an SVG viewBox; None if there is nothing to draw.

    Only numbers leave this function, so the SVG the template writes holds no text from the
    result but the (escaped) title and axis labels.
    """
    pts = [(float(p[0]), float(p[1])) for p in chart.get("points", [])
           if isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)]
    if len(pts) < 2:
        return None
    pad_l, pad_r, pad_t, pad_b = 48, 10, 10, 24
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(min(ys), 0.0), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return round(pad_l + (x - x0) / (x1 - x0) * w, 1)

    def sy(y: float) -> float:
        return round(pad_t + h - (y - y0) / (y1 - y0) * h, 1)

    return {
        "width": width, "height": height, "points": " ".join(f"{sx(x)},{sy(y)}" for x, y in pts),
        "x0": pad_l, "x1": width - pad_r, "y_top": pad_t, "y_bottom": pad_t + h,
        "y_max_label": number(round(y1, 3), lang), "y_min_label": number(round(y0, 3), lang),
        "x_min_label": number(round(x0, 3), lang), "x_max_label": number(round(x1, 3), lang),
    }


def _fmt(x: float, lang: str = "en") -> str:
    return number(round(x) if abs(x) >= 100 else x, lang)


def histogram_svg(h: dict[str, Any], width: int = 640, height: int = 180, lang: str = "en") -> dict[str, Any] | None:
    """Geometry of one histogram: bars, the requirement's bounds as lines, axis labels. Numbers only."""
    counts, edges = h["counts"], h["edges"]
    if not counts:
        return None
    pad_l, pad_r, pad_t, pad_b = 40, 12, 14, 26
    w, hgt = width - pad_l - pad_r, height - pad_t - pad_b
    log = h["scale"] == "log"
    f = math.log10 if log else float
    start, end = f(edges[0]), f(edges[-1])
    peak = max(counts) or 1

    def sx(x: float) -> float:
        x = max(edges[0], min(edges[-1], x))
        return round(pad_l + (f(x) - start) / (end - start) * w, 1)

    bars = []
    for i, c in enumerate(counts):
        lo, hi = edges[i], edges[i + 1]
        misses = [(b["kind"] == "min" and hi <= b["value"]) or (b["kind"] == "max" and lo >= b["value"]) for b in h["bounds"]]
        # red: misses every bound drawn; amber: misses the bound of some profiles only
        out = "out" if misses and all(misses) else "some" if any(misses) else ""
        bh = round(c / peak * hgt, 1)
        bars.append({"x": sx(lo) + 0.5, "w": max(0.5, round(sx(hi) - sx(lo) - 1, 1)), "y": round(pad_t + hgt - bh, 1),
                     "h": bh, "count": c, "lo": _fmt(lo, lang), "hi": _fmt(hi, lang), "out": out})
    lines = []
    drawn: dict[tuple[str, float], dict[str, Any]] = {}
    for b in h["bounds"]:  # one line per bound; a required one wins over the same recommended one
        if (b["kind"], b["value"]) not in drawn or b["severity"] == "required":
            drawn[(b["kind"], b["value"])] = b
    for k, b in enumerate(sorted(drawn.values(), key=lambda b: b["value"])):
        x = sx(b["value"])
        right = x > width - pad_r - 50  # label on the left of a line near the right edge
        lines.append({"x": x, "label": ("≥ " if b["kind"] == "min" else "≤ ") + _fmt(b["value"], lang), "severity": b["severity"],
                      "tx": x - 3 if right else x + 3, "anchor": "end" if right else "start",
                      "ty": pad_t + 4 + 11 * (k % 4)})  # stacked, so close bounds stay readable
    if log:
        marks = [10.0 ** k for k in range(math.ceil(start - 1e-9), math.floor(end + 1e-9) + 1)]
    else:
        marks = [edges[0], (edges[0] + edges[-1]) / 2, edges[-1]]
    ticks = [{"x": sx(m), "label": _fmt(m, lang), "anchor": "start" if sx(m) < pad_l + 15 else "end" if sx(m) > width - pad_r - 15 else "middle"}
             for m in marks]
    return {"h": h, "width": width, "height": height, "bars": bars, "lines": lines, "ticks": ticks,
            "x0": pad_l, "x1": width - pad_r, "y_top": pad_t, "y_bottom": pad_t + hgt, "peak": peak}


def trend_svg(tr: dict[str, Any] | None, width: int = 640, height: int = 170, lang: str = "en") -> dict[str, Any] | None:
    """Geometry of the share of ready runs per period, 0–100 %."""
    if not tr:
        return None
    pts = [p for p in tr["points"] if p["ready_pct"] is not None]
    if len(pts) < 2:
        return None
    pad_l, pad_r, pad_t, pad_b = 40, 12, 10, 24
    w, hgt = width - pad_l - pad_r, height - pad_t - pad_b
    n = len(pts)
    coords = [(round(pad_l + i / (n - 1) * w, 1), round(pad_t + hgt - p["ready_pct"] / 100 * hgt, 1)) for i, p in enumerate(pts)]
    return {"width": width, "height": height, "points": " ".join(f"{x},{y}" for x, y in coords),
            "dots": [{"x": x, "y": y, "p": p} for (x, y), p in zip(coords, pts)],
            "x0": pad_l, "x1": width - pad_r, "y_top": pad_t, "y_bottom": pad_t + hgt,
            "first": pts[0]["period"], "last": pts[-1]["period"]}


def sparkline_svg(values: list[float | None], width: int = 90, height: int = 24) -> dict[str, Any] | None:
    """Geometry of a small trend line of shares (0–100 %), one value per day, oldest first; a
    day without a value (nothing counted) breaks the line. None when fewer than two values."""
    if sum(1 for v in values if v is not None) < 2:
        return None
    pad = 2
    n = len(values)
    w, h = width - 2 * pad, height - 2 * pad
    segments: list[list[tuple[float, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((round(pad + i / max(1, n - 1) * w, 1), round(pad + h - v / 100 * h, 1)))
    last = next(v for v in reversed(values) if v is not None)
    return {"width": width, "height": height, "lines": [" ".join(f"{x},{y}" for x, y in s) for s in segments if len(s) > 1],
            "dots": [{"x": s[0][0], "y": s[0][1]} for s in segments if len(s) == 1], "last": last,
            "low": min(v for v in values if v is not None), "high": max(v for v in values if v is not None)}
