"""One uploaded result, from request body to stored row, checked at the border.

Order of the checks is cheapest first, and each refusal is an ``Refused`` carrying the HTTP
status and one plain reason: size (413), JSON (400), nesting depth, NUL characters and
non-finite numbers (400: the database could not hold them, and no result has them), the result
schema (422), label lengths (422), the token's site (403), a run id already stored for another
site (409). A stored run, or a run stored before, is success (idempotent by run id).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from ..result import Result, parse_utc
from .store import HOST_MAX, TEXT_MAX, RawJSON, Store, utcnow

MAX_BODY_BYTES = 8 * 1024 * 1024  # a result with a camera snapshot is ~100 kB
MAX_DEPTH = 32  # a result nests 6 deep; details may add a few levels
# NaN, Infinity, or a number too large for a float (exponent of 3+ digits): the border may replace those
_MAY_CHANGE = re.compile(rb"NaN|Infinity|[eE][+]?[0-9]{3}")


@dataclass
class Refused(Exception):
    status: int
    code: str
    reason: str

    def __str__(self) -> str:
        return self.reason


def parse(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Bytes to a JSON object (400 for anything else, 413 above ``max_bytes``)."""
    if len(body) > max_bytes:
        raise Refused(413, "too_large", f"a result is at most {max_bytes} bytes")
    try:
        data = json.loads(body)
    except RecursionError:
        raise Refused(400, "too_deep", f"the document nests deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "invalid_json", f"not valid JSON ({str(exc)[:160]})") from None
    if not isinstance(data, dict):
        raise Refused(400, "invalid_json", "a result is a JSON object")
    # PostgreSQL text and JSONB cannot hold NUL; in JSON text a NUL can only be the escape \u0000,
    # so the bytes tell cheaply whether the exact (slower) look is needed
    if b"\\u0000" in body and _holds_nul(data):
        raise Refused(400, "nul_character", "text may not hold a NUL character")
    return data


def _holds_nul(data: Any) -> bool:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if any("\x00" in k for k in value):
                return True
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and "\x00" in value:
            return True
    return False


def validate(data: dict[str, Any]) -> Result:
    """The project's one border for result documents (``result.result_from_data``: kind,
    version, nesting, finite numbers, the schema); 422 with its reason when it does not pass."""
    from ..result import ResultError, result_from_data

    try:
        return result_from_data(data, "upload")
    except ResultError as exc:
        raise Refused(422, "invalid_result", str(exc).removeprefix("upload: ")) from None


def room_key(site: str, room: str, hostname: str, run_id: str) -> str:
    """Same key as the fleet report: per room when a room label is set, else per host."""
    return f"room\x1f{site}\x1f{room}" if room else f"host\x1f{hostname or run_id}"


def coverage(judgement: dict[str, Any] | None) -> float | None:
    """Share of the checks the profile needs that measured (ran with status ok); None without
    a judgement or without coverage facts (a result from before coverage was recorded)."""
    cov = judgement.get("coverage") if isinstance(judgement, dict) else None
    if not isinstance(cov, dict) or not isinstance(cov.get("needed"), list):
        return None
    needed = set(cov["needed"])
    if not needed:
        return 0.0
    return len(needed & set(cov.get("measured") or ())) / len(needed)


def row_of(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The indexed columns of a validated document, and the checks it holds."""
    labels, host = data.get("labels") or {}, data.get("host") or {}
    site, room = labels.get("site", "").strip(), labels.get("room", "").strip()
    hostname = str(host.get("hostname", "")).strip()
    profile = str((data.get("profile") or {}).get("name", ""))
    for what, text, limit in (("site", site, TEXT_MAX), ("room", room, TEXT_MAX), ("profile name", profile, TEXT_MAX),
                              ("hostname", hostname, HOST_MAX)):
        if len(text) > limit:
            raise Refused(422, "too_long", f"the {what} is longer than {limit} characters")
    started = parse_utc(data["started_utc"])
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    judgement = data.get("judgement")
    verdict = (judgement.get("verdict") or judgement.get("overall")) if isinstance(judgement, dict) else None
    # every check the run holds, whatever its status: the fleet state takes each check's newest
    # fact (a camera that fails now is the room's camera state now), as the fleet code does for files
    measured = sorted(data["checks"])
    if any(len(name) > TEXT_MAX for name in measured):
        raise Refused(422, "too_long", f"a check name is longer than {TEXT_MAX} characters")
    row = {"run_id": data["run_id"], "site": site, "room": room, "hostname": hostname,
           "room_key": room_key(site, room, hostname, data["run_id"]), "started": started, "received": utcnow(),
           "profile": profile, "verdict": verdict, "coverage": coverage(judgement)}
    return row, measured


def _as_stored(body: bytes, data: dict[str, Any]) -> Any:
    """The bytes as they came (no second serialisation), unless the border may have changed the
    document (a non-finite measured value made null) or the text is not plain UTF-8 (UTF-16 and a
    byte-order mark are JSON too, but not for the database): then the checked document."""
    if b"\x00" in body or _MAY_CHANGE.search(body):
        return data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return data if text.startswith("\ufeff") else RawJSON(text)


def check(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> tuple[Any, ...]:
    """Everything about one upload that needs no database: ("ok", row, checks, document) with
    document None when the bytes themselves are to be stored, or ("refused", status, code,
    reason). Plain values only, so it can run in a worker process (``Checkers``)."""
    try:
        data = parse(body, max_bytes)
        validate(data)
        row, measured = row_of(data)
    except Refused as exc:
        return ("refused", exc.status, exc.code, exc.reason)
    document = _as_stored(body, data)
    return ("ok", row, measured, None if isinstance(document, RawJSON) else document)


class Checkers:
    """Worker processes for ``check``: the border is pure Python and CPU-bound (a 47 kB result
    takes a few milliseconds), so with one process the GIL caps ingest at one core. Started
    with "spawn" (no fork of a threaded server); a pool that broke (a worker killed) is
    replaced, and the upload in hand is checked here."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.lock = threading.Lock()
        self.pool: Any = None

    def _pool(self) -> Any:
        with self.lock:
            if self.pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            return self.pool

    def warm(self) -> None:
        """Start the workers now (they import the border once), not on the first upload."""
        for f in [self._pool().submit(check, b"{}") for _ in range(self.workers)]:
            f.result()

    def __call__(self, body: bytes, max_bytes: int) -> tuple[Any, ...]:
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool()
        try:
            return pool.submit(check, body, max_bytes).result()
        except BrokenProcessPool:
            with self.lock:
                if self.pool is pool:
                    self.pool = None
            return check(body, max_bytes)

    def close(self) -> None:
        with self.lock:
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = None


def ingest(store: Store, body: bytes, token_site: str, max_bytes: int = MAX_BODY_BYTES,
           checker: Any = None) -> dict[str, Any]:
    """Check and store one uploaded result for a token of ``token_site``; ``checker``: where
    ``check`` runs (a ``Checkers`` pool; None: here).

    Returns the success body ({"run_id", "stored": "new" | "already"}); raises ``Refused``
    (a 4xx) or ``store.Unavailable`` (503: the client keeps the result and retries).
    """
    outcome = (checker or check)(body, max_bytes)
    if outcome[0] == "refused":
        raise Refused(*outcome[1:])
    _, row, measured, document = outcome
    if document is None:
        document = RawJSON(body.decode("utf-8"))
    if row["site"] != token_site:
        raise Refused(403, "wrong_site", f"this token submits results for site {token_site!r} only; "
                                         f"the result is labelled site {row['site']!r}")
    stored, other_site = store.store(row, document, measured)
    if not stored and other_site != row["site"]:
        raise Refused(409, "run_id_taken", "a result with this run id is already stored for another site")
    return {"run_id": row["run_id"], "stored": "new" if stored else "already"}
