"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, a fresh cluster made
with ``initdb`` in a temporary folder, run as the unprivileged ``postgres`` user (the tests run
as root, and PostgreSQL refuses to run as root).

It listens on a Unix socket in its own folder only (no TCP port, so it never collides with
another test run or with a system cluster), trusts local connections, and is started and
stopped by the fixture; ``stop``/``start`` in a test take the database away and bring it back.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from support import is_root, need

USER = "postgres"


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class Postgres:
    """One throw-away cluster; ``url`` is a SQLAlchemy URL to its ``readiness`` database."""

    def __init__(self) -> None:
        bindir = _bindir()
        need(bindir is not None, "PostgreSQL is not installed (Debian package postgresql; tests/run.sh installs it)")
        need(is_root(), "running PostgreSQL as its own user needs root")
        try:
            import pwd

            pw = pwd.getpwnam(USER)
        except KeyError:
            need(False, f"no '{USER}' user (the Debian postgresql package creates it)")
        self.bin = Path(bindir)  # type: ignore[arg-type]
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.base = Path(tempfile.mkdtemp(prefix="readiness-pg-"))
        os.chown(self.base, self.uid, self.gid)
        self.data = self.base / "data"
        self.socket_dir = self.base
        self._as_user([str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                       "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as fh:
            # the socket only; fsync off: a test cluster need not survive a power cut
            fh.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{self.socket_dir}'\n"
                     "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 120\n")
        self.start()
        self._as_user([str(self.bin / "createdb"), "-h", str(self.socket_dir), "-U", USER, "readiness"])

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@/readiness?host={self.socket_dir}"

    def fresh_url(self) -> str:
        """A new, empty database in this cluster (one per test: no state leaks between tests)."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.socket_dir), user=USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{USER}@/{name}?host={self.socket_dir}"

    def _as_user(self, argv: list[str], timeout: float = 120) -> None:
        done = subprocess.run(argv, user=self.uid, group=self.gid, extra_groups=[], capture_output=True, text=True,
                              timeout=timeout, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w",
                       "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # already stopped by the test
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """One cluster for the session; tests take a fresh database each (``fresh_url``)."""
    pg = Postgres()
    yield pg
    pg.close()
