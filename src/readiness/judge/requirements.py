"""Requirement lists ("profiles"): strict TOML, validated before anything runs.

Sits between the checks (whose declared metrics and settings a profile may name) and the
judge (``judge.py``), which is the only place a requirement is applied. A profile is::

    name = "video-call"
    title = "…"
    description = "…"

    [checks.latency]            # settings for a check (keys must be declared by the check)
    duration_s = 5

    [[requirement]]
    metric = "bandwidth.upload_mbps"   # <check>.<metric>
    min = 1.2                          # and/or max = …; for yes/no metrics: expect = true
    severity = "required"              # required -> FAIL, recommended -> WARN
    label = "Upload"                   # optional, defaults to the metric's description
    service = "Microsoft Teams"        # optional: judge that service's own figure (a check that
                                       # measures per service puts it in details.services.<name>)
    why = "…"
    fix = "…"
    source = "https://…"
    [requirement.sv]                   # optional translations of label / why / fix
    why = "…"

    [[requirement]]
    metric = "software.teams_version"  # a version metric: judged by min_version, compared
    min_version = "24295.605"          # as a version (versions.py), not as text

    [support]                          # optional: who to call; shown beside every verdict
    name = "IT service desk"
    phone = "+46 8 123 456 00"
    email = "it@example.org"
    web = "https://it.example.org"
    hours = "Mon–Fri 8–17"
    [support.sv]                       # optional translations of name / hours
    name = "IT-servicedesken"

Every error names the file and line: an unknown key, a metric no check provides, a bad bound.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from readiness.atomic import NotAFile, read_regular
from readiness.check import Check
from readiness.i18n import languages
from readiness.i18n.format import Worded
from readiness.versions import is_version

SEVERITIES = ("required", "recommended")
LANGS = languages()  # one list, derived from the catalogs: a requirement may carry a table per language
DEFAULT_PROFILE = "video-call"
_TOP_KEYS = {"name", "title", "description", "checks", "requirement", "support"}
_REQ_KEYS = {"metric", "min", "max", "expect", "min_version", "severity", "label", "why", "fix", "source", "service"}
_SUPPORT_KEYS = ("name", "phone", "email", "web", "hours")
_SUPPORT_TEXT_KEYS = ("name", "hours")
_SUPPORT_MAX = 500  # the result schema's maxLength of each [support] text
_TEXT_KEYS = {"label", "why", "fix"}
_COMMON_SETTINGS = {"budget_s"}
MAX_BOUND = 1e15  # result.MAX_JUDGED, the schema's bound on judged numbers: a bound must fit in a stored judgement
MAX_BUDGET_S = 86400.0
# the result schema's maxLength of each text a judgement stores (tests hold the two equal): a
# profile that passes here always gives results that readers accept
TEXT_LIMITS = {"name": 200, "title": 500, "label": 500, "why": 4000, "fix": 4000, "source": 2000}
MAX_PROFILE_BYTES = 8 * 1024 * 1024  # some 40 000 requirements; a pipe or /dev/zero is refused, not read


def toml_loads(text: str) -> dict[str, Any]:
    """``tomllib.loads``, with text nested deeper than its recursion can go (5 000 arrays inside
    each other) a TOMLDecodeError like any other mistake, not a RecursionError."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("nested too deeply (arrays or tables inside each other)") from None

_REQ_HEADER = re.compile(r"\s*\[\[\s*requirement\s*\]\]")
_SUB_TABLE = re.compile(r"\s*\[\s*requirement\.")
_ANY_HEADER = re.compile(r"\s*\[\[?[^\]]")


class ProfileError(Exception):
    """A profile that cannot be used: ``text(lang)`` is "file:line: message" in a language,
    ``str()`` in English."""

    def __init__(self, origin: str, line: int | None, message: str | Worded) -> None:
        self.origin, self.line, self.said = origin, line, message
        self.message = str(message)  # in English
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        where = f"{self.origin}:{self.line}" if self.line else self.origin
        return f"{where}: {self.said.text(lang) if isinstance(self.said, Worded) else self.said}"

    def __str__(self) -> str:
        return self.text("en")


@dataclass
class Requirement:
    metric: str  # "<check>.<metric>"
    severity: str
    why: str
    fix: str
    source: str
    label: str = ""
    min: float | None = None
    max: float | None = None
    expect: bool | None = None
    min_version: str | None = None
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    line: int | None = None
    service: str | None = None

    @property
    def check(self) -> str:
        return self.metric.partition(".")[0]

    def text(self, key: str, lang: str = "en") -> str:
        """label / why / fix in ``lang``, falling back to English."""
        return self.translations.get(lang, {}).get(key) or getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        out = {"metric": self.metric, "severity": self.severity, "label": self.label, "why": self.why,
               "fix": self.fix, "source": self.source}
        for key in ("min", "max", "expect", "min_version", "service"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.translations:
            out["translations"] = self.translations
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Requirement":
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in keys and k != "line"})


@dataclass
class Profile:
    name: str
    title: str
    description: str
    requirements: list[Requirement]
    check_settings: dict[str, dict[str, Any]]
    origin: str
    sha256: str
    support: dict[str, Any] = field(default_factory=dict)  # [support]: contact, with "sv": {...}

    def checks(self) -> list[str]:
        """The checks this profile needs: those its requirements name, then those it configures."""
        names: list[str] = []
        for r in self.requirements:
            if r.check not in names:
                names.append(r.check)
        for c in self.check_settings:
            if c not in names:
                names.append(c)
        return names

    def summary(self) -> dict[str, Any]:
        out = {"name": self.name, "title": self.title, "origin": self.origin, "sha256": self.sha256}
        if self.support:  # travels with every judgement, so each report can show whom to call
            out["support"] = self.support
        return out


class _Lines:
    """Finds the line of a key in TOML text, for error messages (tomllib gives no positions).

    The block of every [[requirement]] is found in one pass when the text is read, so a profile
    of n requirements loads in time proportional to n, not n squared.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self._blocks: list[tuple[int, int]] = []  # (first line index, end index) per [[requirement]]
        headers = [i for i, line in enumerate(self.lines) if _ANY_HEADER.match(line)]
        ends = [h for h in headers if not _SUB_TABLE.match(self.lines[h])]
        for h in headers:
            if _REQ_HEADER.match(self.lines[h]):
                k = bisect.bisect_right(ends, h)
                self._blocks.append((h, ends[k] if k < len(ends) else len(self.lines)))

    def _find(self, pattern: str, start: int = 0, stop: int | None = None) -> int | None:
        rx = re.compile(pattern)
        for i in range(start, len(self.lines) if stop is None else stop):
            if rx.match(self.lines[i]):
                return i + 1
        return None

    def requirement(self, index: int) -> tuple[int | None, int | None]:
        """(first line, end line) of the index-th [[requirement]] block."""
        if index >= len(self._blocks):
            return None, None
        begin, end = self._blocks[index]
        return begin + 1, end

    def key_in_requirement(self, index: int, key: str) -> int | None:
        begin, end = self.requirement(index)
        if begin is None:
            return None
        return self._find(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", begin - 1, end) or begin

    def table(self, dotted: str) -> int | None:
        parts = [re.escape(p) for p in dotted.split(".")]
        return self._find(r"\s*\[\s*" + r"\s*\.\s*".join(parts) + r"\s*\]")

    def key_in_table(self, dotted: str, key: str) -> int | None:
        start = self.table(dotted)
        if start is None:
            return self.top_key(key)
        end = self._find(r"\s*\[", start) or len(self.lines) + 1
        return self._find(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", start, end - 1) or start

    def top_key(self, key: str) -> int | None:
        end = self._find(r"\s*\[") or len(self.lines) + 1
        return self._find(rf"\s*{re.escape(key)}\s*=", 0, end - 1)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def parse_profile(text: str, origin: str, checks: dict[str, type[Check]], broken: dict[str, str] | None = None) -> Profile:
    """Parse and validate a profile's text against the installed checks.

    ``broken`` names checks whose plugin failed to load: their requirements are kept (and
    judged UNKNOWN) instead of failing the whole profile.
    """
    broken = broken or {}
    try:
        data = toml_loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ProfileError(origin, int(m.group(1)) if m else None, Worded("profile_error.not_toml", detail=str(exc))) from None
    lines = _Lines(text)

    def err(line: int | None, what: str, **fill: Any) -> ProfileError:
        return ProfileError(origin, line, Worded(f"profile_error.{what}", **fill))

    for key in data:
        if key not in _TOP_KEYS:
            raise err(lines.top_key(key) or lines.table(key), "unknown_key", setting=key, allowed=", ".join(sorted(_TOP_KEYS)))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise err(lines.top_key("name"), "needs_name")
    for key in ("title", "description"):
        if key in data and not isinstance(data[key], str):
            raise err(lines.top_key(key), "must_text", setting=key)
    for key in ("name", "title"):
        _check_length(key, data.get(key), lambda k: lines.top_key(k), err)

    settings: dict[str, dict[str, Any]] = {}
    raw_checks = data.get("checks", {})
    if not isinstance(raw_checks, dict):
        raise err(lines.top_key("checks"), "checks_tables")
    for cname, table in raw_checks.items():
        line = lines.table(f"checks.{cname}")
        if not isinstance(table, dict):
            raise err(line, "check_table", check=cname)
        if cname in broken:
            settings[cname] = dict(table)
            continue
        cls = checks.get(cname)
        if cls is None:
            raise err(line, "no_check", check=cname, installed=", ".join(sorted(checks)) or "none")
        settings[cname] = validate_settings(cls, cname, table, lambda k: lines.key_in_table(f"checks.{cname}", k), err)

    raw_reqs = data.get("requirement", [])
    if not isinstance(raw_reqs, list):
        raise err(lines.top_key("requirement"), "requirement_blocks")
    reqs = [_parse_requirement(i, r, checks, broken, lines, err) for i, r in enumerate(raw_reqs)]
    support = _parse_support(data.get("support"), lines, err)
    return Profile(
        name=name.strip(),
        title=str(data.get("title", name)).strip(),
        description=str(data.get("description", "")).strip(),
        requirements=reqs,
        check_settings=settings,
        origin=origin,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        support=support,
    )


def _parse_support(raw: Any, lines: _Lines, err: Any) -> dict[str, Any]:
    """``[support]``: name, phone, email, web, hours (all text), and ``[support.sv]`` name/hours."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise err(lines.top_key("support"), "support_table")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        at = lines.key_in_table("support", key)
        if key in LANGS:
            table_line = lines.table(f"support.{key}")
            if not isinstance(value, dict) or any(k not in _SUPPORT_TEXT_KEYS or not isinstance(v, str) for k, v in value.items()):
                raise err(table_line or at, "support_lang_keys", lang=key,
                          keys=" and ".join(_SUPPORT_TEXT_KEYS))
            if any(len(v.strip()) > _SUPPORT_MAX for v in value.values()):
                raise err(table_line or at, "support_lang_long", lang=key, max=str(_SUPPORT_MAX))
            out[key] = {k: v.strip() for k, v in value.items() if v.strip()}
            continue
        if key not in _SUPPORT_KEYS:
            raise err(at, "support_unknown_key", setting=key, allowed=", ".join(_SUPPORT_KEYS + LANGS))
        if not isinstance(value, str) or not value.strip():
            raise err(at, "support_empty", setting=key)
        value = value.strip()
        if len(value) > _SUPPORT_MAX:
            raise err(at, "support_long", setting=key, length=str(len(value)), max=str(_SUPPORT_MAX))
        if key == "web" and not re.match(r"https?://[^\s/]+", value):
            raise err(at, "support_web", value=repr(value))
        if key == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise err(at, "support_email", value=repr(value))
        out[key] = value
    if not any(k in out for k in ("phone", "email", "web")):
        raise err(lines.table("support"), "support_reach")
    return out


def validate_settings(cls: type[Check], cname: str, table: dict[str, Any], line_of: Any, err: Any) -> dict[str, Any]:
    """Check a [checks.<name>] table (or --set values) against the check's declared settings."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key == "budget_s":
            if not _is_finite(value) or not 0 < value <= MAX_BUDGET_S:
                raise err(line_of(key), "budget", check=cname, max=f"{MAX_BUDGET_S:g}", value=repr(value))
            out[key] = float(value)
            continue
        spec = cls.settings.get(key)
        if spec is None:
            known = ", ".join(sorted(set(cls.settings) | _COMMON_SETTINGS))
            raise err(line_of(key), "no_setting", check=cname, setting=key, known=known)
        if not spec.accepts(value) or (isinstance(value, float) and not math.isfinite(value)):
            raise err(line_of(key), "bad_setting", check=cname, setting=key, value=repr(value), help=spec.help)
        problem = spec.item_problem(value)
        if problem:
            raise err(line_of(key), "bad_item", check=cname, setting=key, problem=problem)
        out[key] = value
    return out


def _check_length(key: str, value: Any, line_of: Any, err: Any) -> None:
    if isinstance(value, str) and len(value.strip()) > TEXT_LIMITS[key]:
        raise err(line_of(key), "too_long", setting=key, length=str(len(value.strip())),
                  max=str(TEXT_LIMITS[key]))


def _parse_requirement(i: int, raw: Any, checks: dict[str, type[Check]], broken: dict[str, str], lines: _Lines, err: Any) -> Requirement:
    first, _ = lines.requirement(i)
    if not isinstance(raw, dict):
        raise err(first, "requirement_table")

    def at(key: str) -> int | None:
        return lines.key_in_requirement(i, key)

    for key in raw:
        if key not in _REQ_KEYS and key not in LANGS:
            raise err(at(key), "requirement_unknown_key", setting=key,
                      allowed=", ".join(sorted(_REQ_KEYS | set(LANGS))))
    metric = raw.get("metric")
    if not isinstance(metric, str) or "." not in metric:
        raise err(at("metric") if "metric" in raw else first, "needs_metric")
    cname, _, mname = metric.partition(".")
    kind = "version" if "min_version" in raw else "number"  # a broken plugin declares nothing
    if cname not in broken:
        cls = checks.get(cname)
        if cls is None:
            raise err(at("metric"), "metric_no_check", metric=metric, check=cname,
                      installed=", ".join(sorted(checks)) or "none")
        spec = cls.metric(mname)
        if spec is None:
            provided = ", ".join(m.name for m in cls.metrics) or "none"
            raise err(at("metric"), "metric_unknown", metric=metric, check=cname, name=mname,
                      provided=provided)
        kind = spec.kind
    severity = raw.get("severity")
    if severity not in SEVERITIES:
        raise err(at("severity") if "severity" in raw else first, "severity", value=repr(severity))
    for key in ("why", "fix", "source"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise err(at(key) if key in raw else first, "needs_text", metric=metric, setting=key)
    if "label" in raw and not isinstance(raw["label"], str):
        raise err(at("label"), "must_text", setting="label")
    for key in ("label", "why", "fix", "source"):
        _check_length(key, raw.get(key), at, err)
    service = raw.get("service")
    if service is not None and (not isinstance(service, str) or not service.strip()):
        raise err(at("service"), "service_name")
    if isinstance(service, str) and len(service.strip()) > TEXT_LIMITS["label"]:
        raise err(at("service"), "too_long", setting="service", length=str(len(service.strip())),
                  max=str(TEXT_LIMITS["label"]))
    lo, hi, expect, min_version = raw.get("min"), raw.get("max"), raw.get("expect"), raw.get("min_version")
    if kind != "version" and min_version is not None:
        raise err(at("min_version"), "not_version", metric=metric)
    if kind == "version":
        if lo is not None or hi is not None or expect is not None:
            raise err(at("min" if lo is not None else "max" if hi is not None else "expect"),
                      "version_bounds", metric=metric)
        if not isinstance(min_version, str) or not is_version(min_version):
            raise err(at("min_version") if "min_version" in raw else first,
                      "needs_min_version", metric=metric)
        min_version = min_version.strip()
    elif kind == "bool":
        if lo is not None or hi is not None:
            raise err(at("min" if lo is not None else "max"), "bool_bounds", metric=metric)
        if not isinstance(expect, bool):
            raise err(at("expect") if "expect" in raw else first, "needs_expect", metric=metric)
    else:
        if expect is not None:
            raise err(at("expect"), "number_expect", metric=metric)
        for key, v in (("min", lo), ("max", hi)):
            if v is not None and not _is_number(v):
                raise err(at(key), "bound_number", setting=key, metric=metric, value=repr(v))
            if v is not None and not (_is_finite(v) and abs(v) <= MAX_BOUND):
                raise err(at(key), "bound_finite", setting=key, metric=metric, max=f"{MAX_BOUND:g}", value=repr(v))
        if lo is None and hi is None:
            raise err(first, "needs_bound", metric=metric)
        if lo is not None and hi is not None and lo > hi:
            raise err(at("min"), "min_above_max", metric=metric, min=str(lo), max=str(hi))
    translations: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        if lang in raw:
            t = raw[lang]
            if not isinstance(t, dict) or any(k not in _TEXT_KEYS or not isinstance(v, str) for k, v in t.items()):
                raise err(lines.table(f"requirement.{lang}") or first, "requirement_lang_keys", lang=lang)
            for key, value in t.items():
                _check_length(key, value, lambda _k, lang=lang: lines.table(f"requirement.{lang}") or first, err)
            translations[lang] = dict(t)
    return Requirement(
        metric=metric, severity=severity, why=raw["why"].strip(), fix=raw["fix"].strip(), source=raw["source"].strip(),
        label=str(raw.get("label", "")).strip(), min=lo, max=hi, expect=expect, min_version=min_version,
        translations=translations, line=first,
        service=service.strip() if service else None,
    )


def shipped_profiles() -> dict[str, str]:
    """Name -> TOML text of the profiles shipped inside the package."""
    out: dict[str, str] = {}
    for entry in resources.files("readiness.profiles").iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[: -len(".toml")]] = entry.read_text(encoding="utf-8")
    return dict(sorted(out.items()))


def load_profile(name: str | None = None, path: str | Path | None = None, *, checks: dict[str, type[Check]],
                 broken: dict[str, str] | None = None) -> Profile:
    """A shipped profile by name, or the user's own file; raises ProfileError."""
    if path is not None:
        p = Path(path)
        try:
            text = read_regular(p, MAX_PROFILE_BYTES).decode("utf-8")
        except FileNotFoundError:
            raise ProfileError(str(p), None, Worded("profile_error.no_file")) from None
        except NotAFile as exc:
            raise ProfileError(str(p), None, str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(str(p), None, Worded("profile_error.unreadable", detail=str(exc))) from None
        return parse_profile(text, str(p), checks, broken)
    name = name or DEFAULT_PROFILE
    shipped = shipped_profiles()
    if name not in shipped:
        raise ProfileError(name, None, Worded("profile_error.no_shipped", names=", ".join(shipped)))
    return parse_profile(shipped[name], f"{name}.toml", checks, broken)
