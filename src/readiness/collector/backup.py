"""A copy of the collector's SQLite database while the server runs: ``readiness serve db backup FILE``.

Called from the ``serve db`` command. SQLite's online backup API (``sqlite3.Connection.backup``)
copies the pages inside one read transaction: with the database in WAL mode the server goes on
committing uploads meanwhile, and the copy is the database as it was at one commit, never a
torn file (copying the file with ``cp`` while the server writes can be). The copy is written
beside FILE under a temporary name, checked (``PRAGMA quick_check``), made self-contained (out
of WAL mode) and only then renamed to FILE, so a FILE that exists is a whole backup.

PostgreSQL has its own tools for this (``pg_dump``/``pg_restore``, see the README): a second
way here would only be a worse one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from readiness.collector.engine import StoreError, sqlalchemy_url

BUSY_TIMEOUT_S = 30.0


class BackupError(Exception):
    """A backup that cannot be made; plain words."""


def sqlite_path(url: str) -> Path:
    """The SQLite file of a collector URL (it must exist); a PostgreSQL URL is refused with the way to go."""
    try:
        parsed = make_url(sqlalchemy_url(url, create=False))
    except StoreError as exc:
        raise BackupError(str(exc)) from None
    if parsed.get_backend_name() != "sqlite":
        raise BackupError("this backs up a SQLite database; for PostgreSQL use pg_dump and pg_restore "
                          "(the README's collector part shows both)")
    return Path(parsed.database or "").expanduser().resolve()


def backup_sqlite(url: str, target: str | os.PathLike[str]) -> int:
    """Copy the database of ``url`` to ``target`` (replaced when it exists); returns the runs the copy holds."""
    source = sqlite_path(url)
    dest = Path(target).expanduser().absolute()
    if not dest.parent.is_dir():
        raise BackupError(f"no folder {dest.parent} for the backup")
    if dest.exists() and dest.resolve() == source:
        raise BackupError("the backup must go to another file than the database itself")
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)  # all pages in one step: one read transaction, one consistent state
                dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one file, no -wal beside it
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy does not read back whole ({check})")
                runs = dst.execute("SELECT count(*) FROM results").fetchone()[0]
            finally:
                dst.close()
        finally:
            src.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write the backup {dest}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return runs
