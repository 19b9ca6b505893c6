"""Ingest's group commit in a writer process (``collector.groupcommit``, ``Store.use_writer``; what
``readiness serve`` uses with ingest workers): the same answers as the group commit in the
server's own thread, on both engines; a writer killed with uploads in hand fails only those, as
"not stored, send again", and the next upload starts another; a database file away fails the
uploads, not the writer; one item the database refuses fails alone, and its error is counted by
the server."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

import collector_docs as docs
from postgres import postgres  # noqa: F401 - the session fixture
from test_collector_store import store as plain_store  # noqa: F401 - the fixture: a Store on SQLite, then on PostgreSQL
from readiness.collector.engine import Unavailable
from readiness.collector.ingest import Refused, ingest
from readiness.collector.store import Store
from readiness.collector.groupcommit import STOPPED, WriteError


@pytest.fixture
def store(plain_store):
    plain_store.use_writer()
    return plain_store  # closed, its writer too, by the plain store's fixture


def _sqlite_store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'readiness.db'}")
    s.migrate()
    s.use_writer()
    return s


def _send_all(store: Store, bodies: list[bytes], site: str = "Stockholm") -> list[object]:
    """Each body ingested by a thread of its own, at once; what each got (an answer or the error)."""
    out: list[object] = [None] * len(bodies)

    def send(i: int) -> None:
        try:
            out[i] = ingest(store, bodies[i], site)
        except (Unavailable, Refused, WriteError) as exc:
            out[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "an upload hung"
    return out


def _wait(predicate, what: str, timeout_s: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_writer_process_answers_as_the_group_commit_does(store):
    doc = docs.document()
    body = docs.body(doc)
    assert ingest(store, body, "Stockholm") == {"run_id": doc["run_id"], "stored": "new"}
    writer = store._batcher
    assert writer.proc.pid != os.getpid() and writer.proc.is_alive()  # committed in a process of its own
    assert ingest(store, body, "Stockholm")["stored"] == "already"
    # the same run sent eight times at once is stored once; other runs beside it are stored
    same = docs.body(docs.document(hostname="sthlm-mr2"))
    others = [docs.body(docs.document(hostname=f"pc{i}", room=f"r{i}")) for i in range(8)]
    answers = _send_all(store, [same] * 8 + others)
    assert sorted(a["stored"] for a in answers[:8]) == ["already"] * 7 + ["new"]
    assert [a["stored"] for a in answers[8:]] == ["new"] * 8
    assert store.count() == 10 and store.queue_depth() == 0
    assert store.document(doc["run_id"]) == doc  # the whole document comes back as sent
    # a run id stored for another site: 409; a revoked token stores nothing, whichever process revoked it
    with pytest.raises(Refused) as refused:
        ingest(store, docs.body({**docs.document(site="Malmö"), "run_id": doc["run_id"]}), "Malmö")
    assert refused.value.status == 409
    token, secret = store.add_token("upload", "Stockholm")
    store.revoke_tokens(token.id)
    with pytest.raises(Refused) as revoked:
        ingest(store, docs.body(docs.document(hostname="pc-late")), "Stockholm", token=secret)
    assert revoked.value.code == "revoked_token"
    assert store.count() == 10 and writer.proc.pid == store._batcher.proc.pid  # one writer all along


def test_a_killed_writer_fails_the_uploads_in_hand_as_not_stored_and_the_next_starts_another(tmp_path):
    s = _sqlite_store(tmp_path)
    try:
        assert ingest(s, docs.body(docs.document(hostname="first")), "Stockholm")["stored"] == "new"
        first = s._batcher.proc
        # another connection holds the write lock: the writer waits in its commit with the uploads in hand
        lock = sqlite3.connect(tmp_path / "readiness.db", timeout=30)
        lock.execute("BEGIN IMMEDIATE")
        bodies = [docs.body(docs.document(hostname=f"pc{i}", room=f"r{i}")) for i in range(5)]
        got: list[object] = []
        sender = threading.Thread(target=lambda: got.extend(_send_all(s, bodies)))
        sender.start()
        _wait(lambda: s.queue_depth() == 5, "five uploads handed to the writer")
        first.kill()
        sender.join(30)
        assert not sender.is_alive()
        assert all(isinstance(a, Unavailable) and str(a) == STOPPED for a in got), got  # 503: send it again
        lock.rollback()
        lock.close()
        assert s.count() == 1 and s.queue_depth() == 0
        # the agents send them again: each stored once, by a new writer
        assert [a["stored"] for a in _send_all(s, bodies)] == ["new"] * 5
        assert s._batcher.proc.pid != first.pid and s.count() == 6
        assert [a["stored"] for a in _send_all(s, bodies)] == ["already"] * 5
    finally:
        s.close()


def test_a_database_file_away_fails_the_uploads_not_the_writer(tmp_path):
    s = _sqlite_store(tmp_path)
    path = tmp_path / "readiness.db"
    try:
        path.rename(tmp_path / "moved.db")
        with pytest.raises(Unavailable, match="no database file"):
            ingest(s, docs.body(docs.document()), "Stockholm")
        writer = s._batcher.proc
        (tmp_path / "moved.db").rename(path)
        assert ingest(s, docs.body(docs.document()), "Stockholm")["stored"] == "new"
        assert s._batcher.proc.pid == writer.pid and s.count() == 1
    finally:
        s.close()


def test_an_item_the_database_refuses_fails_alone_and_its_error_is_counted_here(tmp_path):
    s = _sqlite_store(tmp_path)
    bad = docs.document(hostname="refused-here")
    with sqlite3.connect(tmp_path / "readiness.db") as conn:  # the database itself refuses this one run
        conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON summaries WHEN NEW.run_id = '{bad['run_id']}' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    try:
        bodies = [docs.body(docs.document(hostname=f"pc{i}", room=f"r{i}")) for i in range(6)]
        answers = _send_all(s, [*bodies[:3], docs.body(bad), *bodies[3:]])
        assert isinstance(answers[3], WriteError) and "refused by a trigger" in str(answers[3])
        assert [a["stored"] for i, a in enumerate(answers) if i != 3] == ["new"] * 6
        assert s.count() == 6 and s.site_of(bad["run_id"]) is None
        assert s.errors.snapshot()["other"] >= 1  # the writer's database error, in this process's /metrics
    finally:
        s.close()
