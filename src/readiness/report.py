"""Rendering: verdicts and metrics into one self-contained HTML file. Never decides anything.

Sits at the end of the pipeline. Templates live in ``templates/`` (package
``readiness.templates``) and the report's words in one catalog per language
(``i18n/<lang>.toml``). Autoescaping is on for everything: labels, host and device names
from a result are shown as text, never as markup. The page loads nothing from anywhere:
CSS is inline, charts are inline SVG, a camera snapshot (only with ``--snapshot``) is a
``data:`` image.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .judge import Judgement
from .result import Result
from .session import format_bound, format_value

LANGS = ("en", "sv")
# Detail keys with a view of their own (or none) in the per-check section.
_SPECIAL_DETAILS = {"charts", "diagnosis", "snapshot_jpeg_b64", "traceback", "dropped_metrics"}


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    """The report's words in ``lang``; a key missing there falls back to English."""
    def read(code: str) -> dict[str, str]:
        text = resources.files("readiness.i18n").joinpath(f"{code}.toml").read_text(encoding="utf-8")
        return tomllib.loads(text)

    words = read("en")
    if lang != "en":
        words = words | read(lang)
    return words


def _load_template(name: str) -> str:
    return resources.files("readiness.templates").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,  # everything, whatever the file name: results hold hostile strings too
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["format_value"] = format_value
    env.globals["format_bound"] = format_bound
    env.globals["line_chart"] = line_chart
    env.filters["scalar"] = _is_scalar
    return env


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def line_chart(chart: dict[str, Any], width: int = 640, height: int = 170) -> dict[str, Any] | None:
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
        "y_max_label": format_value(round(y1, 3), None), "y_min_label": format_value(round(y0, 3), None),
        "x_min_label": format_value(round(x0, 3), None), "x_max_label": format_value(round(x1, 3), None),
    }


def render_report(result: Result, judgement: Judgement, lang: str = "en") -> str:
    """The workstation report for one result, as judged by ``judgement``."""
    if lang not in LANGS:
        lang = "en"
    template = environment().get_template("report.html")
    return template.render(
        r=result, j=judgement, lang=lang, t=catalog(lang), special=_SPECIAL_DETAILS,
        failing=[v for v in judgement.items if v.status != "PASS"],
    )
