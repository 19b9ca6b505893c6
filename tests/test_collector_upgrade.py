"""Upgrades and backups of the collector's database, on real components: a database of the
previous schema (``tests/data/collector-prev.sqlite``, made by ``tests/data/make_collector_prev.py``)
upgraded in place by a real ``readiness serve`` (SQLite) and the same data at the old revision in
a real PostgreSQL; ``readiness serve db backup`` while an agent uploads, and the copy served
again; ``pg_dump``/``pg_restore`` of a collector's PostgreSQL database."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, inspect, select, text

import collector_docs as docs
from postgres import Postgres, postgres  # noqa: F401 - the session fixture
from readiness.collector.migrations import downgrade, head, upgrade
from readiness.collector.engine import aware
from readiness.collector.ingest import ingest
from readiness.collector.store import Store
from readiness.collector.tables import latest, requirements, results, summaries, tokens
from test_collector_serve import Collector, add_token, readiness_cmd, rows, spool_env
from test_collector_store import RESULT_INDEXES

DATA = Path(__file__).resolve().parent / "data"
PREV = DATA / "collector-prev.sqlite"
TOKEN = "rdy_previous-release-upload-token-for-the-upgrade-test"  # as make_collector_prev.py stored it
REVOKED = "rdy_previous-release-revoked-token"
ROOM = "room\x1fStockholm\x1f4.12"


def _revision(store: Store) -> str:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def _state(store: Store) -> tuple[set, set, set]:
    with store.engine.connect() as conn:
        return (set(conn.execute(select(latest.c.room_key, latest.c.check_name, latest.c.run_id))),
                set(conn.execute(select(results.c.run_id, results.c.room_key))),
                set(conn.execute(select(tokens.c.hint, tokens.c.revoked.is_(None)))))


def _browser_run(store: Store) -> str:
    return next(run_id for run_id, doc in store.documents(all_runs=True) if doc["host"].get("measured_by") == "browser")


def _check_upgraded(store: Store, before_runs: set[str]) -> None:
    """What the revision after the previous one promises, on the data the old one left."""
    assert _revision(store) == head() != "0002"
    latest_rows, result_rows, _ = _state(store)
    assert {run_id for run_id, _ in result_rows} >= before_runs  # every run kept
    page = _browser_run(store)
    assert (page, "browser room\x1fStockholm\x1f4.12") in result_rows  # the page's run has a key of its own
    newest_agent = {r for k, c, r in latest_rows if k == ROOM and c == ""}
    assert len(newest_agent) == 1 and page not in newest_agent  # the room's state is its agent's again
    assert docs.trend(store) == docs.counted_trend(store) != {}  # revision 0004 counted the runs already there
    # revision 0010 dropped the indexes no read uses
    assert {index["name"] for index in inspect(store.engine).get_indexes("results")} == RESULT_INDEXES


def test_a_previous_release_sqlite_database_is_upgraded_in_place_by_serve_with_its_data(cli, tmp_path):
    db = tmp_path / "readiness.db"
    shutil.copyfile(PREV, db)
    url = f"sqlite:///{db}"
    old = Store(url)
    assert _revision(old) == "0002"
    before_latest, before_results, before_tokens = _state(old)
    before_runs = {run_id for run_id, _ in before_results}
    assert len(before_runs) == 5 and any(r == _browser_run(old) for k, c, r in before_latest if k == ROOM and c == "")
    old.close()
    c = Collector(url)  # serve upgrades the schema when it starts
    try:
        new = docs.document(room="4.12", hostname="sthlm-mr1")
        assert c.request("POST", "/api/v1/results", docs.body(new), TOKEN)[0] == 201  # the old token still works
        assert c.request("POST", "/api/v1/results", docs.body(docs.document()), REVOKED)[0] == 401  # still revoked
        assert c.request("GET", "/readyz")[0] == 200
        code, _, body = c.request("GET", "/api/v1/fleet")
        assert code == 200 and json.loads(body)
    finally:
        c.kill()
    store = Store(url)
    try:
        _check_upgraded(store, before_runs)
        assert store.count() == 6 and _state(store)[2] == before_tokens
        assert {r for k, c, r in _state(store)[0] if k == ROOM and c == ""} == {new["run_id"]}
    finally:
        store.close()


def test_the_previous_schemas_data_in_postgresql_upgrades_as_in_sqlite(postgres, tmp_path):  # noqa: F811
    """The same rows loaded into a fresh PostgreSQL at the old revision, then upgraded: the
    state is the one SQLite reaches from the same file."""
    db = tmp_path / "readiness.db"
    shutil.copyfile(PREV, db)
    lite = Store(f"sqlite:///{db}")
    pg = Store(postgres.fresh_url())
    try:
        with pg.engine.begin() as conn:
            upgrade(conn, "0002")
        with lite.engine.connect() as src, pg.engine.begin() as dst:
            for table in (results, summaries, requirements, latest, tokens):
                # the old revision's columns, as each database holds them (not this release's)
                table = Table(table.name, MetaData(), autoload_with=src)
                got = [dict(r._mapping) for r in src.execute(select(table))]
                for row in got:
                    row.pop("id", None)  # PostgreSQL numbers the tokens itself
                    for key, value in row.items():
                        if hasattr(value, "tzinfo"):
                            row[key] = aware(value)
                dst.execute(table.insert(), got)
        before_runs = {run_id for run_id, _ in _state(pg)[1]}
        assert _revision(pg) == "0002" and len(before_runs) == 5
        pg.migrate()
        lite.migrate()
        _check_upgraded(pg, before_runs)
        assert _state(pg) == _state(lite)
        assert pg.lookup_token(TOKEN).revoked is None and pg.lookup_token(REVOKED).revoked is not None
    finally:
        lite.close()
        pg.close()


def test_backup_while_an_agent_uploads_is_whole_and_serves_again(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'readiness.db'}"
    token_file = tmp_path / "token"
    token_file.write_text(add_token(cli, url, "--site", "Stockholm"))
    n = 400
    made = [docs.write(docs.document(hostname=f"pc{i}", room=f"r{i}"), tmp_path / "out") for i in range(n)]
    env = spool_env(tmp_path)
    spooled = cli("upload", "http://127.0.0.1:9", *map(str, made), "--token-file", str(token_file), "--attempts", "1",
                  env=env)
    assert spooled.returncode == 1
    c = Collector(url)
    copy = tmp_path / "backup" / "readiness-copy.db"
    copy.parent.mkdir()
    try:
        agent = subprocess.Popen(readiness_cmd("upload", c.url, "--token-file", str(token_file)), env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while rows(url) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        done = cli("serve", "db", "backup", str(copy), "--db", url)
        uploading = agent.poll() is None
        _, err = agent.communicate(timeout=120)
        assert done.returncode == 0 and agent.returncode == 0, done.stderr + err
        assert uploading  # the backup was made while the agent was still sending
    finally:
        c.kill()
    assert rows(url) == n
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        in_copy = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        in_latest = conn.execute("SELECT count(DISTINCT run_id) FROM latest").fetchone()[0]
    assert 20 <= in_copy < n and in_latest == in_copy  # one consistent moment: each room's rows with its run
    assert f"backed up {in_copy} runs" in done.stderr
    assert list(copy.parent.iterdir()) == [copy]  # no temporary file left beside it
    # restore: serve the copy, and the agents' files sent again fill it without doubles
    restored = f"sqlite:///{copy}"
    c2 = Collector(restored)
    try:
        again = cli("upload", c2.url, *map(str, made), "--token-file", str(token_file), env=spool_env(tmp_path / "2"))
        assert again.returncode == 0, again.stderr
    finally:
        c2.kill()
    assert rows(restored) == n


def test_backup_refuses_postgresql_and_a_missing_database_in_one_line(cli, tmp_path):
    done = cli("serve", "db", "backup", str(tmp_path / "x.db"), "--db", "postgresql://readiness@db.example/readiness")
    assert done.returncode == 2 and "pg_dump" in done.stderr and "Traceback" not in done.stderr
    done = cli("serve", "db", "backup", str(tmp_path / "x.db"), "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert done.returncode == 2 and "no database file" in done.stderr and not (tmp_path / "none.db").exists()


def test_pg_dump_and_pg_restore_carry_a_collectors_database(postgres, tmp_path):  # noqa: F811
    url = postgres.fresh_url()
    store = Store(url)
    store.migrate()
    from readiness.collector.ingest import ingest

    made = [docs.document(hostname=f"pc{i}", room=f"r{i}") for i in range(5)]
    for d in made:
        ingest(store, docs.body(d), "Stockholm")
    _, secret = store.add_token("upload", "Stockholm")
    before = _state(store)
    store.close()
    dump = tmp_path / "readiness.dump"
    subprocess.run([str(postgres.bin / "pg_dump"), "--format=custom", f"--file={dump}", f"--dbname={url}"],
                   check=True, capture_output=True, timeout=120)
    target = postgres.fresh_url()
    subprocess.run([str(postgres.bin / "pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={target}", str(dump)],
                   check=True, capture_output=True, timeout=120)
    restored = Store(target)
    try:
        restored.require_schema()
        assert _state(restored) == before and restored.count() == 5
        assert {run_id for run_id, _ in restored.documents(all_runs=True)} == {d["run_id"] for d in made}
        assert restored.lookup_token(secret) is not None
        tok, _ = restored.add_token("upload", "Göteborg")  # the sequence came along: no id taken twice
        assert tok.id > max(t.id for t in restored.list_tokens() if t.site == "Stockholm")
    finally:
        restored.close()


def test_revision_0009_backfills_the_previous_releases_runs_as_the_live_record_makes_them(tmp_path):
    """0009 carries its own copy of the history record (a migration never calls live code); on
    the previous release's runs its rows equal what ``fleet.changes.history_record`` makes today."""
    from readiness.collector.tables import run_history
    from readiness.fleet.changes import history_record, room_run
    from readiness.plugins import described

    db = tmp_path / "readiness.db"
    shutil.copyfile(PREV, db)
    store = Store(f"sqlite:///{db}")
    try:
        assert _revision(store) == "0002"
        store.migrate()
        assert _revision(store) == head()
        with store.engine.connect() as conn:
            backfilled = {r.run_id: (r.room_key, r.site, r.record) for r in conn.execute(select(run_history))}
            stored = {r.run_id: (r.room_key, r.site) for r in conn.execute(select(results.c.run_id, results.c.room_key,
                                                                                  results.c.site))}
        followed = tuple(described().repeatability)
        live = {run_id: history_record(room_run(run_id, doc, followed)) for run_id, doc in store.documents(all_runs=True)}
    finally:
        store.close()
    assert len(live) == 5 and set(backfilled) == set(live) == set(stored)
    for run_id, (key, site, record) in backfilled.items():
        assert (key, site) == stored[run_id]
        assert record == live[run_id], run_id
    assert any(rec["values"] for _, _, rec in backfilled.values())  # figures were followed, not an empty copy
    assert any(rec["versions"] for _, _, rec in backfilled.values()) and any(rec["verdict"] for _, _, rec in backfilled.values())


def test_revision_0009_backfills_varied_runs_of_a_revision_0008_database_as_the_live_record(tmp_path):
    """The same on runs that exercise every part of the record: software versions (with a build
    after the number, and text that is no version), devices by name and by ``details.device`` (spaces
    around trimmed), followed figures and rooms without a label."""
    from readiness.collector.ingest import ingest
    from readiness.collector.tables import run_history
    from readiness.fleet.changes import history_record, room_run
    from readiness.plugins import described
    from test_history import doc

    made = [doc("Stockholm", "4.12", "mr-1", 3), doc("Stockholm", "4.12", "mr-1", 2, teams="24.2.0", speech=3.1,
                                                      camera="  Poly Studio  "),
            doc("Stockholm", "", "desk-7", 1, teams="Teams (new client)"), doc("Göteborg", "A", "gbg-1", 1, teams="24.3.0 (build 7)")]
    made[3]["checks"]["microphone"]["details"] = {"device": " Shure MXA310 "}
    store = Store(f"sqlite:///{tmp_path / 'readiness.db'}")
    try:
        store.migrate()
        for d in made:
            ingest(store, json.dumps(d).encode(), d["labels"]["site"])
        with store.engine.begin() as conn:  # as a collector of revision 0008 left it
            conn.execute(text("DROP TABLE run_history"))
            downgrade(conn, "0010")  # the documents as text again, as that release stored them
            conn.execute(text("UPDATE alembic_version SET version_num = '0008'"))
        store.migrate()
        with store.engine.connect() as conn:
            backfilled = {r.run_id: r.record for r in conn.execute(select(run_history))}
        followed = tuple(described().repeatability)
        live = {run_id: history_record(room_run(run_id, d, followed)) for run_id, d in store.documents(all_runs=True)}
    finally:
        store.close()
    assert len(backfilled) == len(made) and backfilled == live
    by_host = {rec["hostname"]: rec for rec in backfilled.values() if rec["hostname"] != "mr-1"}
    assert by_host["gbg-1"]["devices"]["microphone"] == "Shure MXA310"
    assert by_host["gbg-1"]["versions"]["software.teams_version"] == "24.3.0 (build 7)"
    assert "software.teams_version" not in by_host["desk-7"]["versions"] and by_host["desk-7"]["room"] == ""
    assert {rec["devices"].get("camera") for rec in backfilled.values()} >= {"Logitech Rally", "Poly Studio"}
    assert any(rec["values"].get("speakers.speech_mos") == 3.1 for rec in backfilled.values())


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_serve_db_downgrade_takes_the_schema_back_for_an_older_release(cli, tmp_path, engine, request):
    """``readiness serve db downgrade REVISION``: without --yes it lists what it would undo and
    changes nothing; with it the database is at REVISION, its documents as that release reads
    them (SQLite: text again, not packed); an unknown revision, a newer one and the same one are
    said plainly; a start of this release upgrades it back."""
    url = (f"sqlite:///{tmp_path / 'readiness.db'}" if engine == "sqlite"
           else request.getfixturevalue("postgres").fresh_url())
    store = Store(url)
    store.migrate()
    doc = docs.document()
    ingest(store, docs.body(doc), "Stockholm")
    store.close()
    listed = cli("serve", "db", "downgrade", "0010", "--db", url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("undo 0011: Documents packed on SQLite") and "nothing changed" in listed.stderr
    done = cli("serve", "db", "downgrade", "0010", "--db", url, "--yes")
    assert done.returncode == 0 and "the database has schema 0010 now" in done.stderr, done.stderr
    store = Store(url)
    try:
        assert _revision(store) == "0010" and store.document(doc["run_id"]) == doc
        if engine == "sqlite":
            with store.engine.connect() as conn:
                assert conn.execute(text("SELECT typeof(document) FROM results")).scalar_one() == "text"
    finally:
        store.close()
    for revision, code, said in (("0099", 2, "no schema revision '0099': this readiness knows 0001, "),
                                 (head(), 2, f"{head()} is newer than the database's schema 0010"),
                                 ("0010", 0, "the database has schema 0010 already")):
        got = cli("serve", "db", "downgrade", revision, "--db", url, "--yes")
        assert got.returncode == code and said in got.stderr and "Traceback" not in got.stderr, got.stderr
    store = Store(url)
    try:
        store.migrate()  # what serve does at its start
        assert _revision(store) == head() and store.document(doc["run_id"]) == doc
    finally:
        store.close()
