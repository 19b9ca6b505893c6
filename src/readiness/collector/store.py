"""The collector's database: tables, idempotent ingest, tokens, retention, streaming reads.

SQLAlchemy Core 2 over SQLite (embedded, the default for one server) or PostgreSQL (psycopg 3).
The two differ in one place only: the INSERT construct with ON CONFLICT, which SQLAlchemy
offers per dialect with the same API (``_insert``). The schema is created and upgraded by
Alembic (``migrations/``); ``Store.migrate`` runs it, so a database made by an older collector
is brought up to date when the server starts.

Tables:
- ``results``: one row per run, the whole document (JSONB on PostgreSQL, JSON text on SQLite)
  plus indexed columns: site, room, host, start time, profile, verdict, coverage (the share of
  the checks its profile needs that measured).
- ``latest``: per room (or per host without a room label), the newest run (``check_name`` "")
  and the newest run holding each check (whatever its status: its newest fact). Updated in the same transaction as the insert;
  retention never deletes a run this table points to, so the fleet state survives pruning.
  Browser self-tests have keys of their own (``BROWSER_KEYS``), never an agent's room, and
  retention takes them by age.
- ``summaries``: per run, the part of its document the fleet view reads (a fifth of it).
- ``day_counts``: runs per UTC day and verdict (the fleet's trend), kept at ingest and pruning.
- ``requirements``: each distinct requirement (as a judgement item holds it, texts and
  translations included) once, by digest; a result's ``summary`` points to them. A fleet of
  10 000 rooms judged by a few profiles holds a few dozen.
- ``tokens``: upload tokens (bound to a site), site links (bound to a site: the self-test
  page's results of that site are collected) and read tokens, as SHA-256 digests only. A token
  is 256 random bits, so a fast hash is enough: nothing to guess from the digest.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import (JSON, Column, DateTime, Float, Index, Integer, MetaData, String, Table, and_, create_engine,
                        delete, event, func, or_, select, update)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from readiness.collector.jsontext import loads

TEXT_MAX = 200  # site, room, profile name; longer labels are refused at ingest
BROWSER_KEYS = ("browser room\x1f", "browser\x1f")  # how ``latest`` keys of browser self-tests begin
HOST_MAX = 255

metadata = MetaData()
_DOCUMENT = JSON().with_variant(postgresql.JSONB(), "postgresql")

results = Table(
    "results", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("site", String(TEXT_MAX), nullable=False),
    Column("room", String(TEXT_MAX), nullable=False),
    Column("hostname", String(HOST_MAX), nullable=False),
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("received", DateTime(timezone=True), nullable=False),
    Column("profile", String(TEXT_MAX), nullable=False),
    Column("verdict", String(8), nullable=True),  # the judgement's verdict (PARTIAL too); None: not judged
    Column("coverage", Float, nullable=True),  # share of the list's requirements measured, 0..1
    Column("document", _DOCUMENT, nullable=False),
    Index("ix_results_site_started", "site", "started"),
    Index("ix_results_site_room", "site", "room"),
    Index("ix_results_hostname", "hostname"),
    Index("ix_results_started", "started"),
    Index("ix_results_profile", "profile"),
    Index("ix_results_verdict", "verdict"),
    Index("ix_results_received", "received"),  # the live view's change stamp (newest arrival)
)

latest = Table(
    "latest", metadata,
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), primary_key=True),
    Column("check_name", String(TEXT_MAX), primary_key=True),  # "" = the room's newest run
    Column("run_id", String(32), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Index("ix_latest_run_id", "run_id"),
)

# What the fleet view reads of a run (``ingest.summary_of``): the document without the check
# details it does not use, each judgement item its verdict and a digest into ``requirements``.
# A table apart: SQLite reaches a column after a 40 kB document only by reading its pages.
# Runs stored before revision 0002 have none (the fleet reads their whole document).
summaries = Table(
    "summaries", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("summary", _DOCUMENT, nullable=False),
)

# The fleet's trend: runs per UTC day of their start and verdict (judged runs only), added to in
# the transaction that stores the runs and subtracted from in the one that prunes them, so the
# view reads a row per day instead of a page of every stored run (revision 0004).
day_counts = Table(
    "day_counts", metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD
    Column("verdict", String(8), primary_key=True),
    Column("runs", Integer, nullable=False),
)

requirements = Table(
    "requirements", metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the requirement's canonical JSON
    Column("requirement", _DOCUMENT, nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # "upload" | "link" | "read"
    Column("site", String(TEXT_MAX), nullable=False),  # upload, link: the one site it may submit for; read: ""
    Column("digest", String(64), nullable=False, unique=True),
    Column("hint", String(12), nullable=False),  # the token's first characters, to tell tokens apart in a list
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True), nullable=True),
    Column("expires", DateTime(timezone=True), nullable=True),  # None: until revoked
    Column("last_used", DateTime(timezone=True), nullable=True),  # to the minute or so (``Store.touch_token``)
)

# Who did what (``readiness.collector.access``: sign-ins, tokens, links, role changes, exports).
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(300), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(300), nullable=False),
    Column("site", String(TEXT_MAX), nullable=False),
    Column("detail", String(1000), nullable=False),
    Index("ix_audit_at", "at"),
)

# Sign-in sessions, by the SHA-256 of their secret (the cookie holds the secret, signed).
sessions = Table(
    "sessions", metadata,
    Column("digest", String(64), primary_key=True),
    Column("subject", String(300), nullable=False),
    Column("name", String(300), nullable=False),
    Column("role", String(16), nullable=False),  # "" while the sign-in is pending
    Column("sites", String(4000), nullable=False),  # JSON list of sites; "" for every site
    Column("pending", String(2000), nullable=False),  # JSON: state, nonce, PKCE verifier of a pending sign-in
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True), nullable=True),
    Index("ix_sessions_expires", "expires"),
)

settings = Table(
    "settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(1000), nullable=False),
)

TOKEN_PREFIX = "rdy_"
REVOKED = "\x00revoked"  # ``Store.store``'s answer for an upload whose token is no longer live (no site is this)
KINDS = ("upload", "link", "read", "share")  # share: a partner's read of one site (``collector.access``)
MIGRATION_LOCK = 0x72656164  # PostgreSQL advisory lock key held while the schema is upgraded ("read")


class StoreError(Exception):
    """A database the collector cannot use (bad URL, not created, newer schema); plain words."""


class Unavailable(Exception):
    """The database is not reachable now (stopped, restarting, network): the client retries later."""


def day_of(started: datetime) -> str:
    """The UTC day of a run's start, as ``day_counts`` keys it (the fleet code's day for files too)."""
    return aware(started).astimezone(timezone.utc).date().isoformat()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def sqlalchemy_url(url: str, create: bool = True) -> str:
    """The user's URL as SQLAlchemy takes it: ``postgresql://`` means psycopg 3. ``create``
    false: a SQLite file must exist already (a reader must not leave an empty database behind)."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        raise StoreError(f"not a database URL: {url!r} (give sqlite:///PATH or postgresql://USER@HOST/DB)") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise StoreError("give SQLite a file: sqlite:///PATH/readiness.db (a memory database would lose everything)")
        path = Path(parsed.database).expanduser().resolve()
        if not path.parent.is_dir():
            raise StoreError(f"no folder {path.parent} for the SQLite database")
        if not create and not path.exists():
            raise StoreError(f"no database file {path} (`readiness serve --db URL` creates it)")
        if create:
            _create_private(path)
        _check_sqlite_file(path)
    else:
        raise StoreError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")
    return parsed.render_as_string(hide_password=False)


_SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def _create_private(path: Path) -> None:
    """Make a new database file readable and writable by its owner only (0600), before SQLite
    opens it: SQLite gives its -wal and -shm files the mode of the database file, so all three
    stay private (it would make them 0644 under the usual umask). An existing file keeps its mode."""
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the database file {path}: {exc.strerror or exc}") from None
    os.close(fd)


def _check_sqlite_file(path: Path) -> None:
    """A StoreError, in plain words, unless ``path`` is a regular file that is empty (new) or
    starts as an SQLite database does: never opened if it is a pipe or device (no wait), and
    never handed to SQLite if it is something else (its "file is not a database" is no message)."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open the database file {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file (a folder, pipe or device), so not a database")
        head = os.read(fd, len(_SQLITE_HEADER)) if st.st_size else b""
    finally:
        os.close(fd)
    if head and head != _SQLITE_HEADER:
        raise StoreError(f"{path} is not an SQLite database (it holds something else); give the collector's "
                         "database file, or a new name for a new one")


def redacted(url: str) -> str:
    """The URL without its password, for logs and reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "<database>"


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (the fleet page) never block the writer; FULL: a commit the client was told
    # about survives a power cut, not only a killed process
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class RawJSON(str):
    """A document's JSON text, already checked, stored as it came (no second serialisation)."""


def _serialize(value: Any) -> str:
    # a RawJSON is a str: the drivers take it as it is (no copy of a 50 kB text)
    return value if isinstance(value, RawJSON) else json.dumps(value, ensure_ascii=False, allow_nan=False)


def _deserialize(text: str) -> Any:
    return loads(text)


class _Batcher:
    """Group commit: callers hand in work and wait; one thread commits whatever has gathered in
    one transaction. With 32 agents uploading at once that is one fsync for dozens of results.
    A batch that fails as a whole (one bad row) is retried one item at a time, so one item's
    error never becomes another's; a database that is away fails every waiting caller alike."""

    MAX = 64
    WAIT_S = 60.0

    def __init__(self, commit: Callable[[list[Any]], list[Any]]) -> None:
        self.commit = commit
        self.queue: queue.SimpleQueue[list[Any]] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def submit(self, item: Any) -> Any:
        slot: list[Any] = [item, threading.Event(), None, None]  # item, done, outcome, error
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True, name="group-commit")
                self.thread.start()
        self.queue.put(slot)
        if not slot[1].wait(self.WAIT_S):
            raise Unavailable("the database did not commit in time")
        if slot[3] is not None:
            raise slot[3]
        return slot[2]

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.MAX:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self._run(batch)

    def _run(self, batch: list[list[Any]]) -> None:
        try:
            outcomes = self.commit([slot[0] for slot in batch])
        except Unavailable as exc:
            for slot in batch:
                slot[3] = exc
        except Exception as exc:  # noqa: BLE001 - handed to the caller, never lost in this thread
            if len(batch) == 1:
                batch[0][3] = exc
            else:
                for slot in batch:
                    self._run([slot])
                return
        else:
            for slot, outcome in zip(batch, outcomes):
                slot[2] = outcome
        for slot in batch:
            slot[1].set()


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@dataclass
class Token:
    id: int
    kind: str
    site: str
    hint: str
    created: datetime
    revoked: datetime | None  # an expired token reads as revoked at its expiry
    expires: datetime | None = None
    last_used: datetime | None = None

    @property
    def expired(self) -> bool:
        return self.expires is not None and self.revoked == self.expires


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    """One database. Thread-safe: each call takes a connection from the engine's pool."""

    def __init__(self, url: str, pool_size: int = 8, create: bool = True) -> None:
        self.url = url
        target = sqlalchemy_url(url, create)
        if target.startswith("sqlite"):
            self.engine: Engine = create_engine(target, connect_args={"timeout": 30, "check_same_thread": False},
                                                pool_size=pool_size, max_overflow=pool_size * 2,
                                                json_serializer=_serialize, json_deserializer=_deserialize)
            event.listen(self.engine, "connect", _on_sqlite_connect)
        else:
            try:
                import psycopg  # noqa: F401 - say plainly when the server extra is missing
            except ImportError:
                raise StoreError("PostgreSQL needs psycopg: pip install 'readiness[server]'") from None
            # pre-ping: after PostgreSQL restarts, pooled connections are dead; find out before use
            self.engine = create_engine(target, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True,
                                        pool_timeout=10, connect_args={"connect_timeout": 5}, json_serializer=_serialize,
                                        json_deserializer=_deserialize)
        self.dialect = self.engine.dialect.name
        self.errors = Tally(ERROR_KINDS)
        self._insert = _insert(self.dialect)
        ins = self._insert(latest)
        newer = or_(latest.c.started < ins.excluded.started,
                    and_(latest.c.started == ins.excluded.started, latest.c.run_id < ins.excluded.run_id))
        self._latest_upsert = ins.on_conflict_do_update(
            index_elements=[latest.c.room_key, latest.c.check_name],
            set_={"run_id": ins.excluded.run_id, "started": ins.excluded.started}, where=newer)
        self._batcher = _Batcher(self._store_batch)
        self._requirement_insert = self._insert(requirements).on_conflict_do_nothing(
            index_elements=[requirements.c.digest])
        self._requirements_known: set[str] = set()  # digests this process has seen committed
        self._touched: dict[int, float] = {}  # token id -> when this process last noted its use
        self._touch_lock = threading.Lock()
        # RETURNING tells whether the row went in (rowcount is not dependable across drivers)
        days = self._insert(day_counts)
        self._day_add = days.on_conflict_do_update(index_elements=[day_counts.c.day, day_counts.c.verdict],
                                                   set_={"runs": day_counts.c.runs + days.excluded.runs})
        self._result_insert = (self._insert(results).on_conflict_do_nothing(index_elements=[results.c.run_id])
                               .returning(results.c.run_id))

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the tables, or bring an older database up to this collector's schema."""
        from readiness.collector.migrations import upgrade  # lazy: the migrations import this module's tables

        with self._guard(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # replicas starting together: one upgrades, the others wait here, then find the head
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            upgrade(conn)

    def require_schema(self) -> None:
        """For readers: the database must exist and be of a schema this collector knows."""
        from readiness.collector.migrations import current, head  # lazy: the migrations import this module's tables

        with self._guard(), self.engine.connect() as conn:
            rev = current(conn)
        if rev is None:
            raise StoreError(f"{redacted(self.url)} holds no readiness data yet "
                             "(`readiness serve --db URL` creates it)")
        if rev != head():
            raise StoreError(f"{redacted(self.url)} has schema {rev}; this readiness knows up to {head()}: "
                             "update readiness, or start `readiness serve --db URL` once to upgrade it")

    def _guard(self) -> Any:
        return _Guard(self.url, self.errors)

    # --- health ----------------------------------------------------------------------------

    def queue_depth(self) -> int:
        """Results handed in and waiting for the group commit (this process)."""
        return self._batcher.queue.qsize()

    def ping(self, timeout_s: float = 2.0) -> str | None:
        """None when the database answers a query within ``timeout_s``, else why not (one line).

        SQLite: a new read-only connection to the file (a pooled one keeps a file open that has
        been removed or replaced); PostgreSQL: a pooled connection and ``SELECT 1`` under a
        statement timeout. Either runs in a thread of its own, waited for at most ``timeout_s``:
        a database that hangs makes the answer "not ready", never a hung probe."""
        outcome: list[str | None] = []

        def probe() -> None:
            try:
                outcome.append(self._probe(timeout_s))
            except Exception as exc:  # noqa: BLE001 - any failure is "not ready", said in one line
                text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
                outcome.append((text[0] if text else type(exc).__name__)[:200])

        worker = threading.Thread(target=probe, daemon=True, name="readyz")
        worker.start()
        worker.join(timeout_s)
        if not outcome:
            return f"no answer within {timeout_s:g} s"
        return outcome[0]

    def _probe(self, timeout_s: float) -> str | None:
        if self.dialect == "sqlite":
            import sqlite3

            path = Path(self.engine.url.database or "").resolve()
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=timeout_s)
            try:
                conn.execute("SELECT count(*) FROM alembic_version").fetchone()
            finally:
                conn.close()
            return None
        with self.engine.connect() as conn:
            with conn.begin():
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
                conn.exec_driver_sql("SELECT 1").scalar_one()
        return None

    # --- ingest ----------------------------------------------------------------------------

    def store(self, row: dict[str, Any], document: dict[str, Any] | RawJSON, checks: list[str],
              reqs: dict[str, str] | None = None, token: str | None = None) -> tuple[bool, str | None]:
        """Insert one run, once. Returns (True, None) when stored now, or (False, site of the
        row already stored under this run id). The ``latest`` rows move in the same transaction.

        Calls from many threads at once are committed together (group commit, ``_Batcher``):
        one durable commit for many results instead of one each; every caller still returns
        only once its row is committed. ``reqs``: the requirements the row's summary points to
        (digest -> canonical JSON, ``ingest.summary_of``). ``token``: the upload token's secret,
        checked again in the storing transaction (a token revoked a moment ago stores nothing,
        whichever process revoked it): when it is no longer live, (False, ``REVOKED``)."""
        return self._batcher.submit((row, document, checks, reqs or {}, digest(token) if token else None))

    def _store_batch(self, items: list[tuple[Any, ...]]) -> list[tuple[bool, str | None]]:
        """Store a batch in one transaction with a handful of statements, whatever its size: the
        results in one INSERT (RETURNING tells which went in), then their summaries and their
        ``latest`` rows. A run id twice in one batch: the first is stored, the second is "already"."""
        with self._guard(), self.engine.begin() as conn:
            # the batch's requirements not yet known here, in one statement (usually none)
            new = {d: t for item in items for d, t in (item[3] if len(item) > 3 else {}).items()
                   if d not in self._requirements_known}
            if new:
                conn.execute(self._requirement_insert, [{"digest": d, "requirement": RawJSON(t)} for d, t in new.items()])
            wanted = {item[4] for item in items if len(item) > 4 and item[4]}
            live = set(conn.execute(select(tokens.c.digest).where(tokens.c.digest.in_(wanted),
                                                                  tokens.c.revoked.is_(None),
                                                                  _unexpired())).scalars()) if wanted else set()
            refused = {i for i, item in enumerate(items) if len(item) > 4 and item[4] and item[4] not in live}
            first: dict[str, int] = {}  # run id -> index of the item that may store it
            for i, item in enumerate(items):
                if i not in refused:
                    first.setdefault(item[0]["run_id"], i)
            # the row is kept as given: a batch that failed is tried again one item at a time
            params = [{**{k: v for k, v in items[i][0].items() if k != "summary"}, "document": items[i][1]}
                      for i in first.values()]
            stored = set(conn.execute(self._result_insert, params).scalars()) if params else set()
            others = [run_id for run_id in first if run_id not in stored]
            sites = dict(conn.execute(select(results.c.run_id, results.c.site).where(results.c.run_id.in_(others)))
                         .all()) if others else {}
            winners = [items[first[run_id]] for run_id in stored]
            summaries_new = [{"run_id": row["run_id"], "summary": RawJSON(row["summary"])}
                             for row, *_ in winners if row.get("summary") is not None]
            if summaries_new:
                conn.execute(summaries.insert(), summaries_new)
            newest: dict[tuple[str, str], dict[str, Any]] = {}  # one row per key: the newest run of the batch
            for row, _document, checks, *_ in winners:
                for name in ["", *checks]:
                    key = (row["room_key"], name)
                    had = newest.get(key)
                    if had is None or (had["started"], had["run_id"]) < (row["started"], row["run_id"]):
                        newest[key] = {"room_key": row["room_key"], "check_name": name, "run_id": row["run_id"],
                                       "started": row["started"]}
            if newest:
                conn.execute(self._latest_upsert, list(newest.values()))
            judged = Counter((day_of(row["started"]), row["verdict"]) for row, *_ in winners if row["verdict"] is not None)
            if judged:
                conn.execute(self._day_add, [{"day": d, "verdict": v, "runs": n} for (d, v), n in sorted(judged.items())])
        self._requirements_known.update(new)  # only once committed
        return [(False, REVOKED) if i in refused
                else (True, None) if first[item[0]["run_id"]] == i and item[0]["run_id"] in stored
                else (False, items[first[item[0]["run_id"]]][0]["site"] if item[0]["run_id"] in stored
                      else sites.get(item[0]["run_id"]))
                for i, item in enumerate(items)]

    # --- tokens ----------------------------------------------------------------------------

    def add_token(self, kind: str, site: str, expires: datetime | None = None) -> tuple[Token, str]:
        """A new token; the secret is returned here once and never stored. ``expires``: when it
        stops working by itself (None: until revoked)."""
        if kind not in KINDS:
            raise ValueError(kind)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        with self._guard(), self.engine.begin() as conn:
            new_id = conn.execute(tokens.insert().values(kind=kind, site=site, digest=digest(secret), hint=secret[:10],
                                                         created=now, expires=expires)).inserted_primary_key[0]
        return Token(new_id, kind, site, secret[:10], now, None, expires), secret

    def lookup_token(self, secret: str) -> Token | None:
        """The token with this secret (revoked and expired ones too: the refusal can say so), or None."""
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.digest == digest(secret))).first()
        return None if row is None else _token(row)

    def list_tokens(self) -> list[Token]:
        with self._guard(), self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(select(tokens).order_by(tokens.c.id))]

    TOUCH_EVERY_S = 60.0

    def touch_token(self, token: Token) -> None:
        """Note that ``token`` was used now: written at most once a minute per token and process
        (an agent's every upload must not become a write of its own)."""
        now = time.monotonic()
        with self._touch_lock:
            if now - self._touched.get(token.id, -1e9) < self.TOUCH_EVERY_S:
                return
            self._touched[token.id] = now
        with self._guard(), self.engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.id == token.id).values(last_used=utcnow()))

    def revoke_tokens(self, token_id: int | None = None, site: str | None = None) -> int:
        """Revoke one token by id, or every live upload token and site link of a site; returns how many."""
        return len(self.revoke(token_id, site))

    def revoke(self, token_id: int | None = None, site: str | None = None,
               kinds: tuple[str, ...] = ("upload", "link")) -> list[Token]:
        """Revoke one token by id, or every live token of ``kinds`` of a site; returns those revoked."""
        cond = tokens.c.revoked.is_(None)
        if token_id is not None:
            cond = and_(cond, tokens.c.id == token_id)
        if site is not None:
            cond = and_(cond, tokens.c.site == site, tokens.c.kind.in_(kinds))
        with self._guard(), self.engine.begin() as conn:
            gone = [_token(r) for r in conn.execute(select(tokens).where(cond, _unexpired()))]
            if gone:
                conn.execute(update(tokens).where(tokens.c.id.in_([t.id for t in gone])).values(revoked=utcnow()))
        return gone

    # --- audit log, sessions, settings -----------------------------------------------------

    def add_audit(self, actor: str, action: str, target: str = "", site: str = "", detail: str = "") -> None:
        with self._guard(), self.engine.begin() as conn:
            conn.execute(audit.insert().values(at=utcnow(), actor=actor[:300], action=action[:32], target=target[:300],
                                               site=site[:TEXT_MAX], detail=detail[:1000]))

    def list_audit(self, limit: int = 1000, since: datetime | None = None) -> list[dict[str, Any]]:
        """The newest entries first."""
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if since is not None:
            query = query.where(audit.c.at >= since)
        with self._guard(), self.engine.connect() as conn:
            return [{"at": aware(r.at), "actor": r.actor, "action": r.action, "target": r.target, "site": r.site,
                     "detail": r.detail} for r in conn.execute(query)]

    def prune_audit(self, keep: timedelta, now: datetime | None = None) -> int:
        """Delete audit entries older than ``keep``, and every session that is over (expired, signed
        out, or a sign-in never finished): the audit log keeps who signed in, not the sessions."""
        now = now or utcnow()
        cutoff = now - keep
        with self._guard(), self.engine.begin() as conn:
            conn.execute(delete(sessions).where(or_(sessions.c.expires < now, sessions.c.ended.is_not(None))))
            return conn.execute(delete(audit).where(audit.c.at < cutoff)).rowcount

    def setting(self, name: str, make: Callable[[], str]) -> str:
        """The stored setting ``name``; made by ``make()`` and stored the first time (the first
        of several processes asking at once wins, and all get its value)."""
        with self._guard(), self.engine.begin() as conn:
            value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()
            if value is None:
                conn.execute(self._insert(settings).on_conflict_do_nothing(index_elements=[settings.c.name])
                             .values(name=name, value=make()))
                value = conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar_one()
        return value

    def put_session(self, secret: str, **values: Any) -> None:
        with self._guard(), self.engine.begin() as conn:
            conn.execute(sessions.insert().values(digest=digest(secret), created=utcnow(), **values))

    def get_session(self, secret: str) -> dict[str, Any] | None:
        """A session neither ended nor expired, or None."""
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(select(sessions).where(sessions.c.digest == digest(secret), sessions.c.ended.is_(None),
                                                      sessions.c.expires > utcnow())).first()
        return None if row is None else dict(row._mapping)

    def end_session(self, secret: str) -> bool:
        with self._guard(), self.engine.begin() as conn:
            return bool(conn.execute(update(sessions).where(sessions.c.digest == digest(secret),
                                                            sessions.c.ended.is_(None)).values(ended=utcnow())).rowcount)

    # --- retention -------------------------------------------------------------------------

    PRUNE_BATCH = 5000  # runs deleted per transaction
    PRUNE_PAUSE_S = 0.05  # between transactions: the writers waiting for the lock go first

    def prune(self, keep: timedelta, now: datetime | None = None, batch: int | None = None,
              pause_s: float | None = None) -> int:
        """Delete runs that started before ``now - keep``, except those the fleet state points
        to (each room's newest run and its newest measurement of every check). A browser
        self-test is a moment's test of one person's device, not a room's standing state: its
        runs go by age like any other (each run without a room label is a state of its own,
        which would otherwise be kept for ever).

        In transactions of at most ``batch`` runs (and their summaries), with a pause between
        them: a year of a big fleet goes in many short transactions, none holding the write
        lock (SQLite) or many row locks (PostgreSQL) long enough to stall ingest."""
        cutoff = (now or utcnow()) - keep
        batch = batch or self.PRUNE_BATCH
        pause_s = self.PRUNE_PAUSE_S if pause_s is None else pause_s
        held = select(latest.c.run_id)
        with self._guard(), self.engine.begin() as conn:
            conn.execute(delete(latest).where(latest.c.started < cutoff,
                                              or_(*(latest.c.room_key.startswith(p) for p in BROWSER_KEYS))))
        gone = 0
        while True:
            with self._guard(), self.engine.begin() as conn:
                # the oldest first, through the index on ``started``; a run ``latest`` holds is never taken
                ids = list(conn.execute(select(results.c.run_id)
                                        .where(results.c.started < cutoff, results.c.run_id.not_in(held))
                                        .order_by(results.c.started).limit(batch)).scalars())
                if ids:
                    conn.execute(delete(summaries).where(summaries.c.run_id.in_(ids)))
                    # what went (RETURNING: exactly the rows deleted) comes off the trend in the same transaction
                    went = conn.execute(delete(results).where(results.c.run_id.in_(ids), results.c.run_id.not_in(held))
                                        .returning(results.c.started, results.c.verdict)).all()
                    gone += len(went)
                    judged = Counter((day_of(started), verdict) for started, verdict in went if verdict is not None)
                    for (day, verdict), n in sorted(judged.items()):
                        conn.execute(update(day_counts).where(day_counts.c.day == day, day_counts.c.verdict == verdict)
                                     .values(runs=day_counts.c.runs - n))
                    if judged:
                        conn.execute(delete(day_counts).where(day_counts.c.runs <= 0))
            if len(ids) < batch:
                return gone
            time.sleep(pause_s)

    # --- reads -----------------------------------------------------------------------------

    def count(self, sites: frozenset[str] | None = None) -> int:
        """Runs stored (of ``sites`` only, when given)."""
        query = select(func.count()).select_from(results)
        if sites is not None:
            query = query.where(results.c.site.in_(sites))
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def document(self, run_id: str) -> dict[str, Any] | None:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(select(results.c.document).where(results.c.run_id == run_id)).scalar()

    def site_of(self, run_id: str) -> str | None:
        """The site a run was stored for, or None when there is no such run."""
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(select(results.c.site).where(results.c.run_id == run_id)).scalar()

    def documents(self, all_runs: bool = False, batch: int = 500) -> Iterator[tuple[str, dict[str, Any]]]:
        """(run id, document) oldest first, streamed in batches (never all in memory): every
        run, or only the runs the fleet state holds (newest per room and per room and check)."""
        query = select(results.c.run_id, results.c.document)
        if not all_runs:
            query = query.where(results.c.run_id.in_(select(latest.c.run_id)))
        query = query.order_by(results.c.started, results.c.run_id)
        with self._guard(), self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield row[0], row[1]

    def summaries(self, batch: int = 1000, part: tuple[str | None, str | None] = (None, None)
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(run id, summary) of the runs the fleet state holds (newest per room and per room and
        check), in run id order (the order of the index: sorting by time copied every summary
        into a temporary tree, 0.1 s per 1 000), streamed in batches: the summary, or the whole document of a row
        stored before summaries were kept. Judgement items point to ``requirement_texts``.
        ``part``: only run ids from its first (inclusive) to its second (exclusive); None: open."""
        held = select(latest.c.run_id).distinct()
        lo, hi = part  # the part bounds the subquery too: its index is then searched, not scanned
        if lo is not None:
            held = held.where(latest.c.run_id >= lo)
        if hi is not None:
            held = held.where(latest.c.run_id < hi)
        query = (select(results.c.run_id, func.coalesce(summaries.c.summary, results.c.document).label("doc"))
                 .select_from(results.outerjoin(summaries, summaries.c.run_id == results.c.run_id))
                 .where(results.c.run_id.in_(held)).order_by(results.c.run_id))
        with self._guard(), self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield row[0], row[1]

    def requirement_texts(self) -> dict[str, Any]:
        """Every stored requirement by digest (a few dozen)."""
        with self._guard(), self.engine.connect() as conn:
            return {d: r for d, r in conn.execute(select(requirements.c.digest, requirements.c.requirement))}

    def per_day(self, sites: frozenset[str] | None = None) -> dict[date, dict[str, int]]:
        """Runs per UTC day and verdict, over every stored run (the fleet trend): the
        ``day_counts`` rows ingest and retention keep (one per day and verdict, not one per run).
        Of ``sites`` only, when given: counted from the runs stored for them (``day_counts``
        holds no site), by the database (one row per day and verdict comes back)."""
        out: dict[date, dict[str, int]] = {}
        if sites is not None:
            return self._per_day_of(sites)
        query = select(day_counts.c.day, day_counts.c.verdict, day_counts.c.runs).where(day_counts.c.runs > 0)
        with self._guard(), self.engine.connect() as conn:
            for day, verdict, n in conn.execute(query):
                out.setdefault(date.fromisoformat(day), {})[verdict] = n
        return out

    def _per_day_of(self, sites: frozenset[str]) -> dict[date, dict[str, int]]:
        out: dict[date, dict[str, int]] = {}
        if self.dialect == "postgresql":
            day = func.date(func.timezone("UTC", results.c.started))
        else:  # SQLite holds the UTC time as text: its first ten characters are the day
            day = func.substr(results.c.started, 1, 10)
        query = (select(day.label("day"), results.c.verdict, func.count())
                 .where(results.c.verdict.is_not(None), results.c.site.in_(sites)).group_by(day, results.c.verdict))
        with self._guard(), self.engine.connect() as conn:
            for when, verdict, n in conn.execute(query):
                when = when if isinstance(when, date) else date.fromisoformat(str(when))
                out.setdefault(when, {})[verdict] = n
        return out

    def newest_per_site(self) -> dict[str, datetime]:
        """Each site's newest result (its start time)."""
        query = select(results.c.site, func.max(results.c.started)).group_by(results.c.site)
        with self._guard(), self.engine.connect() as conn:
            return {site: aware(when) for site, when in conn.execute(query)}

    def change_stamp(self) -> tuple[Any, ...]:
        """Changes whenever a run is stored or pruned (any collector process on this database)."""
        with self._guard(), self.engine.connect() as conn:
            return tuple(conn.execute(select(func.count(), func.max(results.c.received))).one())


def _unexpired() -> Any:
    return or_(tokens.c.expires.is_(None), tokens.c.expires > utcnow())


def _token(row: Any) -> Token:
    revoked = aware(row.revoked) if row.revoked is not None else None
    expires = aware(row.expires) if row.expires is not None else None
    if revoked is None and expires is not None and expires <= utcnow():
        revoked = expires  # stops by itself: every check of ``revoked`` refuses it
    return Token(row.id, row.kind, row.site, row.hint, aware(row.created), revoked, expires,
                 aware(row.last_used) if row.last_used is not None else None)


class Tally:
    """Counts by a fixed set of names (bounded label values for /metrics), thread-safe."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(names, 0)

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


# database errors met by this process: ``unreachable`` (not there or not answering), ``other``
# (a statement it refused)
ERROR_KINDS = ("unreachable", "other")


class _Guard:
    """Turns "the database is not there now" into ``Unavailable`` (the HTTP layer answers 503),
    and counts every database error."""

    def __init__(self, url: str, errors: Tally | None = None) -> None:
        self.url = url
        self.errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        unreachable = isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or (
            isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated) or isinstance(exc, sa_exc.TimeoutError)
        if self.errors is not None and isinstance(exc, sa_exc.SQLAlchemyError):
            self.errors.add("unreachable" if unreachable else "other")
        if unreachable:
            raise Unavailable(f"database {redacted(self.url)} is not reachable: "
                              f"{str(getattr(exc, 'orig', exc) or exc).strip().splitlines()[0][:200]}") from None
        return False
