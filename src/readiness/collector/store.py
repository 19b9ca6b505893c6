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
- ``tokens``: upload tokens (bound to a site) and read tokens, as SHA-256 digests only. A token
  is 256 random bits, so a fast hash is enough: nothing to guess from the digest.
"""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import (JSON, Column, DateTime, Float, Index, Integer, MetaData, String, Table, and_, create_engine,
                        delete, event, func, or_, select, update)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

TEXT_MAX = 200  # site, room, profile name; longer labels are refused at ingest
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
)

latest = Table(
    "latest", metadata,
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), primary_key=True),
    Column("check_name", String(TEXT_MAX), primary_key=True),  # "" = the room's newest run
    Column("run_id", String(32), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Index("ix_latest_run_id", "run_id"),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # "upload" | "read"
    Column("site", String(TEXT_MAX), nullable=False),  # upload: the one site it may submit for; read: ""
    Column("digest", String(64), nullable=False, unique=True),
    Column("hint", String(12), nullable=False),  # the token's first characters, to tell tokens apart in a list
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True), nullable=True),
)

TOKEN_PREFIX = "rdy_"
KINDS = ("upload", "read")


class StoreError(Exception):
    """A database the collector cannot use (bad URL, not created, newer schema); plain words."""


class Unavailable(Exception):
    """The database is not reachable now (stopped, restarting, network): the client retries later."""


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
        if not create and not path.is_file():
            raise StoreError(f"no database file {path} (`readiness serve --db URL` creates it)")
    else:
        raise StoreError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")
    return parsed.render_as_string(hide_password=False)


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
    return str.__str__(value) if isinstance(value, RawJSON) else json.dumps(value, ensure_ascii=False, allow_nan=False)


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
    revoked: datetime | None


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
                                                json_serializer=_serialize)
            event.listen(self.engine, "connect", _on_sqlite_connect)
        else:
            try:
                import psycopg  # noqa: F401 - say plainly when the server extra is missing
            except ImportError:
                raise StoreError("PostgreSQL needs psycopg: pip install 'readiness[server]'") from None
            # pre-ping: after PostgreSQL restarts, pooled connections are dead; find out before use
            self.engine = create_engine(target, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True,
                                        pool_timeout=10, connect_args={"connect_timeout": 5}, json_serializer=_serialize)
        self.dialect = self.engine.dialect.name
        self._insert = _insert(self.dialect)
        ins = self._insert(latest)
        newer = or_(latest.c.started < ins.excluded.started,
                    and_(latest.c.started == ins.excluded.started, latest.c.run_id < ins.excluded.run_id))
        self._latest_upsert = ins.on_conflict_do_update(
            index_elements=[latest.c.room_key, latest.c.check_name],
            set_={"run_id": ins.excluded.run_id, "started": ins.excluded.started}, where=newer)
        self._batcher = _Batcher(self._store_batch)
        # RETURNING tells whether the row went in (rowcount is not dependable across drivers)
        self._result_insert = (self._insert(results).on_conflict_do_nothing(index_elements=[results.c.run_id])
                               .returning(results.c.run_id))

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the tables, or bring an older database up to this collector's schema."""
        from .migrations import upgrade

        with self._guard(), self.engine.begin() as conn:
            upgrade(conn)

    def require_schema(self) -> None:
        """For readers: the database must exist and be of a schema this collector knows."""
        from .migrations import current, head

        with self._guard(), self.engine.connect() as conn:
            rev = current(conn)
        if rev is None:
            raise StoreError(f"{redacted(self.url)} holds no readiness data yet "
                             "(`readiness serve --db URL` creates it)")
        if rev != head():
            raise StoreError(f"{redacted(self.url)} has schema {rev}; this readiness knows up to {head()}: "
                             "update readiness, or start `readiness serve --db URL` once to upgrade it")

    def _guard(self) -> Any:
        return _Guard(self.url)

    # --- ingest ----------------------------------------------------------------------------

    def store(self, row: dict[str, Any], document: dict[str, Any] | RawJSON, checks: list[str]) -> tuple[bool, str | None]:
        """Insert one run, once. Returns (True, None) when stored now, or (False, site of the
        row already stored under this run id). The ``latest`` rows move in the same transaction.

        Calls from many threads at once are committed together (group commit, ``_Batcher``):
        one durable commit for many results instead of one each; every caller still returns
        only once its row is committed."""
        return self._batcher.submit((row, document, checks))

    def _store_batch(self, items: list[tuple[dict[str, Any], Any, list[str]]]) -> list[tuple[bool, str | None]]:
        with self._guard(), self.engine.begin() as conn:
            return [self._store_one(conn, *item) for item in items]

    def _store_one(self, conn: Any, row: dict[str, Any], document: Any, checks: list[str]) -> tuple[bool, str | None]:
        inserted = conn.execute(self._result_insert, {**row, "document": document}).first()
        if inserted is None:
            site = conn.execute(select(results.c.site).where(results.c.run_id == row["run_id"])).scalar()
            return False, site
        conn.execute(self._latest_upsert, [{"room_key": row["room_key"], "check_name": name,
                                            "run_id": row["run_id"], "started": row["started"]}
                                           for name in ["", *checks]])
        return True, None

    # --- tokens ----------------------------------------------------------------------------

    def add_token(self, kind: str, site: str) -> tuple[Token, str]:
        """A new token; the secret is returned here once and never stored."""
        if kind not in KINDS:
            raise ValueError(kind)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        with self._guard(), self.engine.begin() as conn:
            new_id = conn.execute(tokens.insert().values(kind=kind, site=site, digest=digest(secret),
                                                         hint=secret[:10], created=now)).inserted_primary_key[0]
        return Token(new_id, kind, site, secret[:10], now, None), secret

    def lookup_token(self, secret: str) -> Token | None:
        """The token with this secret (revoked ones too: the refusal can say so), or None."""
        with self._guard(), self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(tokens.c.digest == digest(secret))).first()
        return None if row is None else _token(row)

    def list_tokens(self) -> list[Token]:
        with self._guard(), self.engine.connect() as conn:
            return [_token(r) for r in conn.execute(select(tokens).order_by(tokens.c.id))]

    def revoke_tokens(self, token_id: int | None = None, site: str | None = None) -> int:
        """Revoke one token by id, or every live upload token of a site; returns how many."""
        cond = tokens.c.revoked.is_(None)
        if token_id is not None:
            cond = and_(cond, tokens.c.id == token_id)
        if site is not None:
            cond = and_(cond, tokens.c.site == site, tokens.c.kind == "upload")
        with self._guard(), self.engine.begin() as conn:
            return conn.execute(update(tokens).where(cond).values(revoked=utcnow())).rowcount

    # --- retention -------------------------------------------------------------------------

    def prune(self, keep: timedelta, now: datetime | None = None) -> int:
        """Delete runs that started before ``now - keep``, except those the fleet state points
        to (each room's newest run and its newest measurement of every check)."""
        cutoff = (now or utcnow()) - keep
        held = select(latest.c.run_id)
        with self._guard(), self.engine.begin() as conn:
            return conn.execute(delete(results).where(results.c.started < cutoff,
                                                      results.c.run_id.not_in(held))).rowcount

    # --- reads -----------------------------------------------------------------------------

    def count(self) -> int:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(results)).scalar_one()

    def document(self, run_id: str) -> dict[str, Any] | None:
        with self._guard(), self.engine.connect() as conn:
            return conn.execute(select(results.c.document).where(results.c.run_id == run_id)).scalar()

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

    def per_day(self) -> dict[date, dict[str, int]]:
        """Runs per UTC day and verdict, over every stored run (the fleet trend)."""
        out: dict[date, dict[str, int]] = {}
        query = select(results.c.started, results.c.verdict).where(results.c.verdict.is_not(None))
        with self._guard(), self.engine.connect() as conn:
            for started, verdict in conn.execution_options(yield_per=5000).execute(query):
                counts = out.setdefault(aware(started).astimezone(timezone.utc).date(), {})
                counts[verdict] = counts.get(verdict, 0) + 1
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


def _token(row: Any) -> Token:
    return Token(row.id, row.kind, row.site, row.hint, aware(row.created),
                 aware(row.revoked) if row.revoked is not None else None)


class _Guard:
    """Turns "the database is not there now" into ``Unavailable`` (the HTTP layer answers 503)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or (
                isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated) or isinstance(exc, sa_exc.TimeoutError):
            raise Unavailable(f"database {redacted(self.url)} is not reachable: "
                              f"{str(getattr(exc, 'orig', exc) or exc).strip().splitlines()[0][:200]}") from None
        return False
