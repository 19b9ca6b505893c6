"""Makes ``collector-prev.sqlite``: a collector database of the previous schema (Alembic revision
PREVIOUS, the one before the head when it was made), holding what a collector of that release
stored, so ``tests/test_collector_upgrade.py`` can upgrade it in place with its data.

Run from the repo: ``python tests/data/make_collector_prev.py``. It is kept in the repo as made
(the test must meet the old schema, not today's): run it again only to make a new "previous"
when a new revision is released, and set PREVIOUS to the revision before the new head.

What it holds: four agent runs of two rooms of site Stockholm, a browser self-test labelled with
room 4.12 that the old collector keyed as that room's agent runs (the revision after PREVIOUS
mends that), an upload token whose secret is ``TOKEN`` and a revoked one.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # collector_docs

import collector_docs as docs  # noqa: E402
from sqlalchemy import text  # noqa: E402

from readiness.collector.ingest import ingest  # noqa: E402
from readiness.collector.migrations import upgrade  # noqa: E402
from readiness.collector.accounts import digest
from readiness.collector.engine import utcnow
from readiness.collector.store import Store
from readiness.collector.tables import latest, results, tokens  # noqa: E402
from readiness.result import parse_utc  # noqa: E402

PREVIOUS = "0002"
TOKEN = "rdy_previous-release-upload-token-for-the-upgrade-test"
REVOKED = "rdy_previous-release-revoked-token"
FILE = HERE / "collector-prev.sqlite"


def make(path: Path = FILE) -> None:
    path.unlink(missing_ok=True)
    store = Store(f"sqlite:///{path}")
    with store.engine.begin() as conn:
        upgrade(conn, PREVIOUS)
    day = timedelta(days=1)
    agent = [docs.document(room="4.12", age=3 * day), docs.document(room="4.12", age=2 * day, height=None),
             docs.document(room="5.01", hostname="sthlm-mr2", age=2 * day),
             docs.document(room="5.01", hostname="sthlm-mr2", age=1 * day, camera=False)]
    page = docs.document(room="4.12", age=day / 2, browser=True)
    for d in (*agent, page):
        ingest(store, docs.body(d), "Stockholm")
    room = "room\x1fStockholm\x1f4.12"
    with store.engine.begin() as conn:  # the old keys: the page's run stood for the room's newest run
        conn.execute(results.update().where(results.c.run_id == page["run_id"]).values(room_key=room))
        conn.execute(latest.delete().where(latest.c.room_key.startswith("browser")))
        conn.execute(latest.update().where(latest.c.room_key == room, latest.c.check_name == "")
                     .values(run_id=page["run_id"], started=parse_utc(page["started_utc"])))
        now = utcnow()
        conn.execute(tokens.insert(), [
            {"kind": "upload", "site": "Stockholm", "digest": digest(TOKEN), "hint": TOKEN[:10], "created": now,
             "revoked": None},
            {"kind": "upload", "site": "Stockholm", "digest": digest(REVOKED), "hint": REVOKED[:10], "created": now,
             "revoked": now}])
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == PREVIOUS
    store.close()
    import sqlite3

    conn = sqlite3.connect(path)  # one self-contained file: out of WAL, compacted
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("VACUUM")
    conn.close()


if __name__ == "__main__":
    make()
    print(f"wrote {FILE.name}")
