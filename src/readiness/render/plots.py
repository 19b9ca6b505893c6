"""Line plots of figures over time as SVG text, drawn by matplotlib: a room's history page puts
them inline in its HTML. The SVG holds no script (matplotlib's SVG backend writes none) and
no link, so the pages' strict Content-Security-Policy stays as it is, and it prints as vectors.

matplotlib is imported lazily (it takes ~0.5 s to import, and only the collector's history pages
and ``aggregate --history`` draw plots); it comes with the ``server`` extra, and a missing one
is :class:`PlotsUnavailable` with the line that installs it. Chosen over pygal by measuring
(``bench/history.py``): both draw a 730-point plot in ~40 ms, but pygal always embeds a
script in its SVG (its config, even with ``js=[]``), which a page without script cannot carry.
"""

from __future__ import annotations

import io
import threading
from html import escape
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

# the colours of the series, in order: dark enough on white and in print (and told apart by
# their marker too, for readers who do not tell colours apart)
COLOURS = ("#1f5fa8", "#c05a00", "#2e7d32", "#6a1b9a")
MARKERS = ("o", "s", "^", "D")
STYLES = ("-", (0, (5, 1.5)), (0, (1, 1)), (0, (4, 1, 1, 1)))
MANY = 60  # more points than this: lines without dots (730 dots per series cost 0.1 s in SVG)
BOUND_COLOURS = {"required": "#b00020", "recommended": "#8a5a00"}

_LOCK = threading.Lock()  # matplotlib's text and font caches are not safe across threads


READY = threading.Event()  # set once matplotlib is imported and has drawn (``warm``)


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed here."""


@dataclass(frozen=True)
class Series:
    label: str
    when: Sequence[datetime]
    values: Sequence[float]


@dataclass(frozen=True)
class Bound:
    value: float
    label: str  # e.g. "needs ≥ 1.2 Mbit/s (Microsoft Teams)"
    severity: str  # "required" | "recommended"


def _pyplot() -> Any:
    try:
        import matplotlib  # lazy: heavy, server-side only (the ``server`` extra)
    except ImportError as exc:
        raise PlotsUnavailable("drawing history plots needs matplotlib: pip install 'readiness[server]'") from exc
    import matplotlib.dates as mdates
    import matplotlib.ticker  # noqa: F401 - MaxNLocator, through ``matplotlib.ticker``
    from matplotlib.figure import Figure

    return matplotlib, Figure, mdates


def warm() -> None:
    """Import matplotlib and draw one small plot, so its font cache and text layout are built:
    the first plot after a start otherwise pays ~2 s for them. PlotsUnavailable without matplotlib."""
    from datetime import timezone

    when = [datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)]
    line_svg([Series("warm", when, [1.0, 2.0])], [Bound(1.5, "bound", "required")], "Mbit/s")
    READY.set()


def legend_style(index: int) -> str:
    """CSS for the legend mark of series ``index`` (a short line of its colour and dashes)."""
    dashes = ("solid", "dashed", "dotted", "dashed")[index % len(STYLES)]
    return f"border-top:2px {dashes} {COLOURS[index % len(COLOURS)]}"


def bound_style(severity: str) -> str:
    """CSS for the legend mark of a bound line."""
    return f"border-top:2px dashed {BOUND_COLOURS.get(severity, '#555555')}"


def line_svg(series: Sequence[Series], bounds: Sequence[Bound], unit: str, labelled_by: str = "",
             width_in: float = 8.0, height_in: float = 2.0) -> str:
    """One plot: each series a line (with dots when few), each bound a dashed horizontal line;
    the time axis spans the series. No legend inside: :func:`legend_style` and
    :func:`bound_style` mark the page's legend. The ``<svg>`` element only (no XML prolog),
    with ``role="img"`` (named by the element ``labelled_by``) and no fixed size (it scales to its box)."""
    matplotlib, Figure, mdates = _pyplot()
    rc = {"svg.fonttype": "none",  # text stays text: smaller, selectable, read by screen readers' "find"
          "svg.hashsalt": "readiness",  # the same plot gives the same bytes (ids derive from it)
          "font.size": 8, "axes.spines.top": False, "axes.spines.right": False}
    with _LOCK, matplotlib.rc_context(rc):
        fig = Figure(figsize=(width_in, height_in))
        # fixed margins: a layout engine would draw the figure twice; the legend is the page's
        # (``legend_style``), in HTML beside the plot: text a reader can select and enlarge
        fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.2)
        ax = fig.add_subplot()
        for i, s in enumerate(series):
            dots = len(s.values) <= MANY
            ax.plot(mdates.date2num(list(s.when)), list(s.values), color=COLOURS[i % len(COLOURS)],
                    linestyle=STYLES[i % len(STYLES)], marker=MARKERS[i % len(MARKERS)] if dots else None,
                    markersize=3, linewidth=1.2, label=_mathless(s.label))
        for b in bounds:
            colour = BOUND_COLOURS.get(b.severity, "#555555")
            ax.axhline(b.value, color=colour, linestyle=(0, (3, 3)), linewidth=1, label=_mathless(b.label))
        if unit:
            ax.set_ylabel(_mathless(unit))
        # few ticks: each one is a handful of artists to lay out (most of a plot's time)
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(nbins=3))
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.grid(axis="y", color="#dddddd", linewidth=0.5)
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    svg = text[text.index("<svg"):]
    # sized by the page (CSS), described by the page's caption and table
    head_end = svg.index(">")
    head = svg[:head_end]
    for attr in ("width", "height"):
        at = head.find(f' {attr}="')
        if at >= 0:
            end = head.index('"', at + len(attr) + 3)
            head = head[:at] + head[end + 1:]
    named = f' aria-labelledby="{escape(labelled_by)}"' if labelled_by else ""
    return head + ' role="img"' + named + svg[head_end:]


def _mathless(text: str) -> str:
    """matplotlib reads text between two "$" as a formula: a label is only text."""
    return text.replace("$", r"\$")
