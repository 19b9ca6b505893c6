"""One uploaded result, from request body to stored row, checked at the border.

Order of the checks is cheapest first, and each refusal is an ``Refused`` carrying the HTTP
status and one plain reason: size (413), JSON (400), nesting depth, NUL characters,
unpaired surrogates and non-finite numbers (400: the database could not hold them, and no
result has them), the result schema (422), a start time more than ``result.CLOCK_TOLERANCE``
after the arrival (400 ``clock_ahead``: a clock ahead would keep it its room's newest result),
label lengths (422), the token's site (403), a run id already stored for another site (409). A
stored run, or a run stored before, is success (idempotent by run id).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import threading
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from readiness.collector.jsontext import dumps, read
from readiness.collector.engine import utcnow
from readiness.collector.fleetdb import record_of, record_of_struct
from readiness.collector.store import RawJSONBytes, REVOKED, Store, packed_document
from readiness.collector.tables import HOST_MAX, TEXT_MAX
from readiness.fleet.changes import history_record, room_run
from readiness.onepass import clean_struct
from readiness.result import CLOCK_TOLERANCE, Result, ResultError, checked_data, parse_utc
from readiness.plugins import described

MAX_BODY_BYTES = 8 * 1024 * 1024  # a result with a camera snapshot is ~100 kB
REVOKED_REASON = "this upload token was revoked; ask IT for a new one"
MAX_DEPTH = 32  # a result nests 6 deep; details may add a few levels


@dataclass
class Refused(Exception):
    status: int
    code: str
    reason: str
    facts: dict[str, Any] | None = None  # plain values the collector may note (clock_ahead: whose, when)
    run_id: str | None = None  # when known: the document was read and its run id is well formed

    def __str__(self) -> str:
        return self.reason


def parse(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """Bytes to a JSON object (400 for anything else, 413 above ``max_bytes``)."""
    return _parse(body, max_bytes)[0]


def _parse(body: bytes, max_bytes: int) -> tuple[dict[str, Any], bool]:
    """``parse``, and whether the bytes are plain UTF-8 text (``jsontext.read``)."""
    if len(body) > max_bytes:
        raise Refused(413, "too_large", f"a result is at most {max_bytes} bytes")
    try:
        data, utf8 = read(body)
    except RecursionError:
        raise Refused(400, "too_deep", f"the document nests deeper than {MAX_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "invalid_json", f"not valid JSON ({str(exc)[:160]})") from None
    if not isinstance(data, dict):
        raise Refused(400, "invalid_json", "a result is a JSON object")
    # PostgreSQL text and JSONB cannot hold NUL; in JSON text a NUL can only be the escape \u0000,
    # so the bytes tell cheaply whether the exact (slower) look is needed; a backslash is looked
    # for first (one byte: memchr, a tenth of the six-byte search; most results hold none)
    if b"\\" in body and b"\\u0000" in body and _holds_nul(data):
        raise Refused(400, "nul_character", "text may not hold a NUL character")
    return data, utf8


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


def validate(data: dict[str, Any], body: bytes | None = None) -> tuple[Result, bool]:
    """The project's one border for result documents (``result.result_from_data``: kind,
    version, nesting, finite numbers, text that is Unicode, the schema); 422 with its reason when
    it does not pass, 400 for text that is not Unicode (an unpaired surrogate: like a NUL, no
    database holds it). ``body``: the bytes ``data`` came from. Also returns whether the border
    changed the document (``result.checked_data``)."""
    try:
        return checked_data(data, "upload", body)
    except ResultError as exc:
        if exc.kind == "not_text":
            raise Refused(400, "not_text", str(exc).removeprefix("upload: ")) from None
        raise Refused(422, "invalid_result", str(exc).removeprefix("upload: ")) from None


def _stamp(when: Any) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def clock_ahead_reason(started: Any, received: Any) -> str:
    """Why a result dated ahead of its arrival is refused (the agent shows it, the server logs it)."""
    minutes = int(CLOCK_TOLERANCE.total_seconds() // 60)
    return (f"the result starts at {_stamp(started)} by its computer's clock, after it arrived ({_stamp(received)}; "
            f"{minutes} minutes are tolerated): that computer's clock is ahead. Set its clock (or check its clock "
            "battery) and run again; this result is not stored")


def room_key(site: str, room: str, hostname: str, run_id: str, browser: bool = False) -> str:
    """Same key as the fleet report (``Run.key``): per room when a room label is set, else per
    host; a browser self-test's results apart from the agents' (``store.BROWSER_KEYS``)."""
    if room:
        return f"{'browser room' if browser else 'room'}\x1f{site}\x1f{room}"
    return f"{'browser' if browser else 'host'}\x1f{hostname or run_id}"


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


# Check details the fleet reads (``fleet.step5.facts_of``): "services" of the checks that report
# them (``Check.reports_services``) and any check's "target" (what its figures were measured to,
# named in the fleet's chart titles); every other detail stays in the document only. A test
# compares the fleet from the database with the one from the same files.
FLEET_DETAILS = ("services", "target")


def summary_of(data: dict[str, Any], digests: list[tuple[str, str]] | None = None
               ) -> tuple[str, dict[str, str], list[str | None]]:
    """What the fleet view reads of a validated document, as JSON text, the requirements it
    points to (digest -> canonical JSON), and each judgement item's digest in order (None for
    an item without a requirement).

    The same document without the check details the fleet does not use, and with each judgement
    item cut to its verdict and its requirement (its texts in every language: most of a result's
    bytes) replaced by the SHA-256 digest of its canonical JSON; ``requirements`` holds each
    distinct one once. Read back (``fleetdb``) it is a document of the same Result model, about
    a fifth of the size (the measured values, in the checks, are all there). ``digests``: each
    judgement item's ``_digest``, when known already (every item then holds a requirement)."""
    reqs: dict[str, str] = {}
    refs: list[str | None] = []
    out = dict(data)
    checks = data.get("checks")
    if isinstance(checks, dict):
        out["checks"] = {name: _without_details(name, rec) for name, rec in checks.items()}
    judgement = data.get("judgement")
    if isinstance(judgement, dict) and isinstance(judgement.get("items"), list):
        items = []
        for i, item in enumerate(judgement["items"]):
            if isinstance(item, dict) and isinstance(item.get("requirement"), dict):
                ref, text = _digest(item["requirement"]) if digests is None else digests[i]
                reqs[ref] = text
                # the fleet reads an item's verdict and requirement; its value is in the checks
                item = {"status": item.get("status"), "requirement": ref}
            else:
                ref = None
            refs.append(ref)
            items.append(item)
        out["judgement"] = {**judgement, "items": items}
    return dumps(out), reqs, refs


# Requirements already digested in this process, by metric: (a copy, (digest, canonical JSON)).
# Every result of a fleet holds the same few dozen, so each upload's are found by comparing
# dicts (C speed) instead of serialising them again. Only for requirements made of the
# schema's own fields, whose values are strings and numbers (and texts in translations): there,
# equal dicts with numbers of the same types have the same canonical JSON (1 == 1.0 == True
# would otherwise mix texts that differ).
_DIGESTS: dict[Any, list[tuple[dict[str, Any], tuple[type, ...], tuple[str, str]]]] = {}
_DIGESTS_MAX = 4096
_REQUIREMENT_FIELDS = frozenset(("metric", "severity", "min", "max", "expect", "min_version", "label", "service",
                                 "why", "fix", "source", "translations"))


def _number_types(requirement: dict[str, Any]) -> tuple[type, ...]:
    get = requirement.get
    return type(get("min")), type(get("max")), type(get("expect"))


def _digest(requirement: dict[str, Any]) -> tuple[str, str]:
    """(SHA-256 of the canonical JSON, the canonical JSON) of a requirement."""
    plain = requirement.keys() <= _REQUIREMENT_FIELDS
    metric = requirement.get("metric")
    if plain:
        for known, types, hit in _DIGESTS.get(metric, ()):
            if requirement == known and _number_types(requirement) == types:
                return hit
    text = json.dumps(requirement, sort_keys=True, ensure_ascii=False, allow_nan=False)
    hit = (hashlib.sha256(text.encode("utf-8")).hexdigest(), text)
    if plain:
        if sum(map(len, _DIGESTS.values())) >= _DIGESTS_MAX:  # a flood of distinct ones starts over
            _DIGESTS.clear()
        known = json.loads(text)
        _DIGESTS.setdefault(metric, []).append((known, _number_types(known), hit))
    return hit


# The same, by each requirement's JSON bytes, for documents orjson parsed (``_typed``): the
# same bytes always parse to the same dict (types and order), so to the same canonical JSON.
# Only requirements of a usual size are kept (a schema-valid one may hold many translations).
_DIGESTS_BY_BYTES: dict[bytes, tuple[str, str]] = {}
_DIGEST_BYTES_MAX = 16384


def _digests_of(data: dict[str, Any], requirements: list[bytes]) -> list[tuple[str, str]]:
    """``_digest`` of each judgement item's requirement; ``requirements``: their JSON bytes, in
    order (``onepass.clean_struct``; ``data`` parsed by orjson from the same document)."""
    known = _DIGESTS_BY_BYTES
    out = []
    for item, raw in zip(data["judgement"]["items"], requirements):
        hit = known.get(raw)
        if hit is None:
            hit = _digest(item["requirement"])
            if len(raw) <= _DIGEST_BYTES_MAX:
                if len(known) >= _DIGESTS_MAX:  # a flood of distinct ones starts over
                    known.clear()
                known[raw] = hit
        out.append(hit)
    return out


def _without_details(name: str, record: Any) -> Any:
    if not isinstance(record, dict) or not isinstance(record.get("details"), dict):
        return record
    details = record["details"]
    kept = FLEET_DETAILS if name in described().service_reporters else FLEET_DETAILS[1:]
    out = {k: details[k] for k in kept if k in details}
    # the device the run used, by name only (a room's history lists a changed camera or microphone)
    if isinstance(details.get("device"), str):
        out["device"] = details["device"]
    if isinstance(details.get("source"), dict) and isinstance(details["source"].get("name"), str):
        out["source"] = {"name": details["source"]["name"]}
    return {**record, "details": out}


def row_of(data: dict[str, Any], result: Result | None = None, typed: tuple[Any, list[bytes]] | None = None
           ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """The indexed columns of a validated document (its fleet summary and fleet record among
    them), the checks it holds, and the requirements the summary points to. ``result``: the
    document as the border read it (None: read here); ``typed``: instead, the document as
    ``onepass.clean_struct`` read it from the bytes orjson parsed into ``data`` (``_typed``)."""
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
    received = utcnow()
    if started - received > CLOCK_TOLERANCE:
        raise Refused(400, "clock_ahead", clock_ahead_reason(started, received),
                      {"run_id": data["run_id"], "site": site, "room": room, "hostname": hostname,
                       "started": _stamp(started), "received": _stamp(received)})
    judgement = data.get("judgement")
    verdict = (judgement.get("verdict") or judgement.get("overall")) if isinstance(judgement, dict) else None
    # every check the run holds, whatever its status: the fleet state takes each check's newest
    # fact (a camera that fails now is the room's camera state now), as the fleet code does for files
    measured = sorted(data["checks"])
    if any(len(name) > TEXT_MAX for name in measured):
        raise Refused(422, "too_long", f"a check name is longer than {TEXT_MAX} characters")
    key = room_key(site, room, hostname, data["run_id"], browser=host.get("measured_by") == "browser")
    row = {"run_id": data["run_id"], "site": site, "room": room, "hostname": hostname, "room_key": key,
           "started": started, "received": received, "profile": profile, "verdict": verdict,
           "coverage": coverage(judgement)}
    if typed is not None:
        doc, requirements = typed
        row["summary"], reqs, refs = summary_of(data, _digests_of(data, requirements) if requirements else None)
        row["record"] = record_of_struct(doc, requirements, refs)
    else:
        row["summary"], reqs, refs = summary_of(data)
        if result is None:
            result = Result.from_dict(data, "upload")
        row["record"] = record_of(result, refs) if None not in refs else None
    # the room's history record (``run_history``): its figures, versions and devices, as JSON text
    row["history"] = dumps(history_record(room_run(data["run_id"], data, tuple(described().repeatability))))
    return row, measured, reqs


def _as_stored(body: bytes, data: dict[str, Any], changed: bool, utf8: bool = False) -> dict[str, Any] | None:
    """None: the bytes as they came are the document to store (no second serialisation); else
    the checked document, when the border changed it (a non-finite measured value made null) or
    the text is not plain UTF-8 (UTF-16 and a byte-order mark are JSON too, but not for the
    database). ``utf8``: the parser already found it plain UTF-8 (no 50 kB decode here)."""
    if changed or b"\x00" in body:
        return data
    if utf8:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return data if text.startswith("\ufeff") else None


def _typed(body: bytes, utf8: bool) -> tuple[Any, list[bytes]] | None:
    """The document checked in one typed decode (``onepass.clean_struct``, the fleet reader's
    border: its types closed, so each part it does not type is walked for nesting; msgspec
    refuses every number that is not finite): what it passes, ``validate`` passes unchanged
    (tests/test_border_onepass.py). Only for bytes orjson parsed (``utf8``): then ``data``
    holds only finite numbers and no integer past 64 bits, the same as the typed decode reads.
    None: ``validate`` decides, and names what it refuses."""
    return clean_struct(body) if utf8 else None


def check(body: bytes, max_bytes: int = MAX_BODY_BYTES, packs: bool = False) -> tuple[Any, ...]:
    """Everything about one upload that needs no database: ("ok", row, checks, document, reqs) with
    document None when the bytes themselves are to be stored, or ("refused", status, code,
    reason, facts). Plain values only, so it can run in a worker process (``Checkers``).
    ``packs``: the document to store comes packed (``packed``: for SQLite), never None."""
    try:
        data, utf8 = _parse(body, max_bytes)
        typed = _typed(body, utf8)
        if typed is not None:
            row, measured, reqs = row_of(data, typed=typed)
            changed = False
        else:
            result, changed = validate(data, body)
            row, measured, reqs = row_of(data, result)
    except Refused as exc:
        return ("refused", exc.status, exc.code, exc.reason, exc.facts)
    document = _as_stored(body, data, changed, utf8)
    if packs:
        document = packed_document(RawJSONBytes(body) if document is None else document)
    return ("ok", row, measured, document, reqs)


_SENT_MAX = 4096


def _check_loop(conn: Any) -> None:
    """A checker process: an upload in (``_request``), ``check``'s outcome out (pickled), until
    the pipe closes. A requirement's text (most of an outcome's bytes) is sent the first time
    only; after that its digest alone, with None for the text (``Checkers`` keeps the texts it
    was sent)."""
    sent: set[str] = set()
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        outcome = check(raw[_HEAD:], int.from_bytes(raw[1:_HEAD], "big"), raw[0] == 1)
        if outcome[0] == "ok":
            if len(sent) > _SENT_MAX:
                sent.clear()
            reqs = {d: None if d in sent else t for d, t in outcome[4].items()}
            sent.update(outcome[4])
            outcome = (*outcome[:4], reqs)
        conn.send_bytes(pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL))


_HEAD = 9  # bytes before an upload's body on a checker's pipe: whether it packs (1 byte), the size limit (8)


def _request(body: bytes, max_bytes: int, packs: bool) -> bytes:
    """What a checker is sent: whether it packs the document, the size limit, then the body's
    bytes as they came. Not pickled: ``multiprocessing``'s pickler costs the server a copy of
    its dispatch table per message (measured with ``py-spy --gil``: pickling the 57 kB body was
    6 % of the server's GIL time)."""
    return b"".join((b"\x01" if packs else b"\x00", max_bytes.to_bytes(_HEAD - 1, "big"), body))


class Checkers:
    """Worker processes for ``check``: the border is pure Python and CPU-bound (a 50 kB result
    takes about a millisecond), so with one process the GIL caps ingest at one core.

    Each worker is a process with its own pipe; a request thread takes an idle worker, sends
    the body and reads the outcome itself (no dispatcher thread between them: measured, the
    executor's two extra hand-offs cost the server process about as much as storing the row).
    Started with "spawn" (no fork of a threaded server). A worker that died (killed) is
    replaced, and the upload in hand is checked here. ``packs``: the workers pack the documents
    (``check``'s ``packs``: for a store on SQLite), out of the server's interpreter."""

    def __init__(self, workers: int, packs: bool = False) -> None:
        import queue

        self.workers = workers
        self.packs = packs
        self.lock = threading.Lock()
        self.idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.procs: dict[Any, Any] = {}  # pipe -> its process
        self.texts: dict[str, str] = {}  # requirement digest -> text, as the workers sent them
        self.started = False
        self.closed = False

    def _spawn(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_check_loop, args=(theirs,), daemon=True, name="readiness-ingest-check")
        proc.start()
        theirs.close()
        with self.lock:
            self.procs[ours] = proc
        self.idle.put(ours)

    def _start(self) -> None:
        with self.lock:
            if self.started:
                return
            self.started = True
        for _ in range(self.workers):
            self._spawn()

    def warm(self) -> None:
        """Start the workers now and wait until each has imported the border, not on the first upload."""
        self._start()
        for _ in range(self.workers):
            self(b"{}", 16)

    def __call__(self, body: bytes, max_bytes: int) -> tuple[Any, ...]:
        self._start()
        conn = self.idle.get()
        try:
            conn.send_bytes(_request(body, max_bytes, self.packs))
            outcome = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the worker died: replace it, and check this one here
            self._retire(conn)
            if not self.closed:
                self._spawn()
            return check(body, max_bytes, self.packs)
        self.idle.put(conn)
        return self._with_texts(outcome) or check(body, max_bytes, self.packs)

    def _with_texts(self, outcome: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The outcome with every requirement's text: those sent before come from ``texts``;
        None when one is not there (more distinct requirements than it keeps: check here)."""
        if outcome[0] != "ok":
            return outcome
        reqs = outcome[4]
        for digest, text in reqs.items():
            if text is None:
                text = reqs[digest] = self.texts.get(digest)
                if text is None:
                    return None
            elif len(self.texts) < _SENT_MAX:
                self.texts.setdefault(digest, text)
        return outcome

    def _retire(self, conn: Any) -> None:
        with self.lock:
            proc = self.procs.pop(conn, None)
        conn.close()
        if proc is not None:
            proc.kill()
            proc.join(5)

    def close(self) -> None:
        self.closed = True
        with self.lock:
            conns = list(self.procs)
        for conn in conns:
            self._retire(conn)


def _revoked(store: Store, token: str) -> bool:
    found = store.lookup_token(token)
    return found is None or found.revoked is not None


def ingest(store: Store, body: bytes, token_site: str, max_bytes: int = MAX_BODY_BYTES,
           checker: Any = None, token: str | None = None) -> dict[str, Any]:
    """Check and store one uploaded result for a token of ``token_site``; ``checker``: where
    ``check`` runs (a ``Checkers`` pool; None: here); ``token``: the upload token's secret, to
    be checked again as the result is stored (None: the caller vouches for the site).

    Returns the success body ({"run_id", "stored": "new" | "already"}); raises ``Refused``
    (a 4xx) or ``store.Unavailable`` (503: the client keeps the result and retries).
    """
    outcome = checker(body, max_bytes) if checker is not None else check(body, max_bytes, store.packs_documents)
    if outcome[0] == "refused":
        raise Refused(*outcome[1:])
    _, row, measured, document, reqs = outcome
    if document is None:  # the bytes as they came, checked UTF-8 (``_as_stored``)
        document = RawJSONBytes(body)
    if row["site"] != token_site:
        if token is not None and _revoked(store, token):  # the gate may have known it a moment ago
            raise Refused(401, "revoked_token", REVOKED_REASON)
        raise Refused(403, "wrong_site", f"this token submits results for site {token_site!r} only; "
                                         f"the result is labelled site {row['site']!r}", run_id=row["run_id"])
    stored, other_site = store.store(row, document, measured, reqs, token)
    if other_site == REVOKED:
        raise Refused(401, "revoked_token", REVOKED_REASON)
    if not stored and other_site != row["site"]:
        raise Refused(409, "run_id_taken", "a result with this run id is already stored for another site", run_id=row["run_id"])
    return {"run_id": row["run_id"], "stored": "new" if stored else "already"}
