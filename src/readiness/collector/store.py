"""The collector's database: idempotent ingest, retention, streaming reads. The tables are
``tables``'; reaching the database and its errors, ``engine``'s; tokens, the audit log and
sessions, ``accounts``' and the fleet's, history's and compliance's reads, ``reads``' (parts of
:class:`Store`).

SQLAlchemy Core 2 over SQLite (embedded, the default for one server) or PostgreSQL (psycopg 3).
The two differ in one place only: the INSERT construct with ON CONFLICT, which SQLAlchemy
offers per dialect with the same API (``_insert``). The schema is created and upgraded by
Alembic (``migrations/``); ``Store.migrate`` runs it, so a database made by an older collector
is brought up to date when the server starts.

Tables:
- ``results``: one row per run, the whole document (JSONB on PostgreSQL; on SQLite its JSON
  text packed, ``packed``, or the text itself for a run stored before) plus indexed columns:
  site, room, host, start time, profile, verdict, coverage (the share of the checks its profile
  needs that measured).
- ``latest``: per room (or per host without a room label), the newest run (``check_name`` "")
  and the newest run holding each check (whatever its status: its newest fact). Updated in the same transaction as the insert;
  retention never deletes a run this table points to, so the fleet state survives pruning.
  Browser self-tests have keys of their own (``BROWSER_KEYS``), never an agent's room, and
  retention takes them by age.
- ``summaries``: per run, the part of its document the fleet view reads (a fifth of it).
- ``fleet_records``: what the fleet state keeps of a run (``fleetdb.record_of``), made at
  ingest and kept while ``latest`` holds the run (about one row per room); the view reads them.
- ``day_counts``: runs per UTC day and verdict (the fleet's trend), kept at ingest and pruning.
- ``room_days``: per room (or host) and UTC day, its last run that day: site, labels, start,
  verdict (the fleet over time, ``fleet.compliance``), kept at ingest and pruning.
- ``requirements``: each distinct requirement (as a judgement item holds it, texts and
  translations included) once, by digest; a result's ``summary`` points to them. A fleet of
  10 000 rooms judged by a few profiles holds a few dozen.
- ``tokens``: upload tokens (bound to a site), site links (bound to a site: the self-test
  page's results of that site are collected) and read tokens, as SHA-256 digests only. A token
  is 256 random bits, so a fast hash is enough: nothing to guess from the digest.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import and_, create_engine, delete, event, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from readiness.collector.accounts import Accounts, _unexpired, digest
from readiness.collector.reads import Reads
from readiness.collector.engine import (ERROR_KINDS, StoreError, Tally, _Guard, _on_sqlite_connect, aware,
                                        day_of, redacted, sqlalchemy_url, utcnow)
from readiness.collector.groupcommit import Batcher, Writer
from readiness.collector.jsontext import loads
from readiness.collector.packed import Packed, json_text, pack, unpack
from readiness.collector.tables import (BROWSER_KEYS, day_counts, fleet_records, latest, requirements, results,
                                        room_days, run_history, summaries, tokens)

REVOKED = "\x00revoked"  # ``Store.store``'s answer for an upload whose token is no longer live (no site is this)
MIGRATION_LOCK = 0x72656164  # PostgreSQL advisory lock key held while the schema is upgraded ("read")


class RawJSON(str):
    """A document's JSON text, already checked, stored as it came (no second serialisation)."""


class RawJSONBytes(bytes):
    """A document's JSON text as the UTF-8 bytes it came in (checked: UTF-8, no byte-order mark,
    no NUL), stored as that text: packed on SQLite (``packed``), no decode of a 50 kB body in
    the server process, whose one interpreter every upload waits on; made a ``RawJSON`` in the
    group commit elsewhere."""

    def text(self) -> RawJSON:
        return RawJSON(self.decode("utf-8"))


def _serialize(value: Any) -> str:
    # a RawJSON is a str: the drivers take it as it is (no copy of a 50 kB text)
    return value if isinstance(value, RawJSON) else json.dumps(value, ensure_ascii=False, allow_nan=False)


def _deserialize(text: str | bytes) -> Any:
    # every JSON column's reader: a packed document is a BLOB, the drivers hand it over as bytes
    return loads(json_text(text))


def _text(document: Any) -> Any:
    """A document as PostgreSQL's driver takes it: a dict, or its JSON text."""
    if isinstance(document, Packed):
        return RawJSON(unpack(document).decode("utf-8"))
    return document.text() if isinstance(document, RawJSONBytes) else document


def packed_document(document: Any) -> Packed:
    """A document as SQLite keeps it (``packed``): its JSON text (``RawJSON``, ``RawJSONBytes``,
    or a dict serialised as the engine does), packed; one packed already, as it is."""
    if isinstance(document, Packed):
        return document
    return pack(document if isinstance(document, (bytes, str)) else _serialize(document))


_NOT_COLUMNS = ("summary", "record", "history")  # of a row given to ``Store.store``: kept in tables of their own


def _last_per_day(rows: Any) -> list[dict[str, Any]]:
    """Of runs (``results`` rows), each room's last per UTC day, as ``room_days`` rows; browser
    self-tests left out."""
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row["room_key"].startswith(BROWSER_KEYS):
            continue
        at = (row["room_key"], day_of(row["started"]))
        had = last.get(at)
        if had is None or (aware(had["started"]), had["run_id"]) < (aware(row["started"]), row["run_id"]):
            last[at] = {"room_key": row["room_key"], "day": at[1], "site": row["site"], "room": row["room"],
                        "hostname": row["hostname"], "run_id": row["run_id"], "started": row["started"],
                        "verdict": row["verdict"]}
    return [last[k] for k in sorted(last)]


_MISSING = object()


class _Driven:
    """An INSERT of ingest's group commit run by the driver itself (``exec_driver_sql``), on
    SQLite: its SQL compiled once, each row bound by its columns' own bind processors (exactly
    the values SQLAlchemy would bind). SQLAlchemy's executemany builds and processes each row's
    parameters in Python: with some 25 rows per result (most of them ``latest``'s, now one per
    run: ``_DrivenLatest``), measured about a third of the commit thread's time, and that one
    thread is what every upload waits on. ``returning``: the statement ends in RETURNING, so the
    rows go in one multi-row VALUES statement (the driver's executemany returns no rows)."""

    def __init__(self, stmt: Any, keys: list[str], dialect: Any, returning: bool = False,
                 blobs: tuple[str, ...] = ()) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        if sorted(self.names) != sorted(keys):
            raise ValueError(f"unexpected parameters {self.names} for {keys}")
        # ``blobs``: columns whose value may come ``Packed``: bound as it is, a BLOB
        self.procs = [(name, _passing_packed(proc) if name in blobs else proc)
                      for name in self.names
                      for proc in (compiled.binds[name].type._cached_bind_processor(dialect),)]
        self.returning = returning
        group = "(" + ", ".join("?" * len(self.names)) + ")"
        if returning and self.sql.count(group) != 1:
            raise ValueError("no single VALUES group")
        self.group = group
        self._many: dict[int, str] = {}
        # the columns with a processor, by position (the others bind their value as it is)
        self.processed = [(i, name, proc) for i, (name, proc) in enumerate(self.procs) if proc is not None]

    def _bound(self, row: dict[str, Any], memo: list[dict[int, tuple[Any, Any]]] | None = None) -> tuple[Any, ...]:
        # a key the row lacks binds NULL, as SQLAlchemy leaves out a column not given; a value
        # given goes through its processor, None too (JSON's makes it "null", as SQLAlchemy does)
        get = row.get
        values = [get(name) for name, _proc in self.procs]
        for k, (i, name, proc) in enumerate(self.processed):
            v = get(name, _MISSING)
            if v is _MISSING:
                continue
            if memo is None:
                values[i] = proc(v)
                continue
            # ``memo``: per column, the same object met in another row of this call (a run's
            # start, in each of its ``latest`` rows) is processed once; by identity (the rows
            # keep each object alive for the call, so no id is reused)
            seen = memo[k]
            hit = seen.get(id(v))
            if hit is None or hit[0] is not v:
                hit = seen[id(v)] = (v, proc(v))
            values[i] = hit[1]
        return tuple(values)

    def __call__(self, conn: Any, rows: list[dict[str, Any]]) -> Any:
        memo: list[dict[int, tuple[Any, Any]]] = [{} for _ in self.processed]
        if not self.returning:
            return conn.exec_driver_sql(self.sql, [self._bound(row, memo) for row in rows])
        sql = self._many.get(len(rows))
        if sql is None:
            sql = self._many[len(rows)] = self.sql.replace(self.group, ", ".join([self.group] * len(rows)))
        return conn.exec_driver_sql(sql, tuple(v for row in rows for v in self._bound(row, memo)))


class _DrivenIn:
    """A query of ingest's group commit over one IN list, run by the driver on SQLite: its SQL
    written once per list length, no statement built and compiled per batch. The statements
    SQLAlchemy built for these few lookups (``in_``, compile, cache key) took about a quarter of
    the commit thread's Python time, per batch. ``sql`` holds ``{keys}`` where the list goes;
    ``after``: the values of the ``?`` after it, already as the driver binds them."""

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self._by_length: dict[int, str] = {}

    def __call__(self, conn: Any, keys: list[Any], after: tuple[Any, ...] = ()) -> Any:
        sql = self._by_length.get(len(keys))
        if sql is None:
            sql = self._by_length[len(keys)] = self.sql.replace("{keys}", ", ".join("?" * len(keys)))
        return conn.exec_driver_sql(sql, (*keys, *after))


class _DrivenLatest:
    """``latest``'s upsert on SQLite: one row per run, its check names as a JSON list that SQLite
    makes the rows of (``json_each``), instead of a row per check bound in Python (about ten per
    run); the same newest-wins rule as the SQLAlchemy upsert (``Store._latest_upsert``), so two
    runs of one room in a batch, in any order, leave the newer. ``runs``: (room key, run id,
    start, check names), "" (the room's newest run) among the names."""

    def __init__(self, dialect: Any) -> None:
        self.stamp = latest.c.started.type._cached_bind_processor(dialect) or (lambda value: value)
        t = latest.name
        self.sql = (f"INSERT INTO {t} (room_key, check_name, run_id, started) SELECT ?, value, ?, ? FROM json_each(?) "
                    f"WHERE true ON CONFLICT (room_key, check_name) DO UPDATE SET run_id = excluded.run_id, "
                    f"started = excluded.started WHERE {t}.started < excluded.started OR "
                    f"({t}.started = excluded.started AND {t}.run_id < excluded.run_id)")

    def __call__(self, conn: Any, runs: list[tuple[str, str, Any, list[str]]]) -> Any:
        return conn.exec_driver_sql(self.sql, [(key, run_id, self.stamp(started), json.dumps(names))
                                               for key, run_id, started, names in runs])


@functools.cache
def _has_json_each() -> bool:
    """Whether this Python's SQLite has the JSON functions (built in since SQLite 3.38, an
    option before it): ``_DrivenLatest`` needs ``json_each``. Asked once per process."""
    import sqlite3

    try:
        con = sqlite3.connect(":memory:")
        try:
            con.execute("SELECT value FROM json_each('[\"\"]')").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return True


def _newest(runs: list[tuple[str, str, Any, list[str]]]) -> list[dict[str, Any]]:
    """``latest`` rows of ``runs`` (as ``_DrivenLatest`` takes them), one per room and check: the
    newest run of the batch (by start, then run id). In key order: replicas upserting the same
    rooms lock their rows in the same order (in batch order, two PostgreSQL transactions of
    opposite orders deadlocked, and one was refused)."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for key, run_id, started, names in runs:
        for name in names:
            had = newest.get((key, name))
            if had is None or (had["started"], had["run_id"]) < (started, run_id):
                newest[(key, name)] = {"room_key": key, "check_name": name, "run_id": run_id, "started": started}
    return [newest[k] for k in sorted(newest)]


def _passing_packed(proc: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    def process(value: Any) -> Any:
        if isinstance(value, Packed):
            return value
        return value if proc is None else proc(value)
    return process


def _insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class Store(Accounts, Reads):
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
        self._batcher: Batcher | Writer = Batcher(self._store_batch)  # or a process of its own (``use_writer``)
        self._requirement_insert = self._insert(requirements).on_conflict_do_nothing(
            index_elements=[requirements.c.digest])
        self._requirements_known: set[str] = set()  # digests this process has seen committed
        self._touched: dict[int, float] = {}  # token id -> when this process last noted its use
        self._touch_lock = threading.Lock()
        # RETURNING tells whether the row went in (rowcount is not dependable across drivers)
        days = self._insert(day_counts)
        self._day_add = days.on_conflict_do_update(index_elements=[day_counts.c.day, day_counts.c.verdict],
                                                   set_={"runs": day_counts.c.runs + days.excluded.runs})
        # a room's day: its last run that day (by start, then run id), whichever order runs arrive in
        ins = self._insert(room_days)
        later = or_(room_days.c.started < ins.excluded.started,
                    and_(room_days.c.started == ins.excluded.started, room_days.c.run_id < ins.excluded.run_id))
        self._room_day_upsert = ins.on_conflict_do_update(
            index_elements=[room_days.c.room_key, room_days.c.day],
            set_={c: getattr(ins.excluded, c) for c in ("site", "room", "hostname", "run_id", "started", "verdict")},
            where=later)
        self._result_insert = (self._insert(results).on_conflict_do_nothing(index_elements=[results.c.run_id])
                               .returning(results.c.run_id))
        self._run = self._statements()

    _ROW_KEYS = ("run_id", "site", "room", "hostname", "room_key", "started", "received", "profile", "verdict",
                 "coverage", "document")

    def _statements(self) -> dict[str, Callable[[Any, list[dict[str, Any]]], Any]]:
        """Ingest's inserts by name, each a call (connection, rows): through the driver on SQLite
        (``_Driven``), through SQLAlchemy on PostgreSQL."""
        plan = {"results": (self._result_insert, list(self._ROW_KEYS), True, ("document",)),
                "summaries": (summaries.insert(), ["run_id", "summary"], False),
                "history": (run_history.insert(), ["run_id", "room_key", "site", "started", "record"], False),
                "records": (fleet_records.insert(), ["run_id", "record"], False),
                "latest": (self._latest_upsert, ["room_key", "check_name", "run_id", "started"], False),
                "days": (self._day_add, ["day", "verdict", "runs"], False),
                "room_days": (self._room_day_upsert, ["room_key", "day", "site", "room", "hostname", "run_id",
                                                      "started", "verdict"], False)}
        if self.dialect == "sqlite" and self.engine.dialect.paramstyle == "qmark":
            self.packs_documents = True  # ``packed``: ``ingest.check`` packs them where it runs
            self._lookups = self._driven_lookups()
            driven: dict[str, Callable[..., Any]] = {
                name: _Driven(stmt, keys, self.engine.dialect, returning, *blobs)
                for name, (stmt, keys, returning, *blobs) in plan.items() if name != "latest"}
            if _has_json_each():
                driven["latest"] = _DrivenLatest(self.engine.dialect)
            else:  # a row per check, as on PostgreSQL, bound by the driver
                rows = _Driven(self._latest_upsert, plan["latest"][1], self.engine.dialect)
                driven["latest"] = lambda conn, runs: rows(conn, _newest(runs))
            return driven
        self.packs_documents = False
        self._lookups = {
            "live_tokens": lambda conn, keys: conn.execute(
                select(tokens.c.digest).where(tokens.c.digest.in_(keys), tokens.c.revoked.is_(None), _unexpired())),
            "held": lambda conn, keys: conn.execute(select(latest.c.run_id).where(latest.c.room_key.in_(keys))),
            "drop_records": lambda conn, keys: conn.execute(
                delete(fleet_records).where(fleet_records.c.run_id.in_(keys),
                                            ~exists().where(latest.c.run_id == fleet_records.c.run_id))),
        }
        run = {name: (lambda conn, rows, stmt=stmt: conn.execute(stmt, rows)) for name, (stmt, *_) in plan.items()}
        run["latest"] = lambda conn, runs: conn.execute(self._latest_upsert, _newest(runs))
        return run

    def _driven_lookups(self) -> dict[str, Callable[..., Any]]:
        """The group commit's lookups through the driver (SQLite): the same queries as the
        SQLAlchemy ones ``_statements`` makes for PostgreSQL, written out (``_DrivenIn``)."""
        stamp = tokens.c.expires.type._cached_bind_processor(self.engine.dialect)
        live = _DrivenIn(f"SELECT digest FROM {tokens.name} WHERE digest IN ({{keys}}) AND revoked IS NULL "
                         f"AND (expires IS NULL OR expires > ?)")
        held = _DrivenIn(f"SELECT run_id FROM {latest.name} WHERE room_key IN ({{keys}})")
        drop = _DrivenIn(f"DELETE FROM {fleet_records.name} WHERE run_id IN ({{keys}}) AND NOT EXISTS "
                         f"(SELECT 1 FROM {latest.name} WHERE {latest.name}.run_id = {fleet_records.name}.run_id)")
        now = (lambda: stamp(utcnow())) if stamp is not None else utcnow
        return {"live_tokens": lambda conn, keys: live(conn, keys, (now(),)),
                "held": held, "drop_records": drop}

    def close(self) -> None:
        self._batcher.close()
        self.engine.dispose()

    def use_writer(self) -> None:
        """Commit ingest's batches in a process of their own (``groupcommit.Writer``, started
        now), not in a thread of this one: for a server whose request threads keep its
        interpreter busy."""
        if not isinstance(self._batcher, Writer):
            self._batcher = Writer(functools.partial(Store, self.url, pool_size=1, create=False), self.errors)
            self._batcher.warm()

    # --- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the tables, or bring an older database up to this collector's schema."""
        from readiness.collector.migrations import upgrade  # lazy: the migrations import this module's tables

        with self._guard(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # replicas starting together: one upgrades, the others wait here, then find the head
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            upgrade(conn)

    def revision(self) -> str | None:
        """The schema revision the database holds (None: none yet)."""
        from readiness.collector.migrations import current  # lazy: the migrations import this module's tables

        with self._guard(), self.engine.connect() as conn:
            return current(conn)

    def downgrade(self, target: str) -> None:
        """Take the schema back to revision ``target``, for an older release (``serve db downgrade``)."""
        from readiness.collector.migrations import downgrade  # lazy: the migrations import this module's tables

        with self._guard(), self.engine.begin() as conn:
            if self.dialect == "postgresql":  # not while a replica starting upgrades it
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            downgrade(conn, target)

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
        """Results handed in and waiting for the group commit (this process's)."""
        return self._batcher.depth()

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

    def store(self, row: dict[str, Any], document: dict[str, Any] | RawJSON | RawJSONBytes | Packed, checks: list[str],
              reqs: dict[str, str] | None = None, token: str | None = None) -> tuple[bool, str | None]:
        """Insert one run, once. Returns (True, None) when stored now, or (False, site of the
        row already stored under this run id). The ``latest`` rows move in the same transaction.

        Calls from many threads at once are committed together (group commit, ``groupcommit``):
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
                conn.execute(self._requirement_insert,
                             [{"digest": d, "requirement": RawJSON(t)} for d, t in sorted(new.items())])
            wanted = {item[4] for item in items if len(item) > 4 and item[4]}
            live = set(self._lookups["live_tokens"](conn, list(wanted)).scalars()) if wanted else set()
            refused = {i for i, item in enumerate(items) if len(item) > 4 and item[4] and item[4] not in live}
            first: dict[str, int] = {}  # run id -> index of the item that may store it
            for i, item in enumerate(items):
                if i not in refused:
                    first.setdefault(item[0]["run_id"], i)
            # the row is kept as given: a batch that failed is tried again one item at a time
            # rows in key order, every statement: replicas storing the same runs or rooms lock them in one order
            params = [{**{k: v for k, v in items[i][0].items() if k not in _NOT_COLUMNS},
                       "document": packed_document(items[i][1]) if self.packs_documents else _text(items[i][1])}
                      for i in (first[run_id] for run_id in sorted(first))]
            stored = set(self._run["results"](conn, params).scalars()) if params else set()
            others = [run_id for run_id in first if run_id not in stored]
            sites = dict(conn.execute(select(results.c.run_id, results.c.site).where(results.c.run_id.in_(others)))
                         .all()) if others else {}
            winners = [items[first[run_id]] for run_id in sorted(stored)]
            summaries_new = [{"run_id": row["run_id"], "summary": RawJSON(row["summary"])}
                             for row, *_ in winners if row.get("summary") is not None]
            if summaries_new:
                self._run["summaries"](conn, summaries_new)
            history_new = [{"run_id": row["run_id"], "room_key": row["room_key"], "site": row["site"],
                            "started": row["started"], "record": RawJSON(row["history"])}
                           for row, *_ in winners if row.get("history") is not None]
            if history_new:
                self._run["history"](conn, history_new)
            records_new = [{"run_id": row["run_id"], "record": row["record"]}
                           for row, *_ in winners if row.get("record") is not None]
            if records_new:
                self._run["records"](conn, records_new)
            if winners:
                keys = {row["room_key"] for row, *_ in winners}
                held = set(self._lookups["held"](conn, sorted(keys)).scalars())
                self._run["latest"](conn, [(row["room_key"], row["run_id"], row["started"], ["", *checks])
                                           for row, _document, checks, *_ in winners])
                self._drop_records(conn, held | {row["run_id"] for row, *_ in winners})
            judged = Counter((day_of(row["started"]), row["verdict"]) for row, *_ in winners if row["verdict"] is not None)
            if judged:
                self._run["days"](conn, [{"day": d, "verdict": v, "runs": n} for (d, v), n in sorted(judged.items())])
            days = _last_per_day(row for row, *_ in winners)
            if days:
                self._run["room_days"](conn, days)
        self._requirements_known.update(new)  # only once committed
        return [(False, REVOKED) if i in refused
                else (True, None) if first[item[0]["run_id"]] == i and item[0]["run_id"] in stored
                else (False, items[first[item[0]["run_id"]]][0]["site"] if item[0]["run_id"] in stored
                      else sites.get(item[0]["run_id"]))
                for i, item in enumerate(items)]

    def _drop_records(self, conn: Any, run_ids: set[str]) -> None:
        """Delete the fleet records of those of ``run_ids`` no room holds any more (displaced by
        a newer run now, or stored already older than what the room holds): the view reads only
        held runs' records, so the table stays about one row per room. One a concurrent
        transaction displaces is left to retention (harmless: never read)."""
        self._lookups["drop_records"](conn, sorted(run_ids))

    # --- tokens ----------------------------------------------------------------------------

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
                    conn.execute(delete(run_history).where(run_history.c.run_id.in_(ids)))
                    conn.execute(delete(fleet_records).where(fleet_records.c.run_id.in_(ids)))
                    # what went (RETURNING: exactly the rows deleted) comes off the trend in the same transaction
                    went = conn.execute(delete(results).where(results.c.run_id.in_(ids), results.c.run_id.not_in(held))
                                        .returning(results.c.started, results.c.verdict, results.c.run_id)).all()
                    gone += len(went)
                    self._room_days_pruned(conn, [run_id for _, _, run_id in went])
                    judged = Counter((day_of(started), verdict) for started, verdict, _ in went if verdict is not None)
                    for (day, verdict), n in sorted(judged.items()):
                        conn.execute(update(day_counts).where(day_counts.c.day == day, day_counts.c.verdict == verdict)
                                     .values(runs=day_counts.c.runs - n))
                    if judged:
                        conn.execute(delete(day_counts).where(day_counts.c.runs <= 0))
            if len(ids) < batch:
                return gone
            time.sleep(pause_s)

    def _room_days_pruned(self, conn: Any, run_ids: list[str]) -> None:
        """Days whose last run was just deleted take the last run of the day still stored. Runs
        go oldest first, so a day's last run goes only once every earlier run of that day went,
        except those ``latest`` holds: those are the only runs to look for, by the ``latest``
        table's key (the runs have no index by room)."""
        if not run_ids:
            return
        went = conn.execute(delete(room_days).where(room_days.c.run_id.in_(run_ids))
                            .returning(room_days.c.room_key, room_days.c.day)).all()
        if not went:
            return
        emptied = {(key, day) for key, day in went}
        keys = sorted({key for key, _ in emptied})
        kept = conn.execute(select(results.c.room_key, results.c.site, results.c.room, results.c.hostname,
                                   results.c.run_id, results.c.started, results.c.verdict)
                            .where(results.c.run_id.in_(select(latest.c.run_id).where(latest.c.room_key.in_(keys)))))
        rows = [dict(r._mapping) for r in kept if (r.room_key, day_of(r.started)) in emptied]
        days = _last_per_day(rows)
        if days:
            conn.execute(self._room_day_upsert, days)
