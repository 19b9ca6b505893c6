"""The fleet over time (``fleet.compliance``): compliance per site and room over 30 and 90 days,
and "not reporting", end to end: a real ``readiness serve --db`` (SQLite and PostgreSQL) fed
through its upload API with results whose start times spread over 90 days, ``aggregate --db``,
and ``aggregate`` over the same results as files.

The expectation is computed twice, from the same inputs and apart from the code under test: by
hand for the rooms whose schedule makes it simple (the numbers in ``HAND``), and for every day by
brute force over the runs themselves (``expected``: the definition in the README, run by run), so
the per-room-per-day table (``room_days``) and its upkeep are checked too, not only the arithmetic.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

import collector_docs as docs
from postgres import postgres  # noqa: F401 - the session fixture
from readiness.collector.ingest import ingest
from readiness.collector.migrations import downgrade
from readiness.collector.store import Store
from readiness.collector.tables import room_days
from readiness.fleet.compliance import compliance
from readiness.judge.verdicts import FAIL, READY
from test_collector_serve import Collector, add_token

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def _away_from_midnight() -> None:
    """The hand numbers assume the clock is more than a few minutes past midnight (UTC)."""
    now = datetime.now(timezone.utc)
    past = now - now.replace(hour=0, minute=0, second=0, microsecond=0)
    if past < timedelta(minutes=5):
        time.sleep((timedelta(minutes=5) - past).total_seconds() + 1)


def plan(now: datetime) -> list[dict]:
    """The fleet's history: (document, site, room) per run, times relative to ``now``.

    - Stockholm 4.1, "silent4": passes every day from 89 to 4 days ago, then nothing;
    - Stockholm 4.2, "fresh2": passes every day from 89 to 2 days ago;
    - Göteborg A, "flaky": every day from 59 days ago to today, failing on every third day (k % 3
      == 0), and on days k % 10 == 5 an earlier run that day that fails (the day's last run counts);
    - Göteborg, computer ws1 without a room label: its camera check fails (unknown) daily from 50
      to 40 days ago, then nothing;
    - Malmö M1: one run 100 days ago, before the 90 days: not reporting on every one of them.
    """
    docs.NOW = now  # collector_docs dates documents by its NOW less ``age``
    out = []
    minute = timedelta(seconds=60)
    for k in range(4, 90):
        out.append(docs.document(site="Stockholm", room="4.1", hostname="silent4", age=k * DAY + minute))
    for k in range(2, 90):
        out.append(docs.document(site="Stockholm", room="4.2", hostname="fresh2", age=k * DAY + minute))
    for k in range(0, 60):
        out.append(docs.document(site="Göteborg", room="A", hostname="flaky", cores=1 if k % 3 == 0 else 4,
                                 age=k * DAY + minute))
        if k % 10 == 5:
            out.append(docs.document(site="Göteborg", room="A", hostname="flaky", cores=1, age=k * DAY + 2 * minute))
    for k in range(40, 51):
        out.append(docs.document(site="Göteborg", room="", hostname="ws1", height=None, age=k * DAY + minute))
    out.append(docs.document(site="Malmö", room="M1", hostname="m1", age=100 * DAY))
    return out


# what the schedule gives by hand (see ``plan``): per site and room, the share ready over 30 and 90 days
HAND = {
    "sites": {"Stockholm": (round(100 * 58 / 60, 1), round(100 * 178 / 180, 1)),
              "Göteborg": (round(100 * 20 / 60, 1), round(100 * 40 / 111, 1)),
              "Malmö": (0.0, 0.0)},
    "rooms": {("Stockholm", "4.1", ""): (round(100 * 28 / 30, 1), round(100 * 88 / 90, 1)),
              ("Stockholm", "4.2", ""): (100.0, 100.0),
              ("Göteborg", "A", ""): (round(100 * 20 / 30, 1), round(100 * 40 / 60, 1)),
              ("Göteborg", "", "ws1"): (0.0, 0.0),
              ("Malmö", "M1", ""): (0.0, 0.0)},
}


def _group(verdict: str | None) -> str:
    return "ready" if verdict in READY else "not_ready" if verdict == FAIL else "unknown"


def expected(documents: list[dict], now: datetime, after_s: float) -> dict:
    """The definition, run by run: a room's state on a day is the verdict of its newest run
    started by the end of that day (now, for today), or not reporting when that run is older
    than ``after_s`` then; not counted before its first run."""
    per_room: dict[tuple[str, str, str], list[tuple[datetime, str, str]]] = {}
    for d in documents:
        site, room = d["labels"].get("site", ""), d["labels"].get("room", "")
        key = (site, room, "" if room else d["host"]["hostname"])
        started = datetime.fromisoformat(d["started_utc"].replace("Z", "+00:00"))
        per_room.setdefault(key, []).append((started, d["run_id"], d["judgement"]["verdict"]))
    today = now.date()
    days = [today - timedelta(days=89 - i) for i in range(90)]
    sites: dict[str, list[dict[str, int]]] = {}
    rooms = {}
    for key, runs in per_room.items():
        states = []
        for d in days:
            end = min(now, datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + DAY)
            before = [r for r in runs if r[0] < end]
            if not before:
                states.append(None)
                continue
            started, _, verdict = max(before)
            state = "not_reporting" if (end - started).total_seconds() > after_s else _group(verdict)
            states.append(state)
            counts = sites.setdefault(key[0], [dict.fromkeys(("ready", "not_ready", "unknown", "not_reporting"), 0)
                                               for _ in days])
            counts[days.index(d)][state] += 1
        rooms[key] = tuple(_share(states[90 - w:]) for w in (30, 90))
    site_shares = {}
    for site, counts in sites.items():
        site_shares[site] = tuple(
            round(100.0 * sum(c["ready"] for c in counts[90 - w:]) / sum(sum(c.values()) for c in counts[90 - w:]), 1)
            for w in (30, 90))
    return {"sites": site_shares, "rooms": rooms,
            "daily": {site: [c for c in counts] for site, counts in sites.items()}}


def _share(states: list) -> float | None:
    counted = [s for s in states if s is not None]
    return round(100.0 * sum(1 for s in counted if s == "ready") / len(counted), 1) if counted else None


def found(figs: dict) -> dict:
    """The same shape, from the fleet figures (``/api/v1/fleet``, ``aggregate --json``)."""
    comp = figs["compliance"]
    return {"sites": {s["site"]: (s["ready_pct_30"], s["ready_pct_90"]) for s in comp["sites"]},
            "rooms": {(r["site"], r["room"], r["hostname"]): (r["ready_pct_30"], r["ready_pct_90"])
                      for r in comp["rooms"]},
            "daily": {s["site"]: [{g: p[g] for g in ("ready", "not_ready", "unknown", "not_reporting")}
                                  for p in s["days"]] for s in comp["sites"]}}


def check_figures(figs: dict, documents: list[dict], now: datetime, after_s: float) -> None:
    got, want = found(figs), expected(documents, now, after_s)
    assert got == want
    if after_s == 3 * 86400:
        assert got["sites"] == HAND["sites"] and got["rooms"] == HAND["rooms"]


def silent_rooms(figs: dict) -> set[str]:
    return {r["room"] or r["hostname"] for r in figs["rows"] if r["not_reporting"]}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readiness.db'}"
    return request.getfixturevalue("postgres").fresh_url()


def _upload(c: Collector, tokens: dict[str, str], documents: list[dict]) -> None:
    for d in documents:
        status, _, data = c.request("POST", "/api/v1/results", docs.body(d), tokens[d["labels"]["site"]])
        assert status == 201, data


def test_compliance_and_not_reporting_from_a_real_collector_and_aggregate(cli, tmp_path, db_url):
    _away_from_midnight()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    documents = plan(now)
    tokens = {site: add_token(cli, db_url, "--site", site) for site in ("Stockholm", "Göteborg", "Malmö")}
    c = Collector(db_url)
    try:
        _upload(c, tokens, documents)
        status, _, data = c.request("GET", "/api/v1/fleet")
        assert status == 200
        figs = json.loads(data)
        check_figures(figs, documents, datetime.now(timezone.utc), 3 * 86400)
        # 4 days silent is not reporting, 2 days is not; the computer silent for 40 days neither ready nor unknown
        assert silent_rooms(figs) == {"4.1", "ws1", "M1"}
        assert figs["tiles"]["not_reporting"] == 3 and figs["tiles"]["ready"] == 1
        rows = {r["room"] or r["hostname"]: r for r in figs["rows"]}
        assert rows["4.1"]["verdict"] == "NOT_REPORTING" and rows["4.1"]["last_verdict"] == "PASS"
        assert rows["4.2"]["verdict"] == "PASS"
        site_rows = {s["site"]: s for s in figs["sites"]}
        assert site_rows["Stockholm"]["not_reporting"] == 1 and site_rows["Stockholm"]["ready"] == 1
        # /metrics: each room's age and state, labels as the rooms are named
        _, _, scraped = c.request("GET", "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(scraped.decode())}
        quiet = {(s.labels["site"], s.labels["room"], s.labels["host"]): s.value
                 for s in fams["readiness_room_not_reporting"].samples}
        assert quiet == {("Stockholm", "4.1", ""): 1.0, ("Stockholm", "4.2", ""): 0.0, ("Göteborg", "A", ""): 0.0,
                         ("Göteborg", "", "ws1"): 1.0, ("Malmö", "M1", ""): 1.0}
        ages = {s.labels["room"] or s.labels["host"]: s.value for s in fams["readiness_room_last_report_age_seconds"].samples}
        assert 4 * 86400 < ages["4.1"] < 4 * 86400 + 3600 and 2 * 86400 < ages["4.2"] < 2 * 86400 + 3600
        state = {s.labels["state"]: s.value for s in fams["readiness_fleet_computers"].samples
                 if s.labels["site"] == "Stockholm"}
        assert state["not_reporting"] == 1 and state["ready"] == 1
        _, _, page = c.request("GET", "/fleet")
        html = page.decode()
        assert html.count('<svg class="spark"') == 3 and "<script" not in html  # a line per site
        assert "not reporting" in html and "NOT REPORTING" in html
        # a partner's share link says it too: a silent room is not "ready as last seen"
        made = cli("serve", "token", "add", "--db", db_url, "--share", "--site", "Stockholm", "--expires", "30d",
                   "--base-url", c.url)
        assert made.returncode == 0, made.stderr
        shared = c.request("GET", made.stderr.strip().splitlines()[-1][len(c.url):],
                           headers={"X-Forwarded-For": "192.0.2.7"})[2].decode()
        assert shared.count("Not reporting: no result for too long") == 1  # 4.1
        assert shared.count("Ready for video meetings") == 1  # 4.2
    finally:
        c.kill()

    # the age is the collector's option: 1 day makes the room silent for 2 days not reporting too, 5 days neither
    for span, silent, seconds in (("1d", {"4.1", "4.2", "ws1", "M1"}, 86400), ("5d", {"ws1", "M1"}, 5 * 86400)):
        c = Collector(db_url, "--not-reporting-after", span)
        try:
            figs = json.loads(c.request("GET", "/api/v1/fleet")[2])
            assert silent_rooms(figs) == silent
            check_figures(figs, documents, datetime.now(timezone.utc), seconds)
        finally:
            c.kill()

    # aggregate over the database and over the same results as files: the same figures
    agg = cli("aggregate", "--db", db_url, "-o", str(tmp_path / "db.html"), "--json", "-", timeout=120)
    assert agg.returncode == 0, agg.stderr
    check_figures(json.loads(agg.stdout), documents, datetime.now(timezone.utc), 3 * 86400)
    share = tmp_path / "share"
    for d in documents:
        docs.write(d, share)
    for span, silent, seconds in (("3d", {"4.1", "ws1", "M1"}, 3 * 86400),
                                  ("36h", {"4.1", "4.2", "ws1", "M1"}, 36 * 3600)):
        agg = cli("aggregate", str(share), "-o", str(tmp_path / "f.html"), "--json", "-", "--not-reporting-after", span,
                  timeout=120)
        assert agg.returncode == 0, agg.stderr
        figs = json.loads(agg.stdout)
        assert silent_rooms(figs) == silent
        check_figures(figs, documents, datetime.now(timezone.utc), seconds)
    html = (tmp_path / "f.html").read_text(encoding="utf-8")
    assert 'class="spark"' in html and "36 hours" in html


def test_a_bad_not_reporting_age_is_one_line(cli, tmp_path):
    for args in (("aggregate", str(tmp_path)), ("serve", "--db", f"sqlite:///{tmp_path / 'x.db'}")):
        done = cli(*args, "--not-reporting-after", "soon")
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "'soon' is not a time span" in done.stderr


# --- the table kept at ingest, pruning and migration --------------------------------------------


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


def stored_days(store: Store) -> dict[tuple[str, str], str]:
    with store.engine.connect() as conn:
        return {(k, d): r for k, d, r in conn.execute(select(room_days.c.room_key, room_days.c.day, room_days.c.run_id))}


def days_from_runs(documents: list[dict]) -> dict[tuple[str, str], str]:
    """Per room and UTC day, its last run, from the documents (browser self-tests left out)."""
    last: dict[tuple[str, str], tuple[str, str]] = {}
    for d in documents:
        if d["host"].get("measured_by") == "browser":
            continue
        room = d["labels"].get("room", "")
        key = f"room\x1f{d['labels']['site']}\x1f{room}" if room else f"host\x1f{d['host']['hostname']}"
        at = (key, d["started_utc"][:10])
        if at not in last or last[at] < (d["started_utc"], d["run_id"]):
            last[at] = (d["started_utc"], d["run_id"])
    return {k: run_id for k, (_, run_id) in last.items()}


def test_room_days_follow_ingest_in_any_order_pruning_and_the_migration(store):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    docs.NOW = now
    documents = [docs.document(room="1", hostname="a", age=k * 6 * HOUR, cores=1 + k % 3) for k in range(40)]
    documents += [docs.document(room="", hostname="ws", age=k * 11 * HOUR) for k in range(20)]
    documents += [docs.document(browser=True, room="1", age=k * DAY) for k in range(5)]
    for d in reversed(documents):  # newest first: an older run of a day must not take the day
        ingest(store, docs.body(d), d["labels"].get("site", "Stockholm"))
    assert stored_days(store) == days_from_runs(documents)

    # of some sites only (a site lead's view): that site's rooms, and nothing of another's
    since = (now - timedelta(days=30)).date().isoformat()
    assert {k for k, *_ in store.room_days(since, frozenset({"Stockholm"}))} == {"room\x1fStockholm\x1f1",
                                                                             "host\x1fws"}
    assert list(store.room_days(since, frozenset({"Malmö"}))) == [] and store.room_labels(frozenset({"Malmö"})) == {}

    pruned = store.prune(timedelta(days=4), now=now)
    assert pruned > 0
    with store.engine.connect() as conn:
        kept = set(conn.execute(text("SELECT run_id FROM results")).scalars())
    assert stored_days(store) == days_from_runs([d for d in documents if d["run_id"] in kept])

    # the migration fills the table from the runs already stored
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE room_days"))
        downgrade(conn, "0010")  # the documents as text again, as that release stored them
        conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    store.migrate()
    assert stored_days(store) == days_from_runs([d for d in documents if d["run_id"] in kept])


def test_a_day_carries_until_the_age_and_today_ends_now():
    """The boundaries of the definition, from hand-made rows: the last run of a day counts; a day
    without runs carries the state; past the age (strictly more) it is not reporting."""
    now = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
    at = lambda d, h: datetime(2026, 3, d, h, 0, tzinfo=timezone.utc).timestamp()  # noqa: E731
    rows = [("room\x1fS\x1fR", "2026-03-05", at(5, 12), "FAIL"),  # the day's last run: FAIL
            ("room\x1fS\x1fR", "2026-03-07", at(7, 0), "PASS")]
    got = compliance(rows, {"room\x1fS\x1fR": ("S", "R", "")}, now, after_s=2 * 86400, windows=(7,))
    days = {p["day"]: next(g for g in ("ready", "not_ready", "unknown", "not_reporting") if p[g]) if p["rooms"] else None
            for p in got["sites"][0]["days"]}
    # 03-07 00:00 + 2 days = 03-09 00:00: the end of 03-08 is exactly the age (not past it): still ready
    assert days == {"2026-03-04": None, "2026-03-05": "not_ready", "2026-03-06": "not_ready",
                    "2026-03-07": "ready", "2026-03-08": "ready", "2026-03-09": "not_reporting",
                    "2026-03-10": "not_reporting"}
    assert got["rooms"][0]["days_7"] == 6 and got["rooms"][0]["ready_pct_7"] == round(100 * 2 / 6, 1)
    assert date.fromisoformat(got["last_day"]) == now.date()


# --- the live view's compliance, kept apart and followed room by room ---------------------------


def test_a_tally_followed_room_by_room_is_the_compliance_computed_whole():
    """``Tally``: rooms put, put again with other runs and dropped in any order give what
    ``compliance`` gives over the rows as they are then, at any time of the day."""
    import random

    from readiness.fleet.compliance import Tally, per_room

    rng = random.Random(7)
    now = datetime(2026, 3, 10, 9, 30, tzinfo=timezone.utc)

    def runs_of() -> list[tuple[str, float, str | None]]:
        days = {}
        for _ in range(rng.randrange(1, 40)):
            at = now - timedelta(seconds=rng.randrange(-3600, 100 * 86400))
            days[at.date().isoformat()] = (at.timestamp(), rng.choice(["PASS", "WARN", "FAIL", "UNKNOWN", None]))
        return [(d, *days[d]) for d in sorted(days)]

    keys = [f"room\x1fS{k % 4}\x1fR{k}" for k in range(30)] + [f"host\x1fh{k}" for k in range(10)] + ["browser\x1fb"]
    labels = {k: (f"S{n % 5}" if n % 7 else "", k.split("\x1f")[-1] if k.startswith("room") else "", f"h{n}")
              for n, k in enumerate(keys)}
    rooms = {k: runs_of() for k in keys}
    tally = Tally(now, 2 * 86400)
    for key in rng.sample(keys, len(keys)):
        tally.put(key, rooms[key], labels[key])
    for step in range(60):
        key = rng.choice(keys)
        if step % 5 == 4:
            rooms.pop(key, None)
            tally.drop(key)
        else:
            rooms[key] = runs_of()
            labels[key] = (f"S{rng.randrange(6)}", labels[key][1], labels[key][2])  # a computer moved to a site
            tally.put(key, rooms[key], labels[key])
        at = now + timedelta(hours=rng.randrange(0, 14))
        rows = [(k, *run) for k in sorted(rooms) for run in rooms[k]]
        assert tally.result(at) == compliance(rows, labels, at, 2 * 86400)
        assert dict(per_room(rows)) == {k: v for k, v in rooms.items()}


def test_a_new_run_moves_the_live_compliance_reading_only_its_room(store):
    """The live view (``FleetView``) keeps the compliance apart from the built fleet: a run that
    arrives moves its figures, from that room's days alone, to what a whole computation gives."""
    from readiness.collector.fleetdb import FleetView, day_rows

    _away_from_midnight()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    documents = plan(now)
    for d in documents:
        ingest(store, docs.body(d), d["labels"]["site"])
    view = FleetView(store, min_age_s=0)
    before = view.get("en")[1]["compliance"]
    assert view.compliance.full_reads == 1
    check_figures({"compliance": before}, documents, datetime.now(timezone.utc), 3 * 86400)

    # Göteborg's computer ws1, silent for 40 days (its camera unknown), reports again, ready:
    # today it counts as ready, no longer as not reporting
    docs.NOW = datetime.now(timezone.utc)
    back = docs.document(site="Göteborg", room="", hostname="ws1", age=timedelta(seconds=1))
    assert ingest(store, docs.body(back), "Göteborg")
    after = view.get("en")[1]["compliance"]
    assert view.compliance.full_reads == 1 and view.compliance.rooms_read == 1  # only its room was read again
    today = [{s["site"]: s for s in c["sites"]}["Göteborg"]["days"][-1] for c in (before, after)]
    assert (today[0]["ready"], today[0]["not_reporting"]) == (0, 1)
    assert (today[1]["ready"], today[1]["not_reporting"]) == (1, 0)
    ws1 = [next(r for r in c["rooms"] if r["hostname"] == "ws1") for c in (before, after)]
    assert ws1[0]["ready_30"] == 0 and ws1[1]["ready_30"] == 1
    assert found({"compliance": after}) == expected([*documents, back], datetime.now(timezone.utc), 3 * 86400)
    # the same as computed whole from the database's days at the same moment
    at = datetime.now(timezone.utc)
    rows, labels = day_rows(store, at, 3 * 86400)
    assert view.compliance.at(at) == compliance(rows, labels, at, 3 * 86400)


def test_a_room_back_after_a_long_silence_counts_its_silent_days_as_not_reporting(store):
    """A room silent since before the days the database reads (120 days ago) that reports again
    20 days ago: the 70 days between are not reporting by the definition, not "before its first
    run". The database must hand the compliance its newest run before those days, as it does for
    a room that never came back (Malmö M1 in ``plan``)."""
    from readiness.collector.fleetdb import day_rows

    _away_from_midnight()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    docs.NOW = now
    minute = timedelta(seconds=60)
    documents = [docs.document(site="Malmö", room="M2", hostname="m2", age=120 * DAY)]
    documents += [docs.document(site="Malmö", room="M2", hostname="m2", age=k * DAY + minute) for k in range(0, 21)]
    documents += [docs.document(site="Malmö", room="M1", hostname="m1", age=100 * DAY)]
    for d in documents:
        ingest(store, docs.body(d), "Malmö")
    at = datetime.now(timezone.utc)
    rows, labels = day_rows(store, at, 3 * 86400)
    got = found({"compliance": compliance(rows, labels, at, 3 * 86400)})
    want = expected(documents, at, 3 * 86400)
    assert got == want
    m2 = got["rooms"][("Malmö", "M2", "")]
    assert m2 == (round(100 * 21 / 30, 1), round(100 * 21 / 90, 1))  # 69 silent days of 90 counted


def test_the_first_read_at_the_start_in_a_child_process_is_the_read_made_here(store, tmp_path):
    """``ComplianceCache.prime`` (the server's start): above ``CHILD_RUNS`` stored runs the whole
    read is made in a spawned child process, and its tally gives what the same read made in this
    process gives; a child that cannot make it (here: its database path does not exist) leaves
    the read to this process, with the same answer. Below the threshold no child is started."""
    from readiness.collector.fleetdb import ComplianceCache

    _away_from_midnight()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    documents = plan(now)
    for d in documents:
        ingest(store, docs.body(d), d["labels"]["site"])
    at = datetime.now(timezone.utc)
    here = ComplianceCache(store, 3 * 86400)
    here.CHILD_RUNS = len(documents) + 1  # a small database: read here
    here.prime(at)
    assert (here.in_child, here.full_reads) == (False, 1)
    want = here.at(at)
    assert found({"compliance": want}) == expected(documents, at, 3 * 86400)

    child = ComplianceCache(store, 3 * 86400)
    child.CHILD_RUNS = 1
    child.prime(at)
    assert (child.in_child, child.full_reads, child.stamp) == (True, 1, here.stamp)
    assert child.at(at) == want
    assert child.full_reads == 1  # the child's tally and stamp were taken: nothing read again

    broken = ComplianceCache(store, 3 * 86400)
    broken.CHILD_RUNS = 1
    broken.prime(at, child_url=f"sqlite:///{tmp_path / 'missing' / 'readiness.db'}")
    assert (broken.in_child, broken.full_reads) == (False, 1)
    assert broken.at(at) == want


def test_a_script_without_a_main_guard_still_gets_the_compliance(store, tmp_path):
    """A program that primes the compliance from its top level, with no ``if __name__ ==
    "__main__"`` (a spawned child imports it again, and Python refuses to start a process from
    there): the read is made in that process instead, no traceback, the same answer."""
    import subprocess
    import sys

    from readiness.collector.fleetdb import ComplianceCache

    documents = plan(datetime.now(timezone.utc).replace(microsecond=0))
    for d in documents:
        ingest(store, docs.body(d), d["labels"]["site"])
    script = tmp_path / "prime.py"
    script.write_text(
        "import sys\n"
        "from datetime import datetime, timezone\n"
        "from readiness.collector.store import Store\n"
        "from readiness.collector.fleetdb import ComplianceCache\n"
        f"cache = ComplianceCache(Store({store.url!r}, create=False), 3 * 86400)\n"
        "cache.CHILD_RUNS = 1\n"
        "cache.prime(datetime.now(timezone.utc))\n"
        "print('rooms', len(cache.tally.site_of), 'in child', cache.in_child, file=sys.stderr)\n",
        encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    here = ComplianceCache(store, 3 * 86400)
    here.CHILD_RUNS = 10**9
    here.prime(datetime.now(timezone.utc))
    # its own line, and one from the child that imported it again (and read there itself)
    said = [line.split()[:2] for line in done.stderr.splitlines() if line.startswith("rooms ")]
    assert said == [["rooms", str(len(here.tally.site_of))]] * 2
