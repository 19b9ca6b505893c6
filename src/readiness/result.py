"""The result document: the whole record of one run, as versioned JSON.

Sits between the runner (which fills it) and the judge/report/fleet (which read it).
``schema/result.schema.json`` describes it; the tests validate every result they produce.

Schema history (``schema_version``):
  1 — first version: host facts, labels, profile (name, sha256), per-check status,
      duration, metrics {value, unit}, details, error; the judgement made at run time.
      Later, without a version bump (both optional; a result without them reads and
      judges as before): ``coverage`` {needed, ran, measured} — the checks the profile
      needs, ran, measured — and the judgement's ``verdict`` word (PARTIAL for a partial
      run that found no fault).

Readers refuse a document whose schema version is newer than they know, and say so.
Every reader goes through :func:`load_result_bytes` (or :func:`read_result` for a file): the
border where a document from a share, an upload or a user is checked whole — its size, its
nesting, its numbers and the schema — before anything else touches it. A document that fails
raises :class:`ResultError` naming where it came from and why. Writes go through the one
atomic writer (``atomic.py``), so a reader on a network share never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import msgspec

from readiness.atomic import NotAFile, read_regular, write_atomic
from readiness.schema import schema_text
from readiness.textsafe import surrogate_at

SCHEMA_VERSION = 1
KIND = "readiness-result"
STATUSES = ("ok", "error", "timeout", "skipped")
MAX_RESULT_BYTES = 16 * 1024 * 1024  # far above any result (a snapshot is ~100 kB); guards memory and time
# How far a result's start may lie after the moment it reached the collector, or after its
# file's modification time on a share. A computer whose clock is further ahead (a dead clock
# battery, or a forged date) would stay its room's newest result until that date: the collector
# refuses such a result, ``aggregate`` skips such a file, each with this reason.
CLOCK_TOLERANCE = timedelta(minutes=10)
MAX_DEPTH = 32  # nesting levels; a result needs about 8
MAX_JUDGED = 1e15  # the schema's bound on a measured value and a requirement's bound
# What in JSON bytes can become an unpaired surrogate: the escape \ud800-\udfff, or the bytes of
# one written raw in UTF-8 (json reads both). No match: the (slower) exact look is not needed.
# Two patterns, each looked for only where a byte search (memchr) finds its first byte: one
# pattern with both alternatives cost as much as parsing the document (measured, 96 kB).
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")

__all__ = ["MAX_RESULT_BYTES", "CheckRecord", "Result", "ResultError", "load_result_bytes", "prepare_border",
           "read_result", "result_from_data", "write_atomic", "write_result"]


class ResultError(Exception):
    """A document that is not a readable result; the message says why in plain words.

    ``kind`` sorts the reason for a server's answer: "too_large" (413), "not_json" (400),
    "invalid" (422: JSON, but not a result this version can read), "not_text" (400: text that is
    not Unicode, an unpaired surrogate), "unreadable" (a file).
    """

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class CheckRecord:
    name: str
    status: str
    started_utc: str
    duration_s: float
    title: str = ""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"value", "unit"}
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def value(self, metric: str) -> Any:
        entry = self.metrics.get(metric)
        return None if entry is None else entry.get("value")


@dataclass
class Result:
    run_id: str
    started_utc: str
    finished_utc: str
    host: dict[str, Any]
    labels: dict[str, str]
    profile: dict[str, Any]
    checks: dict[str, CheckRecord]
    tool_version: str
    warnings: list[str] = field(default_factory=list)
    judgement: dict[str, Any] | None = None
    coverage: dict[str, Any] | None = None  # checks the profile needs / ran / measured (judge.Coverage)
    schema_version: int = SCHEMA_VERSION
    kind: str = KIND

    def metric(self, qualified: str) -> tuple[Any, str | None, CheckRecord | None]:
        """Value, unit and record of ``check.metric``; value None when not measured."""
        check, _, name = qualified.partition(".")
        record = self.checks.get(check)
        if record is None:
            return None, None, None
        entry = record.metrics.get(name) or {}
        return entry.get("value"), entry.get("unit"), record

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        order = ["kind", "schema_version", "tool_version", "run_id", "started_utc", "finished_utc"]
        return {k: data[k] for k in order} | {k: v for k, v in data.items() if k not in order}

    def to_json(self) -> str:
        return json.dumps(_json_safe(self.to_dict()), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, origin: str = "result") -> "Result":
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ResultError(f"{origin}: not a readiness result (no \"kind\": \"{KIND}\")")
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise ResultError(f"{origin}: no schema_version")
        if version > SCHEMA_VERSION:
            raise ResultError(
                f"{origin}: written by a newer readiness (schema version {version}; this one reads up to "
                f"{SCHEMA_VERSION}); update readiness to read it"
            )
        try:
            known = CheckRecord.__dataclass_fields__
            checks = {name: CheckRecord(**{k: v for k, v in rec.items() if k in known})
                      for name, rec in data["checks"].items()}
            for rec in checks.values():
                if rec.status not in STATUSES:
                    raise ValueError(f"check {rec.name}: unknown status {rec.status!r}")
            fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "checks"}
            return cls(checks=checks, **fields)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultError(f"{origin}: malformed result ({exc})") from None


def _json_safe(value: Any) -> Any:
    """Make details JSON-safe: NaN/inf become null, tuples lists, unknown objects strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalars, without importing numpy
        return _json_safe(value.item())
    return str(value)


def json_safe(value: Any) -> Any:
    return _json_safe(value)


def new_run_id() -> str:
    return uuid.uuid4().hex


def _validator() -> Any:
    """The compiled schema (once per process) for everything but the stored judgement's
    requirements, which result_from_data validates with :func:`_requirement_validator`."""
    global _VALIDATOR, _REQUIREMENT_VALIDATOR
    if _VALIDATOR is None:
        import fastjsonschema  # compiled once: ~20x faster than interpreting the schema per file

        schema = json.loads(schema_text())
        requirement = {"$schema": schema["$schema"], **schema["$defs"]["requirement"]}
        item = schema["$defs"]["judgement"]["properties"]["items"]["items"]
        item["properties"]["requirement"] = {"type": "object"}
        _REQUIREMENT_VALIDATOR = fastjsonschema.compile(requirement)
        _VALIDATOR = fastjsonschema.compile(schema)
    return _VALIDATOR


def prepare_border() -> None:
    """Compile the schema now (a worker pool calls it before forking, so workers inherit it)."""
    _validator()


def _requirement_validator() -> Any:
    _validator()
    return _REQUIREMENT_VALIDATOR


_VALIDATOR: Any = None
_REQUIREMENT_VALIDATOR: Any = None
# Requirements of stored judgements already validated in this process, by metric. Every result
# of a fleet holds the same few dozen requirements with their texts in every language; checking
# each again was half the schema's time. A requirement equal to one of these (same JSON types
# where equality would mix them: True == 1 == 1.0) is valid, finite and as shallow as that one
# was where it stood (judgement.items[i].requirement). Copies, so nothing a caller does to a
# Result changes them; at most _KNOWN_BUDGET characters of JSON are kept, then no more.
_KNOWN_REQUIREMENTS: dict[str, list[dict[str, Any]]] = {}
_KNOWN_BUDGET = 4 * 1024 * 1024
_known_size = 0


def _is_known(req: Any) -> bool:
    if type(req) is not dict:
        return False
    metric = req.get("metric")
    if type(metric) is not str:
        return False
    for known in _KNOWN_REQUIREMENTS.get(metric, ()):
        if (req == known and type(req.get("min")) is type(known.get("min"))
                and type(req.get("max")) is type(known.get("max"))
                and type(req.get("expect")) is type(known.get("expect"))):
            return True
    return False


def _remember(req: dict[str, Any]) -> None:
    global _known_size
    size = len(json.dumps(req))
    if _known_size + size <= _KNOWN_BUDGET:
        _KNOWN_REQUIREMENTS.setdefault(req["metric"], []).append(json.loads(json.dumps(req)))
        _known_size += size


def _judged_requirements(data: dict[str, Any]) -> list[Any]:
    """Each item's requirement in the stored judgement (None where there is none to check)."""
    judgement = data.get("judgement")
    items = judgement.get("items") if type(judgement) is dict else None
    if type(items) is not list:
        return []
    return [item.get("requirement") if type(item) is dict else None for item in items]


def _printable(text: str, limit: int = 60) -> str:
    """A document's own words as safe, short text for a message (no control characters)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _where(path: list[Any]) -> str:
    return ".".join(_printable(str(p), 40) for p in path) or "the document"


def _bounded(data: Any, origin: str, known: frozenset[int] | set[int] = frozenset()) -> bool:
    """Nesting at most MAX_DEPTH; a non-finite number (NaN, Infinity, 1e400) in a measured value
    becomes null (not measured, so UNKNOWN when judged); anywhere else it refuses the document.
    Iterative, so no document can exhaust the stack; paths are followed only when a non-finite
    number was seen (rare), so the common case costs one plain walk (measured faster than
    cleverer ones: bench/border.py). ``known``: ids of containers not entered (requirements equal
    to ones already checked, which are as shallow and finite as those were). Returns whether
    ``data`` was changed."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    nonfinite = False
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ResultError(f"{origin}: nested more than {MAX_DEPTH} levels deep; not a result")
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                if depth != 3 or id(value) not in known:  # judgement.items[i].requirement is at depth 4
                    stack.append((value, depth + 1))
            elif kind is float and not math.isfinite(value):
                nonfinite = True
    if nonfinite:
        _replace_nonfinite(data, [], origin)
    return nonfinite


def _replace_nonfinite(node: Any, path: list[Any], origin: str) -> None:
    items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
    for key, value in items:
        where = path + [key]
        if isinstance(value, float) and not math.isfinite(value):
            if where[:1] == ["checks"] and len(where) > 3 and where[2] == "details" or _measured(where):
                node[key] = None
                continue
            raise ResultError(f"{origin}: {_where(where)} is {value}, not a finite number")
        if isinstance(value, (dict, list)):
            _replace_nonfinite(value, where, origin)  # depth already bounded by the walk above


def _measured(path: list[Any]) -> bool:
    return any(len(path) == len(p) and all(a == "*" or a == b for a, b in zip(p, path))
               for p in (["checks", "*", "metrics", "*", "value"], ["judgement", "items", "*", "value"]))


def load_result_bytes(raw: bytes, origin: str) -> Result:
    """The one border every result document crosses: bytes from a file, an upload or a pipe.

    Checks size (``MAX_RESULT_BYTES``), JSON syntax, nesting (``MAX_DEPTH``), numbers (finite,
    within the schema's bounds) and the whole schema, then builds the Result. Raises
    ResultError whose message starts with ``origin`` and says what is wrong in plain words.
    """
    if len(raw) > MAX_RESULT_BYTES:
        raise ResultError(f"{origin}: too large to be a result ({len(raw) / 1048576:.1f} MB; "
                          f"a result is at most {MAX_RESULT_BYTES // 1048576} MB)", "too_large")
    fast = _one_pass(raw, None, origin)
    if fast is not None:
        return fast
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ResultError(f"{origin}: nested more than {MAX_DEPTH} levels deep; not a result", "not_json") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResultError(f"{origin}: not valid JSON ({_printable(str(exc), 120)})", "not_json") from None
    return checked_data(data, origin, raw)[0]


def result_from_data(data: Any, origin: str) -> Result:
    """The border for a document already parsed by ``json.loads`` (which must have been given
    at most MAX_RESULT_BYTES, and whose RecursionError means "nested too deep"): kind, version,
    nesting, numbers and schema, then the Result. ``data`` may be changed (non-finite measured
    values become None)."""
    return checked_data(data, origin)[0]


def checked_data(data: Any, origin: str, raw: bytes | None = None) -> tuple[Result, bool]:
    """``result_from_data``, and whether it changed ``data`` (a non-finite measured value made
    None): when it did not, the bytes ``data`` was parsed from are the checked document as they are.
    ``raw``: those bytes, when the caller has them (they tell cheaply that no text needs the
    exact look for unpaired surrogates)."""
    import fastjsonschema

    if raw is not None and type(data) is dict:
        fast = _one_pass(raw, data, origin)
        if fast is not None:
            return fast, False
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ResultError(f"{origin}: not a readiness result (no \"kind\": \"{KIND}\")")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultError(f"{origin}: no schema_version")
    if version > SCHEMA_VERSION:
        raise ResultError(
            f"{origin}: written by a newer readiness (schema version {_printable(str(version), 20)}; this one "
            f"reads up to {SCHEMA_VERSION}); update readiness to read it")
    requirements = _judged_requirements(data)
    known = {id(req) for req in requirements if _is_known(req)}
    changed = _bounded(data, origin, known)
    _refuse_surrogates(data, origin, raw)  # after the depth is bounded: its walk copies paths
    where: list[Any] = []
    try:
        _validator()(data)
        check = _requirement_validator()
        for i, req in enumerate(requirements):
            if id(req) not in known:
                where = ["judgement", "items", i, "requirement"]
                check(req)
                _remember(req)
    except fastjsonschema.JsonSchemaValueException as exc:
        path = where + list(exc.path or [])[1:]  # the first element is fastjsonschema's "data"
        rule = _printable(exc.message.rsplit(" must ", 1)[-1], 100) if " must " in exc.message else "is not valid"
        what = "malformed judgement in the result" if path[:1] == ["judgement"] else "malformed result"
        raise ResultError(f"{origin}: {what} ({_where(path)} must {rule})") from None
    return Result.from_dict(data, origin), changed


def _may_hold_surrogate(raw: bytes) -> bool:
    if b"\x00" in raw[:4]:  # UTF-16 or UTF-32
        return True
    if raw.find(b"\\") != -1 and _ESCAPED_SURROGATE.search(raw) is not None:
        return True
    return raw.find(b"\xed") != -1 and _RAW_SURROGATE.search(raw) is not None


def _refuse_surrogates(data: Any, origin: str, raw: bytes | None) -> None:
    """A key or text holding an unpaired surrogate (``"\\ud800"``) is not Unicode text: no file,
    database or page could hold it, so the document is refused here, named, rather than
    failing later in whichever writer meets it first. UTF-16 and UTF-32 bytes (a NUL among the
    first four) always get the exact look."""
    if raw is not None and not _may_hold_surrogate(raw):
        return
    path = surrogate_at(data)
    if path is not None:
        raise ResultError(f"{origin}: {_where(path)} holds text that is not Unicode (an unpaired surrogate, "
                          "such as \\ud800)", "not_text")


# --- The one-pass border: msgspec's typed decoding (C) checks the document's structure --------
# The types below mirror schema/result.schema.json: a document they accept, the schema accepts
# (tests/test_borders.py holds them to that over every hostile document and its mutations).
# A document they refuse takes the full path (json, the nesting walk, the schema), whose
# refusal names the place and the rule in the words the hostile tests read: the common valid
# document costs one typed decode, one untyped decode and a walk of the free-form parts only.
def _text(limit: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=limit)]


_UTC = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")]
_JUDGED_INT = Annotated[int, msgspec.Meta(ge=-10 ** 15, le=10 ** 15)]
_JUDGED_FLOAT = Annotated[float, msgspec.Meta(ge=-MAX_JUDGED, le=MAX_JUDGED)]
_VALUE = Union[None, bool, _JUDGED_INT, _JUDGED_FLOAT, _text(64)]
_BOUNDED = Annotated[float, msgspec.Meta(ge=-MAX_JUDGED, le=MAX_JUDGED)]  # an int decodes too
_VERDICT = Literal["PASS", "WARN", "FAIL", "UNKNOWN"]
_UNSET: Any = msgspec.UNSET


class _Closed(msgspec.Struct, forbid_unknown_fields=True):
    """An object of the schema with ``additionalProperties: false``."""


class _Metric(_Closed):
    value: _VALUE
    unit: _text(40)


class _Check(_Closed):
    name: _text(100)
    status: Literal["ok", "error", "timeout", "skipped"]
    started_utc: _UTC
    duration_s: Annotated[float, msgspec.Meta(ge=0, le=1e6)]
    metrics: Annotated[dict[_text(100), _Metric], msgspec.Meta(max_length=500)]
    details: dict[str, Any]  # free-form: its nesting and numbers are walked (_free_parts_clean)
    error: Union[_text(20000), None]
    title: Union[_text(500), msgspec.UnsetType] = _UNSET


class _Labels(_Closed):
    label: Union[_text(200), msgspec.UnsetType] = _UNSET
    site: Union[_text(200), msgspec.UnsetType] = _UNSET
    room: Union[_text(200), msgspec.UnsetType] = _UNSET


class _Desk(_Closed):
    name: Union[_text(500), msgspec.UnsetType] = _UNSET
    hours: Union[_text(500), msgspec.UnsetType] = _UNSET


class _Coverage(_Closed):
    needed: Annotated[list[_text(100)], msgspec.Meta(max_length=200)]
    ran: Annotated[list[_text(100)], msgspec.Meta(max_length=200)]
    measured: Annotated[list[_text(100)], msgspec.Meta(max_length=200)]


class _Translation(_Closed):
    label: Union[_text(500), msgspec.UnsetType] = _UNSET
    why: Union[_text(4000), msgspec.UnsetType] = _UNSET
    fix: Union[_text(4000), msgspec.UnsetType] = _UNSET


_LANGUAGE = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]


class _Requirement(msgspec.Struct):  # open: other keys are walked (_free_parts_clean)
    metric: Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^.]+\..+$")]
    severity: Literal["required", "recommended"]
    why: _text(4000)
    fix: _text(4000)
    source: _text(2000)
    min: Union[_BOUNDED, msgspec.UnsetType] = _UNSET
    max: Union[_BOUNDED, msgspec.UnsetType] = _UNSET
    expect: Union[bool, msgspec.UnsetType] = _UNSET
    min_version: Union[_text(64), msgspec.UnsetType] = _UNSET
    label: Union[_text(500), msgspec.UnsetType] = _UNSET
    service: Union[_text(500), msgspec.UnsetType] = _UNSET
    translations: Union[Annotated[dict[_LANGUAGE, _Translation], msgspec.Meta(max_length=20)],
                        msgspec.UnsetType] = _UNSET


class _Item(msgspec.Struct):  # open
    status: _VERDICT
    requirement: _Requirement
    value: Union[_VALUE, msgspec.UnsetType] = _UNSET
    unit: Union[_text(40), None, msgspec.UnsetType] = _UNSET
    reason: Union[_text(20000), None, msgspec.UnsetType] = _UNSET


class _Judgement(msgspec.Struct):  # open
    profile: dict[str, Any]
    overall: _VERDICT
    ready: bool
    items: Annotated[list[_Item], msgspec.Meta(max_length=5000)]
    verdict: Union[Literal["PASS", "WARN", "FAIL", "UNKNOWN", "PARTIAL"], msgspec.UnsetType] = _UNSET
    coverage: Union[_Coverage, msgspec.UnsetType] = _UNSET


class _Document(_Closed):
    kind: Literal["readiness-result"]
    schema_version: Literal[1]
    tool_version: _text(100)
    run_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
    started_utc: _UTC
    finished_utc: _UTC
    host: Annotated[dict[str, Union[None, bool, int, float, _text(1000)]], msgspec.Meta(max_length=50)]
    labels: _Labels
    profile: dict[str, Any]  # its named keys are checked in _typed_clean, the rest walked
    checks: Annotated[dict[_text(100), _Check], msgspec.Meta(max_length=200)]
    warnings: Annotated[list[_text(4000)], msgspec.Meta(max_length=500)]
    judgement: Union[_Judgement, None, msgspec.UnsetType] = _UNSET
    coverage: Union[_Coverage, None, msgspec.UnsetType] = _UNSET


_TYPED = msgspec.json.Decoder(_Document)
_UNTYPED = msgspec.json.Decoder()
_PROFILE_TEXT = {"name": 200, "title": 500, "origin": 2000}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DESK_TEXT = ("name", "phone", "email", "web", "hours")
_REQUIREMENT_KEYS = frozenset(_Requirement.__struct_fields__)
_ITEM_KEYS = frozenset(_Item.__struct_fields__)
_JUDGEMENT_KEYS = frozenset(("overall", "ready", "items", "verdict", "coverage"))  # profile: walked


def _typed(raw: bytes) -> _Document | None:
    """The document's structure checked in one typed decode; None when it does not pass (or
    may hold what only the full path tells apart: an unpaired surrogate)."""
    if _may_hold_surrogate(raw):
        return None
    try:
        return _TYPED.decode(raw)
    except msgspec.DecodeError:
        return None


def _typed_clean(doc: _Document) -> bool:
    """The rules the types do not hold: a failed, timed-out or skipped check's error is text;
    the host's named keys; the profile's named keys (its other keys are free-form)."""
    for check in doc.checks.values():
        if check.status != "ok" and type(check.error) is not str:
            return False
    host = doc.host
    if type(host.get("hostname")) is not str or len(host["hostname"]) > 255:
        return False
    if "os" in host and (type(host["os"]) is not str or len(host["os"]) > 200):
        return False
    if "measured_by" in host and host["measured_by"] not in ("agent", "browser"):
        return False
    profile = doc.profile
    for key, limit in _PROFILE_TEXT.items():
        if key in profile and (type(profile[key]) is not str or len(profile[key]) > limit):
            return False
    if "sha256" in profile and (type(profile["sha256"]) is not str or not _SHA256.search(profile["sha256"])):
        return False
    if "support" in profile:
        support = profile["support"]
        if type(support) is not dict:
            return False
        for key, value in support.items():
            if key in _DESK_TEXT:
                if type(value) is not str or len(value) > 500:
                    return False
            else:
                try:
                    msgspec.convert(value, _Desk)
                except msgspec.ValidationError:
                    return False
    return True


def _free_parts_clean(data: dict[str, Any]) -> bool:
    """The parts the types leave free (details, the profile, the judgement's profile and any
    key the schema leaves open): nested at most MAX_DEPTH levels where they stand, and every
    number finite. Anything else: the full path decides (and names it)."""
    parts: list[tuple[Any, int]] = [(data["profile"], 1)]
    for record in data["checks"].values():
        parts.append((record["details"], 3))
    judgement = data.get("judgement")
    if judgement is not None:
        parts.extend((v, 2) for k, v in judgement.items() if k not in _JUDGEMENT_KEYS)
        for item in judgement["items"]:
            parts.extend((v, 4) for k, v in item.items() if k not in _ITEM_KEYS)
            parts.extend((v, 5) for k, v in item["requirement"].items() if k not in _REQUIREMENT_KEYS)
    stack = [(node, depth) for node, depth in parts if type(node) is dict or type(node) is list]
    for node, depth in parts:
        if type(node) is float and not math.isfinite(node):
            return False
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        for value in node.values() if type(node) is dict else node:
            kind = type(value)
            if kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind is float and not math.isfinite(value):
                return False
    return True


def _one_pass(raw: bytes, data: Any, origin: str) -> Result | None:
    """The Result of ``data`` (parsed from ``raw``; None: parse it here) when the typed decode
    and the walk of the free-form parts pass; None: the full path decides."""
    doc = _typed(raw)
    if doc is None or not _typed_clean(doc):
        return None
    if data is None:
        try:
            data = _UNTYPED.decode(raw)
        except msgspec.DecodeError:
            return None
    if type(data) is not dict or not _free_parts_clean(data):
        return None
    try:
        return Result.from_dict(data, origin)
    except ResultError:
        return None


def read_result(path: str | os.PathLike[str]) -> Result:
    """Read and check one result file through :func:`load_result_bytes`.

    Only a regular file is read (a pipe or device is refused without waiting on it), and at
    most ``MAX_RESULT_BYTES``; every error names the file.
    """
    p = os.fspath(path)
    try:
        raw = read_regular(p, MAX_RESULT_BYTES)
    except NotAFile as exc:
        raise ResultError(f"{p}: {exc}", "too_large" if str(exc).startswith("too large") else "unreadable") from None
    except OSError as exc:
        raise ResultError(f"{p}: cannot read it ({exc.strerror or exc})", "unreadable") from None
    return load_result_bytes(raw, p)


def safe_file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "host"


def result_stem(result: Result) -> str:
    """``readiness-<host>-<UTC time>-<run id>``: unique per host and time, safe on any file system."""
    when = parse_utc(result.started_utc).strftime("%Y%m%dT%H%M%SZ")
    host = safe_file_part(str(result.host.get("hostname") or socket.gethostname()))
    return f"readiness-{host}-{when}-{result.run_id[:8]}"


def write_result(result: Result, folder: Path) -> Path:
    path = folder / f"{result_stem(result)}.json"
    write_atomic(path, result.to_json())
    return path
