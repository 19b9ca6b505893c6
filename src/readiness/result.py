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
Writes are atomic (temp file in the same folder + rename), so a reader on a network share
never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
KIND = "readiness-result"
STATUSES = ("ok", "error", "timeout", "skipped")


class ResultError(Exception):
    """A file that is not a readable result; the message says why in plain words."""


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
            checks = {
                name: CheckRecord(**{k: v for k, v in rec.items() if k in CheckRecord.__dataclass_fields__})
                for name, rec in data["checks"].items()
            }
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


def read_result(path: str | os.PathLike[str]) -> Result:
    """Read and check one result file; raise ResultError with a plain reason otherwise."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ResultError(f"{p}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultError(f"{p}: not valid JSON ({exc})") from None
    return Result.from_dict(data, origin=str(p))


def safe_file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "host"


def result_stem(result: Result) -> str:
    """``readiness-<host>-<UTC time>-<run id>``: unique per host and time, safe on any file system."""
    when = parse_utc(result.started_utc).strftime("%Y%m%dT%H%M%SZ")
    host = safe_file_part(str(result.host.get("hostname") or socket.gethostname()))
    return f"readiness-{host}-{when}-{result.run_id[:8]}"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_result(result: Result, folder: Path) -> Path:
    path = folder / f"{result_stem(result)}.json"
    write_atomic(path, result.to_json())
    return path
