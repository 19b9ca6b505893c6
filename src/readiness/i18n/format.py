"""Words and numbers for people: the language catalogs, and numbers, units and dates formatted
for the language (through Babel, so Swedish gets its decimal comma and grouping).

Sits at the bottom of the render package; the run report, the fleet report and the terminal
summary all take their words from here. The list of languages is the list of catalog files
in ``readiness/i18n``: adding a language is adding one catalog (plus the profiles' texts).
A key missing from a catalog falls back to English. A check plugin may bring its own words
(``Check.catalog``); the plugin loader hands them to :func:`add_words`, and they are merged
beneath the shipped catalogs, so a plugin adds words and never rewords the core's.
"""

from __future__ import annotations

import math
import re
import sys
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from readiness.i18n import languages


def _read(code: str) -> dict[str, Any]:
    text = resources.files("readiness.i18n").joinpath(f"{code}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


_PLUGIN_WORDS: dict[str, dict[str, Any]] = {}  # plugin name -> {language: words}, as add_words got them


def add_words(owner: str, words: dict[str, Any]) -> None:
    """Take a plugin's own words, ``{"en": {...}, "sv": {...}}``, into every catalog (beneath the shipped ones)."""
    if _PLUGIN_WORDS.get(owner) != words:
        _PLUGIN_WORDS[owner] = words
        catalog.cache_clear()


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, Any]:
    """The words in ``lang`` (tables such as ``finding`` and ``unit`` nested); English fills gaps."""
    words = _read("en")
    if lang != "en" and lang in languages():
        words = _merge(words, _read(lang))
    for owner in sorted(_PLUGIN_WORDS):
        own = _PLUGIN_WORDS[owner]
        theirs = own.get("en", {})
        if lang != "en":
            theirs = _merge(theirs, own.get(lang, {}))
        words = _merge(theirs, words)  # the shipped words win where both say something
    return words


def word(lang: str, key: str, **args: Any) -> str:
    """One text by dotted key (``"finding.camera_dark"``), filled with ``args`` (numbers
    formatted for the language). An unknown key is shown as the key: visible, never a crash."""
    node: Any = catalog(lang)
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, str):
        return key
    if not args:
        return node
    filled = {k: (number(v, lang) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
              for k, v in args.items()}
    try:
        return node.format(**filled)
    except (KeyError, IndexError, ValueError):
        return node


class Worded(Exception):
    """An error a person reads, held as a catalog key and its arguments: ``text(lang)`` is the
    line in the reader's language, ``str()`` the English one (logs, other exceptions' details).
    An argument that is itself ``Worded`` (a word naming the value) is said in the same language."""

    def __init__(self, key: str, **fill: Any) -> None:
        super().__init__(key)
        self.key, self.fill = key, fill

    def text(self, lang: str) -> str:
        return word(lang, self.key, **{k: v.text(lang) if isinstance(v, Worded) else v for k, v in self.fill.items()})

    def __str__(self) -> str:
        return self.text("en")


class Refused(Worded, ValueError):
    """A value a setting cannot take, as a catalog key and its arguments; a ValueError, so the
    callers that catch those go on doing so (``str()`` is the English line)."""


def _locale(lang: str) -> Any:
    """Babel's Locale of ``lang`` (English for a language without a catalog), made once:
    babel reads its locale data again for every call given the name (a fleet report makes
    thousands)."""
    return _babel_locale(lang if lang in languages() else "en")


@lru_cache(maxsize=None)
def _babel_locale(name: str) -> Any:
    from babel import Locale  # babel only where words are formatted

    return Locale.parse(name)


def number(value: float, lang: str = "en") -> str:
    """A measured number, as a person writes it: 3 significant digits below 10, one decimal
    above (trailing zeros dropped), digits grouped; "1,2" in Swedish, "1.2" in English."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    if value == 0 or type(value) not in (int, float):  # 0 and -0.0 are one key: not remembered
        return _number(value, lang)
    return _remembered_number(type(value), value, lang)


@lru_cache(maxsize=4096)
def _remembered_number(kind: type, value: float, lang: str) -> str:
    """``_number`` remembered: a fleet report writes the same few numbers thousands of times
    (``kind``: 1 and 1.0 are written apart)."""
    return _number(value, lang)


def _number(value: float, lang: str) -> str:
    from babel.numbers import format_decimal

    if isinstance(value, int):
        decimals = 0
    elif value == 0:
        decimals = 0
    elif abs(value) < 10:
        decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    else:
        decimals = 1
    pattern = "#,##0" + ("." + "#" * decimals if decimals else "")
    return format_decimal(round(value, decimals), format=pattern, locale=_locale(lang))


def unit_text(unit: str | None, lang: str = "en") -> str:
    """A metric's unit in words a person reads (``Mbps`` -> ``Mbit/s``)."""
    if not unit:
        return ""
    units = catalog(lang).get("unit", {})
    return units.get(unit, unit) if isinstance(units, dict) else unit


def yes_no(value: bool, lang: str = "en") -> str:
    return word(lang, "yes" if value else "no")


def format_value(value: Any, unit: str | None, lang: str = "en") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return yes_no(value, lang)
    text = number(value, lang) if isinstance(value, (int, float)) else str(value)
    u = unit_text(unit, lang)
    if not u:
        return text
    return f"{text} {u}" if u != "%" or lang != "en" else f"{text} %"


def format_bound(req: Any, unit: str | None, lang: str = "en") -> str:
    """What a requirement needs: "≥ 1,2 Mbit/s", "≤ 150 ms", or "yes" for a yes/no requirement
    (its label is phrased positively, see ``measured_text``)."""
    if req.expect is not None:
        return yes_no(True, lang)
    if getattr(req, "min_version", None) is not None:  # a version: shown as written, never as a number
        return f"≥ {req.min_version}"
    parts = []
    if req.min is not None:
        parts.append(f"≥ {format_value(req.min, unit, lang)}")
    if req.max is not None:
        parts.append(f"≤ {format_value(req.max, unit, lang)}")
    return ", ".join(parts)


def measured_text(req: Any, value: Any, unit: str | None, lang: str = "en") -> str:
    """The measured value as read against the requirement's label. A yes/no requirement's label
    is the good state ("Microphone is not silent"), so it reads "no" when that state is not met,
    whatever the metric's own polarity (``silent: true``)."""
    if req.expect is not None and isinstance(value, bool):
        return yes_no(value is req.expect, lang)
    return format_value(value, unit, lang)


def when(text: str | datetime, lang: str = "en") -> str:
    """A UTC time for the language: date (medium) and time (short) by Babel: "27 nov. 2026 09:00 UTC"."""
    from babel.dates import format_date, format_time

    if isinstance(text, datetime):
        moment = text
    else:
        try:
            moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            return str(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    loc = _locale(lang)
    return f"{format_date(moment, 'medium', locale=loc)} {format_time(moment, 'short', tzinfo=timezone.utc, locale=loc)} UTC"


def age(seconds: float, lang: str = "en") -> str:
    """A duration a person reads at a glance: "3 days", "5 hours", "12 minutes"."""
    from datetime import timedelta

    from babel.dates import format_timedelta

    return format_timedelta(timedelta(seconds=max(0.0, seconds)), threshold=1.5, locale=_locale(lang))


def span(seconds: float, lang: str = "en") -> str:
    """A configured span said exactly ("3 days", "36 hours"): the largest unit that divides it
    (``age`` rounds, which suits a measured age but not a setting)."""
    from babel.units import format_unit

    for unit, size in (("duration-week", 604800), ("duration-day", 86400), ("duration-hour", 3600),
                       ("duration-minute", 60)):
        if seconds >= size and seconds % size == 0:
            return format_unit(int(seconds // size), unit, length="long", locale=_locale(lang))
    return format_unit(round(seconds), "duration-second", length="long", locale=_locale(lang))


def detail_key(key: Any, lang: str = "en") -> str:
    """A key of a check's details or the host facts, in words (catalog ``detail.<key>``); a key
    without words is shown as it is (a plugin's own, a service name)."""
    text = word(lang, f"detail.{key}") if isinstance(key, str) and key and "." not in key else None
    return text if text is not None and text != f"detail.{key}" else str(key)


_VALUE_PARTS = re.compile(r"^(?P<head>[^()]+?) \((?P<inner>[^()]+)\)$")


def detail_value(key: Any, value: Any, lang: str = "en") -> str:
    """A detail's value for a reader: bytes as GB; a fixed phrase a check records ("default route",
    "DNS lookup failed (name not found)") in the reader's words (catalog ``detail_value``); any
    other text as it is (names, versions, addresses)."""
    if isinstance(key, str) and key.endswith("_bytes") and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        return f"{number(round(value / 1e9, 1), lang)} {unit_text('GB', lang)}"
    if not isinstance(value, str):
        return str(value)
    table = catalog(lang).get("detail_value", {})
    if not isinstance(table, dict):
        return value
    if value in table:
        return table[value]
    parts = _VALUE_PARTS.match(value)
    if parts and parts["head"] in table:
        return f"{table[parts['head']]} ({table.get(parts['inner'], parts['inner'])})"
    return value
