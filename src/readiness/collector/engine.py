"""Reaching the collector's database: its URL (SQLite file or PostgreSQL), a new SQLite file made
private (0600) and checked to be SQLite before it is opened, the URL redacted for logs, and the
errors: a database that is not there now becomes ``Unavailable`` (503, the client retries),
every database error is counted (``Tally``) for /metrics."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

class StoreError(Exception):
    """A database the collector cannot use (bad URL, not created, newer schema); plain words."""


class Unavailable(Exception):
    """The database is not reachable now (stopped, restarting, network): the client retries later."""


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


class Tally:
    """Counts by a fixed set of names (bounded label values for /metrics), thread-safe."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(names, 0)

    def add(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

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


def day_of(started: datetime) -> str:
    """The UTC day of a run's start, as ``day_counts`` keys it (the fleet code's day for files too)."""
    return aware(started).astimezone(timezone.utc).date().isoformat()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
