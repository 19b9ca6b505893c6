"""The collector's database layer on a real SQLite file and a real PostgreSQL (tests/postgres.py):
schema migration, idempotent ingest (also under concurrency), tokens stored hashed, the site
rule, retention that keeps each room's latest measurement per check, Prometheus text, and a
PostgreSQL that goes away and comes back."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

import collector_docs as docs
from postgres import Postgres, postgres  # noqa: F401 - the session fixture
from readiness.collector.ingest import Refused, ingest
from readiness.collector.fleetdb import FleetView
from readiness.collector.migrations import downgrade, head
from readiness.collector.metrics import exposition
from readiness.collector.packed import is_packed, unpack
from readiness.collector.engine import StoreError, Unavailable
from readiness.collector.store import Store
from readiness.collector.tables import latest, tokens


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'readiness.db'}"
    else:
        url = request.getfixturevalue("postgres").fresh_url()
    s = Store(url)
    s.migrate()
    yield s
    s.close()


def test_migration_creates_the_schema_and_readers_refuse_an_empty_database(tmp_path):
    empty = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreError, match="holds no readiness data yet"):
        empty.require_schema()
    empty.migrate()
    empty.require_schema()  # now at the head revision
    empty.migrate()  # a second start changes nothing
    assert empty.count() == 0


@pytest.mark.parametrize("url, why", [("mysql://x@y/z", "unsupported database"), ("sqlite://", "give SQLite a file"),
                                      ("sqlite:////no/such/folder/x.db", "no folder"), ("::", "not a database URL")])
def test_bad_database_urls_are_plain_errors(url, why):
    with pytest.raises(StoreError, match=why):
        Store(url)


def test_the_same_result_is_stored_once_even_sent_at_once(store):
    doc = docs.document()
    body = docs.body(doc)
    assert ingest(store, body, "Stockholm") == {"run_id": doc["run_id"], "stored": "new"}
    assert ingest(store, body, "Stockholm")["stored"] == "already"
    other = docs.document(hostname="sthlm-mr2")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        outcomes.append(ingest(store, docs.body(other), "Stockholm")["stored"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already"] * 7 + ["new"]
    assert store.count() == 2
    assert store.document(other["run_id"]) == other  # the whole document comes back as sent


def test_sqlite_keeps_documents_packed_and_reads_those_stored_as_text_before(store, tmp_path):
    """SQLite: each document is its JSON text in one Zstandard frame (a BLOB, a fifth of the
    text of a real result), read back as sent; a document stored as text by an earlier release reads the same,
    whole and in the fleet. A changed document (a non-finite value the border made null) is packed
    too. PostgreSQL: JSONB, as before."""
    from readiness.collector.tables import results

    doc, changed = docs.document(hostname="packed"), docs.document(hostname="changed")
    changed["checks"]["system"]["metrics"]["cpu_cores"]["value"] = float("inf")
    body = docs.body(doc)
    ingest(store, body, "Stockholm")
    ingest(store, docs.body(changed).replace(b"Infinity", b"1e999"), "Stockholm")
    with store.engine.connect() as conn:
        kind, size = conn.execute(select(func.typeof(results.c.document), func.length(results.c.document))
                                  .where(results.c.run_id == doc["run_id"])).one() if store.dialect == "sqlite" else (None, 0)
    assert store.document(doc["run_id"]) == doc
    changed["checks"]["system"]["metrics"]["cpu_cores"]["value"] = None
    assert store.document(changed["run_id"]) == changed
    if store.dialect != "sqlite":
        return
    assert kind == "blob" and size < len(body) / 2, (kind, size, len(body))  # 2 kB here; a 57 kB result: a fifth
    old = docs.document(hostname="text-before", room="8.01")
    ingest(store, docs.body(old), "Stockholm")
    with store.engine.begin() as conn:  # as a release before packing stored it
        conn.execute(text("UPDATE results SET document = :t WHERE run_id = :r"),
                     {"t": docs.body(old).decode(), "r": old["run_id"]})
        conn.execute(text("DELETE FROM summaries WHERE run_id = :r"), {"r": old["run_id"]})  # and before summaries
        assert conn.execute(text("SELECT typeof(document) FROM results WHERE run_id = :r"),
                            {"r": old["run_id"]}).scalar_one() == "text"
    assert store.document(old["run_id"]) == old
    assert store.summary(old["run_id"]) == old  # the fleet reads a run without a summary from its document
    assert {run_id for run_id, _ in store.documents(all_runs=True)} == {doc["run_id"], changed["run_id"], old["run_id"]}
    # revision 0011 marks the packing: an older release refuses the database; back to 0010, text again
    with store.engine.begin() as conn:
        downgrade(conn, "0010")
        assert set(conn.execute(text("SELECT typeof(document) FROM results")).scalars()) == {"text"}
    assert store.document(doc["run_id"]) == doc and store.document(changed["run_id"]) == changed
    store.migrate()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head() == "0011"


def test_one_group_commit_stores_each_run_once_and_keeps_the_newest_per_check(store):
    """What a batch of the group commit holds when many agents upload at once: runs of one room
    out of order, the same run id twice (the second from another site), a run stored before."""
    from readiness.collector.ingest import check
    from readiness.collector.store import RawJSON

    def item(doc):
        outcome = check(docs.body(doc))
        assert outcome[0] == "ok", outcome
        _, row, measured, document, reqs = outcome
        return row, document if document is not None else RawJSON(docs.body(doc).decode()), measured, reqs

    days = timedelta(days=1)
    before = docs.document(age=1 * days)
    ingest(store, docs.body(before), "Stockholm")
    old, newest, middle = docs.document(age=30 * days), docs.document(age=2 * days), docs.document(age=10 * days, camera=False)
    twin = dict(newest, labels=dict(newest["labels"], site="Malmö"))
    outcomes = store._store_batch([item(old), item(newest), item(before), item(twin), item(middle)])
    assert outcomes == [(True, None), (True, None), (False, "Stockholm"), (False, "Stockholm"), (True, None)]
    with store.engine.connect() as conn:
        state = {c: r for c, r in conn.execute(select(latest.c.check_name, latest.c.run_id))}
    assert state[""] == before["run_id"] and state["system"] == before["run_id"]
    assert store.count() == 4


def test_the_group_commit_through_the_driver_writes_what_sqlalchemy_writes(tmp_path):
    """On SQLite the group commit binds its inserts itself (``store._Driven``): every table it
    writes holds, value for value, what SQLAlchemy's own executemany writes for the same batch
    (a run stored before, one twice, one with a document the border changed, one out of order).
    A document stored as the bytes it came in (``RawJSONBytes``) is the same TEXT value as
    SQLAlchemy's: text, not a blob."""
    from sqlalchemy import MetaData

    from readiness.collector.ingest import check
    from readiness.collector.accounts import digest
    from readiness.collector.store import REVOKED, RawJSONBytes, _Driven, _DrivenIn, _DrivenLatest

    days = timedelta(days=1)
    before = docs.document(age=1 * days)
    changed = docs.document(age=3 * days, hostname="changed")
    changed["checks"]["system"]["metrics"]["cpu_cores"]["value"] = float("inf")
    newest, middle = docs.document(age=2 * days), docs.document(age=10 * days, camera=False, room="5.01")
    bodies = [docs.body(d) for d in (newest, before, middle)]
    bodies.insert(1, docs.body(changed).replace(b"Infinity", b"1e999"))
    bodies.append(bodies[0])

    def item(body):
        outcome = check(body)
        assert outcome[0] == "ok", outcome
        _, row, measured, document, reqs = outcome
        return row, document if document is not None else RawJSONBytes(body), measured, reqs

    arrived = datetime.now(timezone.utc).replace(microsecond=123456)
    tables = {}
    for way in ("driver", "sqlalchemy"):
        store = Store(f"sqlite:///{tmp_path / (way + '.db')}")
        store.migrate()
        if way == "sqlalchemy":  # the statements as PostgreSQL runs them
            store.dialect = "postgresql"
            store._run = store._statements()
            store.dialect = "sqlite"
        else:
            assert isinstance(store._run.pop("latest"), _DrivenLatest)  # one row per run, json_each makes the rest
            assert all(isinstance(run, _Driven) for run in store._run.values())
            store._run = store._statements()
            assert isinstance(store._lookups["held"], _DrivenIn) and isinstance(store._lookups["drop_records"], _DrivenIn)
        ingest(store, docs.body(before), "Stockholm")
        # the tokens are checked again in the batch: a live one, one revoked, one expired
        live, revoked, expired = (store.add_token("upload", "Stockholm", expires=when)
                                  for when in (None, None, arrived - timedelta(seconds=1)))
        store.revoke_tokens(revoked[0].id)
        items = [(*item(b), digest(live[1])) for b in bodies]
        items += [(*item(docs.body(docs.document(room=room))), digest(token[1]))
                  for room, token in (("6.01", revoked), ("6.02", expired))]
        for row, *_ in items:
            row["received"] = arrived  # the arrival stamp is the only value that differs between the two
        assert store._store_batch(items) == [(True, None), (True, None), (False, "Stockholm"), (True, None),
                                             (False, "Stockholm"), (False, REVOKED), (False, REVOKED)]
        meta = MetaData()
        meta.reflect(store.engine)
        with store.engine.connect() as conn:
            tables[way] = {name: sorted((tuple(unpack(v).decode() if is_packed(v) else v for v in row)
                                         for row in conn.execute(text(f"SELECT * FROM {name}")).all()), key=repr)
                           for name in sorted(meta.tables)}
            kinds = {k for (k,) in conn.execute(text("SELECT DISTINCT typeof(document) FROM results"))}
        # SQLite's documents packed (the driver's way), the same text once unpacked; PostgreSQL's as text
        assert kinds == ({"blob"} if way == "driver" else {"text"}), way
        store.close()
    skip = {"tokens", "audit", "alembic_version"}
    for name in tables["driver"]:
        if name in skip:
            continue
        if name == "results":  # the run stored before the batch has its own arrival time in each
            strip = [tuple(v for i, v in enumerate(r) if i != 6) for r in tables["driver"][name]]
            assert strip == [tuple(v for i, v in enumerate(r) if i != 6) for r in tables["sqlalchemy"][name]]
        else:
            assert tables["driver"][name] == tables["sqlalchemy"][name], name
    assert len(tables["driver"]["results"]) == 4 and len(tables["driver"]["latest"]) == 5
    assert all(tables["driver"][name] for name in ("summaries", "run_history", "fleet_records", "day_counts",
                                                   "room_days", "requirements"))


RESULT_INDEXES = {"ix_results_site_started", "ix_results_started", "ix_results_received"}


def test_results_carry_only_the_indexes_a_read_uses(store):
    """Revision 0010 dropped (site, room), hostname, profile and verdict: no query reads by them,
    and each cost every upload a B-tree insert."""
    from sqlalchemy import inspect

    assert {index["name"] for index in inspect(store.engine).get_indexes("results")} == RESULT_INDEXES


def test_a_token_submits_for_its_own_site_only(store):
    doc = docs.document(site="Malmö")
    with pytest.raises(Refused) as err:
        ingest(store, docs.body(doc), "Stockholm")
    assert (err.value.status, err.value.code) == (403, "wrong_site")
    assert "Malmö" in err.value.reason and store.count() == 0
    ingest(store, docs.body(doc), "Malmö")
    # the same run id sent again by another site's token, with its label changed to match
    stolen = dict(doc, labels={"site": "Stockholm"})
    with pytest.raises(Refused) as err:
        ingest(store, docs.body(stolen), "Stockholm")
    assert err.value.status == 409 and store.count() == 1


@pytest.mark.parametrize("raw, status, code", [
    (b"{not json", 400, "invalid_json"),
    (b"\xff\xfe", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "too_deep"),
    (b'{"a": NaN}', 422, "invalid_result"),
    (b'{"a":' * 40 + b"1" + b"}" * 40, 422, "invalid_result"),  # within the parser's reach, past the border's
    (b'{"kind": "something else"}', 422, "invalid_result"),
    (b'{"kind": "readiness-result", "schema_version": 1}', 422, "invalid_result"),
    (b"x" * (8 * 1024 * 1024 + 1), 413, "too_large"),
])
def test_hostile_bodies_are_refused_with_a_reason(tmp_path, raw, status, code):
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    store.migrate()
    with pytest.raises(Refused) as err:
        ingest(store, raw, "Stockholm")
    assert (err.value.status, err.value.code) == (status, code)
    assert err.value.reason
    assert store.count() == 0


def test_a_non_finite_measured_value_is_stored_as_not_measured(store):
    doc = docs.document()
    doc["checks"]["system"]["metrics"]["cpu_cores"]["value"] = float("inf")
    ingest(store, docs.body(doc).replace(b"Infinity", b"1e999"), "Stockholm")
    assert store.document(doc["run_id"])["checks"]["system"]["metrics"]["cpu_cores"]["value"] is None


def test_utf16_and_byte_order_marks_are_stored_as_documents(store):
    a, b = docs.document(hostname="u16"), docs.document(hostname="bom")
    ingest(store, json.dumps(a).encode("utf-16"), "Stockholm")
    ingest(store, b"\xef\xbb\xbf" + docs.body(b), "Stockholm")
    assert store.document(a["run_id"]) == a and store.document(b["run_id"]) == b


def test_nul_characters_and_overlong_labels_are_refused_before_the_database(store):
    doc = docs.document()
    doc["checks"]["system"]["details"] = {"note": "a\u0000b"}
    with pytest.raises(Refused) as err:
        ingest(store, docs.body(doc), "Stockholm")
    assert err.value.code == "nul_character"
    long_site = "S" * 201
    with pytest.raises(Refused) as err:
        ingest(store, docs.body(docs.document(site=long_site)), long_site)
    assert err.value.status == 422 and "site" in err.value.reason
    assert store.count() == 0


def test_tokens_are_stored_as_hashes_and_revocation_takes_effect(store):
    token, secret = store.add_token("upload", "Stockholm")
    assert secret.startswith("rdy_") and len(secret) > 40
    assert store.lookup_token(secret).site == "Stockholm"
    assert store.lookup_token(secret + "x") is None
    with store.engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(select(tokens))]
    assert not any(secret in str(cell) for row in stored for cell in row)  # only the digest and a short hint
    assert store.revoke_tokens(site="Stockholm") == 1
    assert store.lookup_token(secret).revoked is not None
    assert [t.id for t in store.list_tokens()] == [token.id]


def test_retention_keeps_each_rooms_latest_measurement_per_check(store):
    days = timedelta(days=1)
    gone = docs.document(age=300 * days, height=1080)  # superseded for every check
    cam_old = docs.document(age=250 * days)  # superseded for every check
    cam_failed = docs.document(age=200 * days, height=None)  # the newest camera fact: the check failed
    newest = docs.document(age=100 * days, camera=False)  # a run without the camera check at all
    other_room = docs.document(room="5.01", age=400 * days)  # a room that went quiet: its only run stays
    fresh = docs.document(room="5.02", age=1 * days)
    for d in (cam_old, cam_failed, newest, gone, other_room, fresh):
        ingest(store, docs.body(d), "Stockholm")
    with store.engine.connect() as conn:
        state = {(k.split("\x1f")[2], c): r for k, c, r in conn.execute(select(latest.c.room_key, latest.c.check_name,
                                                                                   latest.c.run_id))}
    assert state[("4.12", "")] == newest["run_id"]
    assert state[("4.12", "system")] == newest["run_id"]
    assert state[("4.12", "camera")] == cam_failed["run_id"]
    assert docs.trend(store) == docs.counted_trend(store) != {}  # the trend kept at ingest
    assert store.prune(timedelta(days=30)) == 2  # gone and cam_old
    assert docs.trend(store) == docs.counted_trend(store)  # and what went came off it
    assert sum(docs.trend(store).values()) == 4
    with store.engine.connect() as conn:  # their fleet summaries go with them
        from readiness.collector.tables import summaries
        assert conn.execute(select(func.count()).select_from(summaries)).scalar_one() == 4
    kept = {run_id for run_id, _ in store.documents(all_runs=True)}
    assert kept == {newest["run_id"], cam_failed["run_id"], other_room["run_id"], fresh["run_id"]}
    assert {run_id for run_id, _ in store.documents()} == kept  # the fleet state: exactly the runs kept
    assert store.prune(timedelta(days=30)) == 0


def test_a_browser_self_test_never_becomes_an_agent_rooms_state(store, tmp_path):
    """Whoever opens the self-test page chooses its room label. A page result labelled with an
    agent's room, newer than the agent's run, with its camera failed and one core, is the room's browser
    state: the agent's room keeps its own camera fact, in the database as in the files' fleet.
    Browser runs go by age in retention; the agent's old room state stays."""
    from readiness.collector.fleetdb import build_fleet
    from readiness.fleet.collect import collect

    days = timedelta(days=1)
    agent = docs.document(age=100 * days)  # ready, camera 1080 p
    page = docs.document(age=1 * days, height=None, browser=True, cores=1)  # newer, same room, no camera, 1 core
    older_page = docs.document(age=50 * days, browser=True)
    loose = docs.document(room="", age=60 * days, browser=True)  # no room: a state of its own
    for d in (agent, page, older_page, loose):
        ingest(store, docs.body(d), "Stockholm")
    with store.engine.connect() as conn:
        state = {(k, c): r for k, c, r in conn.execute(select(latest.c.room_key, latest.c.check_name, latest.c.run_id))}
    assert state[("room\x1fStockholm\x1f4.12", "camera")] == agent["run_id"]
    assert state[("browser room\x1fStockholm\x1f4.12", "camera")] == page["run_id"]
    assert state[(f"browser\x1f{loose['host']['hostname']}", "")] == loose["run_id"]
    for fleet in (build_fleet(store), collect([docs.write(d, tmp_path / "files") for d in (agent, page, older_page, loose)])):
        units = {r.key: (r.sources["camera"][2], r.verdict, r.values.get("camera.height_px")) for r in fleet.runs}
        assert units == {("room", "Stockholm", "4.12"): (agent["run_id"], "PASS", 1080),
                         ("browser room", "Stockholm", "4.12"): (page["run_id"], "FAIL", None),
                         ("browser", loose["host"]["hostname"]): (loose["run_id"], "PASS", 1080)}
    view = FleetView(store)
    html = view.html("sv")  # the row says what it is
    assert html.count("självtest i webbläsare, hålls isär från agenternas resultat för rummet") == 1
    assert html.count('<div class="muted">självtest i webbläsare</div>') == 1
    # per site, the room's browser row beside its agent row, each one unit
    rooms = sorted((r["room"], r.get("by", ""), r["total"]) for s in view.get("sv")[1]["sites"] for r in s["rooms"])
    assert rooms == [("", "browser", 1), ("4.12", "", 1), ("4.12", "browser", 1)]
    assert html.count('4.12 <span class="muted">(självtest i webbläsare)</span>') == 1
    from readiness.fleet.step5 import analysis  # the action list names the row it means

    fleet = build_fleet(store)
    where = [w for a in analysis(fleet.runs, fleet.requirements, "sv")["actions"] for w in a["where"]]
    assert where and set(where) == {"4.12 (självtest i webbläsare)"}  # the agent's 4.12 is ready: in no action
    assert store.prune(timedelta(days=30)) == 2  # the old page runs, with and without a room; never the agent's
    assert {run_id for run_id, _ in store.documents(all_runs=True)} == {agent["run_id"], page["run_id"]}
    assert {r.key for r in build_fleet(store).runs} == {("room", "Stockholm", "4.12"), ("browser room", "Stockholm", "4.12")}


def test_a_database_with_browser_results_in_agents_rooms_is_mended_by_the_migration(store):
    """A collector before revision 0003 keyed a room-labelled page result as the room's agent
    runs. Put a database into that state by hand, mark it 0002, and start the collector: the
    page runs get their own keys and the rooms' ``latest`` rows are what fresh ingest makes."""
    from readiness.collector.tables import results

    days = timedelta(days=1)
    agent = docs.document(age=10 * days, hostname="browser-host")  # an agent whose host name only looks like one
    page = docs.document(age=1 * days, height=None, browser=True)
    loose = docs.document(room="", age=2 * days, browser=True)
    for d in (agent, page, loose):
        ingest(store, docs.body(d), "Stockholm")

    def state():
        with store.engine.connect() as conn:
            return (set(conn.execute(select(latest.c.room_key, latest.c.check_name, latest.c.run_id))),
                    set(conn.execute(select(results.c.run_id, results.c.room_key))))

    fresh = state()
    room, host = "room\x1fStockholm\x1f4.12", f"host\x1f{loose['host']['hostname']}"
    with store.engine.begin() as conn:  # as the old collector left it: the page's camera stood for the room
        conn.execute(results.update().where(results.c.run_id == page["run_id"]).values(room_key=room))
        conn.execute(results.update().where(results.c.run_id == loose["run_id"]).values(room_key=host))
        conn.execute(latest.delete().where(latest.c.room_key.startswith("browser")))
        conn.execute(latest.update().where(latest.c.room_key == room).values(run_id=page["run_id"]))
        conn.execute(latest.insert().values(room_key=host, check_name="", run_id=loose["run_id"],
                                            started=conn.execute(select(latest.c.started).limit(1)).scalar()))
        downgrade(conn, "0010")  # the documents as text again, as that release stored them
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
        conn.execute(text("DROP INDEX ix_results_received"))  # and without what revision 0004 adds
        conn.execute(text("DROP TABLE day_counts"))
    assert state() != fresh
    store.migrate()
    assert state() == fresh
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head()  # 0003 ran, and what came after
    store.migrate()  # at the head: nothing more to do
    assert state() == fresh


def test_metrics_count_rooms_per_site_with_bounded_labels(store):
    for d in (docs.document(room="1", hostname="a"), docs.document(room="2", hostname="b", cores=1),
              docs.document(room="3", hostname="c", height=None),
              docs.document(room="3", hostname="c-old", age=timedelta(days=3)),
              docs.document(site="Malmö", room="", hostname="ws1", camera=False)):
        ingest(store, docs.body(d), d["labels"]["site"])
    families = {f.name: f for f in text_string_to_metric_families(exposition(FleetView(store), {"new": 5}).decode())}
    rooms = {(s.labels["site"], s.labels["state"]): s.value for s in families["readiness_fleet_computers"].samples}
    assert rooms[("Stockholm", "ready")] == 1
    assert rooms[("Stockholm", "not_ready")] == 1
    assert rooms[("Stockholm", "unknown")] == 1  # room 3's newest camera fact: the check failed
    assert rooms[("Stockholm", "partial")] == 0
    assert rooms[("Malmö", "unknown")] == 1 and rooms[("Malmö", "partial")] == 1  # no camera check at all
    ages = {s.labels["site"]: s.value for s in families["readiness_fleet_newest_result_age_seconds"].samples}
    assert 0 <= ages["Stockholm"] < 3600
    assert {s.value for s in families["readiness_results_stored"].samples} == {5}
    per_room = {"readiness_room_last_report_age_seconds", "readiness_room_not_reporting", "readiness_room_ready"}
    labels = {k for f in families.values() if f.name not in per_room for s in f.samples for k in s.labels}
    assert labels <= {"site", "state", "outcome"}  # never a host or room label, but in the per-room gauges
    for name in per_room:  # one series per room and computer without a room label: 3 rooms, 1 computer
        assert {tuple(sorted(s.labels)) for s in families[name].samples} == {("host", "room", "site")}
        assert len(families[name].samples) == 4


def test_postgresql_going_away_is_unavailable_and_coming_back_works():
    pg = Postgres()
    try:
        store = Store(pg.fresh_url())
        store.migrate()
        first = docs.document()
        ingest(store, docs.body(first), "Stockholm")
        pg.stop()
        with pytest.raises(Unavailable):
            ingest(store, docs.body(docs.document(hostname="x")), "Stockholm")
        with pytest.raises(Unavailable):
            store.count()
        pg.start()
        ingest(store, docs.body(docs.document(hostname="y")), "Stockholm")
        assert store.count() == 2
        with store.engine.connect() as conn:  # JSONB on PostgreSQL: the document is queryable
            assert conn.execute(text("select document->'labels'->>'site' from results limit 1")).scalar() == "Stockholm"
        store.close()
    finally:
        pg.close()


def _fleet_rows(fleet):
    return ([(r.run_id, r.verdict, r.statuses, r.values, r.facts, r.missing) for r in fleet.runs],
            [r.to_dict() for r in fleet.requirements], fleet.results_read, fleet.superseded)


def test_the_fleet_from_summaries_is_the_fleet_from_whole_documents(store):
    from readiness.collector.fleetdb import build_fleet
    from readiness.collector.tables import requirements, results, summaries

    with_services = docs.document(room="7.01", hostname="c7")
    when = with_services["started_utc"]
    with_services["checks"]["connectivity"] = {
        "name": "connectivity", "status": "ok", "started_utc": when, "duration_s": 1.0, "title": "Connectivity",
        "metrics": {"reachable_count": {"value": 2, "unit": ""}}, "error": None,
        "details": {"services": [{"name": "Teams", "reachable": True, "udp_media": False}],
                    "probes": [{"host": f"h{i}.example", "ms": i} for i in range(200)]}}  # not for the fleet
    for d in (docs.document(), docs.document(age=timedelta(days=2), height=720), docs.document(room="5", cores=1),
              docs.document(room="6", height=None), with_services):
        ingest(store, docs.body(d), "Stockholm")
    from_summaries = build_fleet(store)
    with store.engine.connect() as conn:
        sizes = [(len(json.dumps(s)), len(json.dumps(d))) for s, d in conn.execute(
            select(summaries.c.summary, results.c.document).join(results, results.c.run_id == summaries.c.run_id))]
        stored_reqs = conn.execute(select(requirements.c.digest)).all()
    assert len(sizes) == 5 and all(s < d for s, d in sizes)  # the requirement texts and details stay in the document
    # each distinct requirement once, however many runs were judged by it
    assert len(stored_reqs) == len({json.dumps(r.to_dict(), sort_keys=True) for r in docs.profile().requirements})
    assert any(r.facts.get("connectivity.services") == {"Teams": [True, False]} for r in from_summaries.runs)
    with store.engine.begin() as conn:  # as a database from before summaries: whole documents are read
        conn.execute(summaries.delete())
    assert _fleet_rows(build_fleet(store)) == _fleet_rows(from_summaries)
    assert not from_summaries.skipped


def _point_record_nowhere(conn, run_id):
    """Hand-edit a run's fleet record as its summary: its first requirement is not stored."""
    import json

    from readiness.collector.tables import fleet_records

    text = conn.execute(select(fleet_records.c.record).where(fleet_records.c.run_id == run_id)).scalar()
    if text is None:  # a run no room holds has none: it is not read at all
        return
    record = json.loads(text)
    record["refs"][0] = "0" * 64
    conn.execute(fleet_records.update().where(fleet_records.c.run_id == run_id).values(record=json.dumps(record)))


def test_a_summary_pointing_to_no_stored_requirement_is_skipped_with_a_reason(store):
    from readiness.collector.fleetdb import build_fleet
    from readiness.collector.tables import summaries

    good, bad = docs.document(room="1"), docs.document(room="2")
    for d in (good, bad):
        ingest(store, docs.body(d), "Stockholm")
    with store.engine.begin() as conn:  # a hand-edited row
        summary = conn.execute(select(summaries.c.summary).where(summaries.c.run_id == bad["run_id"])).scalar_one()
        summary["judgement"]["items"][0]["requirement"] = "0" * 64
        conn.execute(summaries.update().where(summaries.c.run_id == bad["run_id"]).values(summary=summary))
        _point_record_nowhere(conn, bad["run_id"])
    fleet = build_fleet(store)
    assert [r.run_id for r in fleet.runs] == [good["run_id"]]
    assert [(s.path, s.reason) for s in fleet.skipped] == [
        (f"run {bad['run_id']}", f"malformed result (requirement '{'0' * 64}' is not stored)")]


def test_the_fleet_read_by_worker_processes_is_the_fleet_read_here(store):
    """``aggregate --db`` reads a large fleet in worker processes over parts of the run ids: the
    same rows, verdicts, figures and skips as one process reading it all."""
    from readiness.collector.fleetdb import _parts, build_fleet
    from readiness.collector.tables import summaries
    from readiness.fleet import figures

    days = timedelta(days=1)
    made = [docs.document(room=str(n % 7), hostname=f"pc{n}", age=(n % 5) * days, cores=2 + n % 4,
                          height=None if n % 6 == 0 else 720 + n, camera=n % 9 != 0) for n in range(60)]
    for d in made:
        ingest(store, docs.body(d), "Stockholm")
    bad = made[-1]  # a hand-edited row: listed as skipped by either way of reading
    with store.engine.begin() as conn:
        summary = conn.execute(select(summaries.c.summary).where(summaries.c.run_id == bad["run_id"])).scalar_one()
        summary["judgement"]["items"][0]["requirement"] = "0" * 64
        conn.execute(summaries.update().where(summaries.c.run_id == bad["run_id"]).values(summary=summary))
        _point_record_nowhere(conn, bad["run_id"])
    here, apart = build_fleet(store, workers=1), build_fleet(store, workers=3)
    assert len(_parts(12)) == 12 and _parts(12)[0][0] is None and _parts(12)[-1][1] is None
    assert len(here.runs) == 7 and [(s.path, s.reason) for s in apart.skipped] == [(s.path, s.reason) for s in here.skipped]
    a, b = figures(here), figures(apart)
    for key in ("counts", "sites", "rows", "inputs", "trend"):
        assert a[key] == b[key], key
    assert sorted(a["requirements"], key=repr) == sorted(b["requirements"], key=repr)



@pytest.mark.parametrize("raw", [b'{"n": 123456789012345678901234567890}', b'{"n": -9223372036854775809}',
                                 b'{"n": NaN, "m": -Infinity}', b'\xef\xbb\xbf{"a": 1}', '{"s": "\\ud800"}'.encode(),
                                 '{"a": 1}'.encode("utf-16"), b'{"a": 1, "a": 2.50, "b": [1e400, -0.0, 1e-400]}',
                                 '{"å": "ä\\u00f6", "n": 18446744073709551615}'.encode()])
def test_the_collectors_fast_json_reads_exactly_what_json_reads(raw):
    """Uploads and stored summaries are parsed by orjson where it gives what json gives; where
    it would not (an integer past 64 bits becomes a float there; NaN, UTF-16, a byte-order mark
    and lone surrogates it refuses), json reads them: the same values and types come back."""
    import math

    from readiness.collector.jsontext import loads

    def same(a, b):
        if isinstance(a, float) and math.isnan(a):
            return isinstance(b, float) and math.isnan(b)
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))

    assert same(loads(raw), json.loads(raw))
    if not raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe")):
        assert same(loads(raw.decode("utf-8", "surrogatepass")), json.loads(raw.decode("utf-8", "surrogatepass")))


def test_pruning_many_runs_goes_in_batches_and_ingest_answers_meanwhile(store):
    """A year of runs (here 12 000, pruned 1 000 per transaction) goes while results keep coming
    in: uploads are stored between the batches. A reader sees the old runs go a batch at a time
    (one transaction would take them all at once, and hold SQLite's write lock all along)."""
    from datetime import datetime, timezone

    from readiness.collector.tables import results

    n, batch = 12_000, 1_000
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(results.insert(), [
            {"run_id": f"{i:032x}", "site": "Stockholm", "room": f"r{i}", "hostname": f"pc{i}",
             "room_key": f"room\x1fStockholm\x1fr{i}", "started": old + timedelta(minutes=i), "received": old,
             "profile": "p", "verdict": "PASS", "coverage": 1.0, "document": {"n": i}} for i in range(n)])

    def old_left() -> int:
        with store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(results).where(results.c.started < old.replace(year=2021))
                                ).scalar_one()

    pruned: list[int] = []
    pruner = threading.Thread(target=lambda: pruned.append(store.prune(timedelta(days=30), batch=batch)))
    pruner.start()
    seen_mid_prune, stored = [], []
    while pruner.is_alive():
        d = docs.document(hostname=f"new{len(stored)}", room=f"n{len(stored)}")
        assert ingest(store, docs.body(d), "Stockholm")["stored"] == "new"
        stored.append(d["run_id"])
        left = old_left()
        if 0 < left < n:
            seen_mid_prune.append(left)
    pruner.join()
    assert pruned == [n] and old_left() == 0
    assert len(set(seen_mid_prune)) >= 2  # stored while the old runs were partly gone, at two batches at least
    assert store.count() == len(stored)  # every upload made during the prune is there


def _fleet_figures(store):
    from readiness.collector.fleetdb import build_fleet
    from readiness.fleet import figures

    got = figures(build_fleet(store))
    return {key: got[key] for key in ("counts", "sites", "rows", "inputs", "trend", "histograms", "step5", "skipped")}


def _made_fleet(store, n=24):
    days = timedelta(days=1)
    made = [docs.document(room=str(k % 5) if k % 6 else "", hostname=f"pc{k}", age=(k % 4) * days, cores=2 + k % 3,
                          height=None if k % 5 == 0 else 720 + k, camera=k % 7 != 0) for k in range(n)]
    for d in made:
        ingest(store, docs.body(d), "Stockholm")
    return made


def test_the_fleet_is_read_from_the_records_kept_at_ingest(store):
    """Each run the fleet state holds has its fleet record (displaced ones lose it); the view reads
    those, not the runs' summaries: with every summary made unreadable the fleet is the same. A run whose record
    cannot be used is read from its summary (the next tests)."""
    from readiness.collector.tables import fleet_records, results, summaries

    _made_fleet(store)
    before = _fleet_figures(store)
    with store.engine.begin() as conn:  # a record per run held, none of a run no room holds any more
        assert set(conn.execute(select(fleet_records.c.run_id)).scalars()) == \
            set(conn.execute(select(latest.c.run_id)).scalars())
        assert conn.execute(select(func.count()).select_from(results)).scalar_one() == 24
        conn.execute(summaries.update().values(summary={"not": "a result"}))
    # five rooms, and four computers without a room label (every sixth run)
    assert _fleet_figures(store) == before and before["inputs"]["used"] == 9 and before["skipped"] == []


def test_revision_0006_makes_the_records_of_the_runs_held_and_pruning_keeps_them_right(store):
    """A database left by revision 0005 (no records) gets the record of every run the fleet state
    holds when it is upgraded, and the fleet is what it was; pruning deletes a run's record with
    the run, and never a held run's."""
    from readiness.collector.tables import fleet_records

    _made_fleet(store)
    before = _fleet_figures(store)
    with store.engine.begin() as conn:  # as a collector of revision 0005 left it
        held = set(conn.execute(select(latest.c.run_id)).scalars())
        conn.execute(text("DROP TABLE fleet_records"))
        downgrade(conn, "0010")  # the documents as text again, as that release stored them
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    store.migrate()
    with store.engine.connect() as conn:
        assert set(conn.execute(select(fleet_records.c.run_id)).scalars()) == held
    assert _fleet_figures(store) == before
    ahead = -timedelta(seconds=2)  # started after every run stored (a clock this little ahead is taken)
    for d in (docs.document(room="0", hostname="pc5", age=ahead), docs.document(room="", hostname="pc0", age=ahead)):
        ingest(store, docs.body(d), "Stockholm")
    with store.engine.connect() as conn:  # their records made at ingest, those of the runs they displaced dropped
        assert set(conn.execute(select(fleet_records.c.run_id)).scalars()) == \
            set(conn.execute(select(latest.c.run_id)).scalars()) != held
    assert store.prune(timedelta(0)) > 0
    with store.engine.connect() as conn:
        assert set(conn.execute(select(fleet_records.c.run_id)).scalars()) == \
            set(conn.execute(select(latest.c.run_id)).scalars())


def test_a_record_naming_a_requirement_two_stored_ones_begin_with_is_read_from_its_summary(store):
    """Records name requirements by the first characters of their digests: when another stored
    requirement begins the same, those runs are read from their summaries, never given the other."""
    from readiness.collector.fleetdb import REF_CHARS
    from readiness.collector.tables import requirements, summaries

    _made_fleet(store)
    before = _fleet_figures(store)
    with store.engine.begin() as conn:
        digest, req = conn.execute(select(requirements.c.digest, requirements.c.requirement).limit(1)).one()
        conn.execute(requirements.insert().values(digest=digest[:REF_CHARS] + "f" * (64 - REF_CHARS),
                                                  requirement={**req, "metric": "system.other", "min": 123}))
    assert _fleet_figures(store) == before
    with store.engine.begin() as conn:  # and read from the summaries indeed: those runs now fail to be read
        conn.execute(summaries.update().values(summary={"not": "a result"}))
    assert _fleet_figures(store)["skipped"]


def test_a_page_leaves_the_rows_out_and_the_json_has_them_where_figures_puts_them(store):
    """The live view builds a page's figures without each row's state (only the JSON lists the
    rows: 10 000 dicts a /fleet page never reads); ``/api/v1/fleet`` then gets them added in their
    place, the same JSON, key for key and in the same order, as figures made with them."""
    from readiness.collector.fleetdb import FleetView, build_fleet
    from readiness.fleet import figures

    _made_fleet(store)
    view = FleetView(store, min_age_s=0)
    fleet, page = view.get("en")
    assert "rows" not in page and page["step5"]  # the page's figures hold the rest
    _, api = view.get("en", rows=True)
    whole = figures(build_fleet(store))
    for figs in (api, whole):
        figs.pop("generated_utc")
    assert list(api) == list(whole) and api == whole and len(api["rows"]) == len(fleet.runs) == 9
    assert view.get("en", rows=True)[1] is api  # kept with the page's, until the data changes


def test_a_checker_process_answers_as_check_does_and_a_killed_one_is_replaced():
    """``ingest.Checkers``: the outcome from a worker process is ``check``'s own (the body sent as
    bytes, the outcome pickled back), refusals included; a worker killed between uploads costs
    nothing: that upload is checked in the server and a new worker takes the next."""
    from readiness.collector.ingest import MAX_BODY_BYTES, Checkers, check

    def comparable(outcome):
        if outcome[0] != "ok":
            return outcome
        row = {k: v for k, v in outcome[1].items() if k != "received"}  # the arrival, read at each check
        return (outcome[0], row, *outcome[2:])

    doc = docs.document()
    body = docs.body(doc)
    for packs in (False, True):  # True: for SQLite, the worker packs the document it passed
        checkers = Checkers(1, packs)
        try:
            expected = comparable(check(body, MAX_BODY_BYTES, packs))
            assert (expected[3] is None) is not packs and (not packs or is_packed(expected[3]))
            assert comparable(checkers(body, MAX_BODY_BYTES)) == expected
            assert comparable(checkers(body, MAX_BODY_BYTES)) == expected  # texts sent once
            assert checkers(b"not json", MAX_BODY_BYTES)[:3] == ("refused", 400, "invalid_json")
            assert checkers(body, 100)[:3] == ("refused", 413, "too_large")  # the limit goes with the body
            (first,) = list(checkers.procs.values())
            first.kill()
            first.join(5)
            assert comparable(checkers(body, MAX_BODY_BYTES)) == expected
            (second,) = list(checkers.procs.values())
            assert second.pid != first.pid and second.is_alive()
            assert comparable(checkers(body, MAX_BODY_BYTES)) == expected
        finally:
            checkers.close()


def _latest_after_two_runs(store, order):
    """``latest`` after one group commit holding two runs of a new room, and what it should be:
    each check's newest run; the newer run did not check the camera, so the older one stays the
    room's newest camera measurement."""
    from readiness.collector.ingest import check
    from readiness.collector.store import RawJSON

    newer = docs.document(room="7.01", age=timedelta(days=1), camera=False)
    older = docs.document(room="7.01", age=timedelta(days=3))
    batch = [newer, older] if order == "newer first" else [older, newer]
    items = []
    for doc in batch:
        _, row, measured, document, reqs = check(docs.body(doc))
        items.append((row, document if document is not None else RawJSON(docs.body(doc).decode()), measured, reqs))
    assert store._store_batch(items) == [(True, None), (True, None)]
    with store.engine.connect() as conn:
        state = dict(conn.execute(select(latest.c.check_name, latest.c.run_id)).all())
    return state, {"": newer["run_id"], "system": newer["run_id"], "camera": older["run_id"]}


@pytest.mark.parametrize("order", ["newer first", "older first"])
def test_two_runs_of_a_room_in_one_batch_leave_the_newer_per_check_in_any_order(store, order):
    """Whichever came first in the batch (SQLite: one row per run made rows by json_each;
    PostgreSQL: the newest per check picked in Python)."""
    state, expected = _latest_after_two_runs(store, order)
    assert state == expected


def test_without_sqlites_json_functions_latest_is_kept_a_row_per_check(tmp_path, monkeypatch):
    """A Python whose SQLite lacks json_each (before 3.38 the JSON functions were an option): the
    group commit binds ``latest``'s rows one per check, with the same outcome."""
    from readiness.collector import store as store_module

    monkeypatch.setattr(store_module, "_has_json_each", lambda: False)
    s = Store(f"sqlite:///{tmp_path / 'readiness.db'}")
    s.migrate()
    try:
        assert not isinstance(s._run["latest"], store_module._DrivenLatest)
        state, expected = _latest_after_two_runs(s, "older first")
        assert state == expected
    finally:
        s.close()
