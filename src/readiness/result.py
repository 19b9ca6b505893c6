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
from typing import Any

from readiness.atomic import NotAFile, read_regular, write_atomic
from readiness.onepass import MAX_DEPTH, MAX_JUDGED, clean_document, may_hold_surrogate  # noqa: F401 - MAX_JUDGED: read from here too
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


def _refuse_surrogates(data: Any, origin: str, raw: bytes | None) -> None:
    """A key or text holding an unpaired surrogate (``"\\ud800"``) is not Unicode text: no file,
    database or page could hold it, so the document is refused here, named, rather than
    failing later in whichever writer meets it first. UTF-16 and UTF-32 bytes (a NUL among the
    first four) always get the exact look."""
    if raw is not None and not may_hold_surrogate(raw):
        return
    path = surrogate_at(data)
    if path is not None:
        raise ResultError(f"{origin}: {_where(path)} holds text that is not Unicode (an unpaired surrogate, "
                          "such as \\ud800)", "not_text")


def _one_pass(raw: bytes, data: Any, origin: str) -> Result | None:
    """The Result of ``data`` (parsed from ``raw``; None: parse it here) when ``onepass`` finds
    the document clean; None: the full path decides."""
    data = clean_document(raw, data)
    if data is None:
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
