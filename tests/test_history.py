"""A room's history, what changed, and suspected regressions (``fleet.changes``, ``fleet.history``,
``collector.history``), with real components: result documents made and judged by the project's
own model, a real ``readiness serve --db`` on SQLite and on PostgreSQL fed over HTTP, the page
loaded from it in a real Chromium (its Content-Security-Policy header as served), and
``readiness aggregate --history`` over result files.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import fleet_rooms
from browser import Chromium, chromium_path, load_page
from postgres import postgres  # noqa: F401 - the session fixture
from readiness.collector.http import CSP
from readiness.fleet.changes import moved, room_run, suspected_regressions
from readiness.fleet.history import room_changes, room_path
from readiness.judge.requirements import load_profile
from readiness.judge.verdicts import judge
from readiness.plugins import described, load_plugins
from support import need
from test_collector_serve import HOSTILE, Collector, add_token

FOLLOWED = tuple(described().repeatability)
TEAMS = "software.teams_version"


def doc(site: str, room: str, host: str, days_ago: float, teams: str = "24.1.0", speech: float = 4.5,
        upload: float = 20.0, camera: str = "Logitech Rally", browser: bool = False) -> dict[str, Any]:
    """One judged meeting-room result ``days_ago`` days back: every figure passing the meeting-room
    list except those given, a Teams version, the camera by name."""
    faults = {"speakers.speech_mos": speech, "bandwidth.upload_mbps": upload}
    result = fleet_rooms.room(host, site, room, faults, minutes=int(days_ago * 1440), browser=browser)
    result.checks["software"] = type(result.checks["camera"])(
        name="software", status="ok", started_utc=result.started_utc, duration_s=0.5,
        metrics={"teams_version": {"value": teams, "unit": ""}})
    result.checks["camera"].details = {"source": {"kind": "index", "name": camera, "path": "/dev/video0"}}
    plugins = load_plugins()
    result.judgement = judge(result, load_profile("meeting-room", checks=plugins.checks, broken=plugins.broken)).to_dict()
    return json.loads(result.to_json())


def runs_of(docs: list[dict[str, Any]]) -> list[Any]:
    return [room_run(d["run_id"], d, FOLLOWED) for d in docs]


# --- what changed ----------------------------------------------------------------------------

def test_what_changed_sees_a_version_a_device_and_a_drop_beyond_repeatability_but_not_a_move_within():
    runs = runs_of([doc("Stockholm", "4.12", "mr1", 3),
                    doc("Stockholm", "4.12", "mr1", 2, speech=4.4, upload=19.5),  # within their spread
                    doc("Stockholm", "4.12", "mr1", 1, teams="24.2.0", speech=3.4, upload=8.0, camera="Poly Studio")])
    found = room_changes(runs)
    assert not [c for c in found if c.run_id == runs[1].run_id], found  # nothing moved beyond chance
    last = {(c.kind, c.subject): c for c in found if c.run_id == runs[2].run_id}
    assert (last[("version", TEAMS)].before, last[("version", TEAMS)].after) == ("24.1.0", "24.2.0")
    assert (last[("device", "camera")].before, last[("device", "camera")].after) == ("Logitech Rally", "Poly Studio")
    speech = last[("figure", "speakers.speech_mos")]
    assert (speech.before, speech.after, speech.worse) == (4.4, 3.4, True)
    assert last[("figure", "bandwidth.upload_mbps")].worse is True
    # the declared repeatability is what decides: the 0.1 step is within speech quality's, the 1.0 fall beyond it
    rep = described().repeatability["speakers.speech_mos"]
    assert rep.source and not moved(4.5, 4.4, rep) and moved(4.4, 3.4, rep)


def _room_changes(site: str, room: str, versions: list[str], speeches: list[float]) -> list[Any]:
    return room_changes(runs_of([doc(site, room, f"h-{room}", 5 - i, teams=v, speech=s)
                                 for i, (v, s) in enumerate(zip(versions, speeches))]))


def test_a_figure_that_fell_in_several_rooms_after_the_same_update_is_a_suspect_and_scattered_falls_are_not():
    grouped = {f"Stockholm / {r}": _room_changes("Stockholm", r, ["24.1.0", "24.1.0", "24.2.0"], [4.5, 4.5, 3.3])
               for r in ("4.12", "4.13", "5.01", "5.02")}
    found = suspected_regressions(grouped, min_rooms=3)
    speech = [r for r in found if r.figure == "speakers.speech_mos"]
    assert len(speech) == 1 and speech[0].key == "speakers.speech_mos|version:software.teams_version=24.2.0"
    assert len(speech[0].rooms) == 4 and speech[0].same_day == 4 and speech[0].changed_rooms == 4
    # the key is stable: the same rooms read in another order give the same regression
    again = suspected_regressions(dict(reversed(list(grouped.items()))), min_rooms=3)
    assert [r.key for r in again] == [r.key for r in found]
    # falls in as many rooms, each after a different update or none: no suspect
    scattered = {f"Göteborg / {r}": _room_changes("Göteborg", r, ["24.1.0", "24.1.0", v], [4.5, 4.5, 3.3])
                 for r, v in (("1", "24.3.0"), ("2", "24.4.0"), ("3", "24.1.0"), ("4", "24.5.0"))}
    assert suspected_regressions(scattered, min_rooms=3) == []
    # an update that changed nothing is no suspect either
    calm = {f"Malmö / {r}": _room_changes("Malmö", r, ["24.1.0", "24.1.0", "24.2.0"], [4.5, 4.5, 4.45]) for r in "abcd"}
    assert suspected_regressions(calm, min_rooms=3) == []


# --- the collector's pages -----------------------------------------------------------------------

def _feed(collector: Collector, token: str, docs: list[dict[str, Any]]) -> None:
    for d in docs:
        status, _, body = collector.request("POST", "/api/v1/results", json.dumps(d).encode(), token)
        assert status == 201, body


def _stockholm() -> list[dict[str, Any]]:
    """Three rooms updated to Teams 24.2 two days ago, speech quality fell in each after it; a
    fourth computer without a room label."""
    out = []
    for room in ("4.12", "4.13", "5.01"):
        for i, (v, s) in enumerate([("24.1.0", 4.5), ("24.1.0", 4.5), ("24.2.0", 3.2), ("24.2.0", 3.3)]):
            out.append(doc("Stockholm", room, f"mr-{room}", 4 - i, teams=v, speech=s))
    out += [doc("Stockholm", "", "desk-7", 2 - i) for i in range(2)]
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readiness.db'}"
    return request.getfixturevalue("postgres").fresh_url()


def test_room_history_on_the_collector_scoped_escaped_and_linked(cli, db_url):
    stockholm_up = add_token(cli, db_url, "--site", "Stockholm")
    goteborg_up = add_token(cli, db_url, "--site", "Göteborg")
    hostile_up = add_token(cli, db_url, "--site", HOSTILE)
    goteborg_read = add_token(cli, db_url, "--read", "--site", "Göteborg")
    stockholm_read = add_token(cli, db_url, "--read", "--site", "Stockholm")
    c = Collector(db_url)
    try:
        sthlm = _stockholm()
        _feed(c, stockholm_up, sthlm)
        _feed(c, goteborg_up, [doc("Göteborg", "A", "gbg-1", 1)])
        _feed(c, hostile_up, [doc(HOSTILE, HOSTILE, "evil", 2 - i) for i in range(2)])

        status, headers, page = c.request("GET", "/rooms/Stockholm/4.12")
        assert status == 200 and headers["content-security-policy"] == CSP
        text = page.decode()
        assert text.count("<svg") >= 4 and "<script" not in text
        assert "24.1.0 → 24.2.0" in text  # what changed: the update, on the page
        for d in sthlm[:4]:  # every run of the room linked to its report
            assert f'href="../../runs/{d["run_id"]}"' in text
        assert 'class="day PASS"' in text and 'aria-labelledby="plot-' in text
        status, _, sv = c.request("GET", "/rooms/Stockholm/4.12?lang=sv")
        assert status == 200 and "Vad som ändrades" in sv.decode() and "What changed" not in sv.decode()

        # a caller scoped to another site gets no such room; its own site's reader gets it
        assert c.request("GET", "/rooms/Stockholm/4.12", token=goteborg_read)[0] == 404
        assert c.request("GET", "/rooms/Stockholm/4.12", token=stockholm_read)[0] == 200
        assert c.request("GET", "/hosts/desk-7", token=goteborg_read)[0] == 404
        status, _, host_page = c.request("GET", "/hosts/desk-7", token=stockholm_read)
        assert status == 200 and b"desk-7" in host_page
        assert c.request("GET", "/rooms/Stockholm/9.99")[0] == 404
        assert c.request("GET", "/rooms/Stockholm")[0] == 404

        # a hostile site and room name: found through its escaped path, shown escaped
        status, _, evil = c.request("GET", room_path(HOSTILE, HOSTILE, ""))
        assert status == 200 and b"<script>alert" not in evil and b"&lt;script&gt;alert" in evil

        # /fleet links each room's history and lists the suspected regression (found in a thread
        # of its own, started by the first look: the page never waits for it)
        deadline = time.monotonic() + 60
        while True:
            status, _, fleet = c.request("GET", "/fleet")
            fleet_text = fleet.decode()
            if 'id="regressions"' in fleet_text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert 'href="rooms/Stockholm/4.12"' in fleet_text and 'href="hosts/desk-7"' in fleet_text
        assert f'href="rooms/{quote(HOSTILE, safe="")}/{quote(HOSTILE, safe="")}"'.replace("&", "&amp;") in fleet_text
        assert 'id="regressions"' in fleet_text and "in 3 rooms after" in fleet_text
        # a reader of Göteborg sees no regression of Stockholm's rooms
        status, _, gbg_fleet = c.request("GET", "/fleet", token=goteborg_read)
        assert status == 200 and b'id="regressions"' not in gbg_fleet
    finally:
        c.kill()


def test_room_history_in_chromium_draws_plots_runs_no_script_and_has_text_alternatives(cli, tmp_path):
    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    url = f"sqlite:///{tmp_path / 'readiness.db'}"
    up = add_token(cli, url, "--site", "Stockholm")
    c = Collector(url)
    try:
        _feed(c, up, _stockholm())
        with Chromium(allow=["127.0.0.1"]) as browser:
            assert browser.navigate(f"{c.url}/rooms/Stockholm/4.12")
            browser.pipe.drain(0.5)
            sizes = browser.evaluate("JSON.stringify([...document.querySelectorAll('figure.plot svg')]"
                                     ".map(s => { const r = s.getBoundingClientRect(); return [r.width, r.height,"
                                     " s.querySelectorAll('path').length]; }))")
            scripts = browser.evaluate("document.scripts.length")
            alts = browser.evaluate("[...document.querySelectorAll('figure.plot')].filter(f => "
                                    "f.querySelector('figcaption') && f.querySelector('ul.alt li') && "
                                    "document.getElementById(f.querySelector('svg').getAttribute('aria-labelledby'))).length")
            timeline = browser.evaluate("document.querySelectorAll('.days .day').length")
            seen = browser.page_events()
        plots = json.loads(sizes)
        assert len(plots) >= 4 and all(w > 100 and h > 30 and paths > 5 for w, h, paths in plots), plots
        assert scripts == 0 and alts == len(plots) and timeline == 4
        assert seen.errors == [] and seen.dialogs == [], seen.errors  # a CSP violation is logged as an error
        # printable: the page as a file prints on A4 with its plots, still without script
        page = tmp_path / "room.html"
        page.write_bytes(c.request("GET", "/rooms/Stockholm/4.12")[2])
        printed = load_page(page, print_pdf=tmp_path / "room.pdf")
        assert printed.scripts == 0 and printed.pdf_pages >= 1 and printed.errors == []
    finally:
        c.kill()


def test_aggregate_history_writes_a_page_per_room_and_an_index_from_files(cli, tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    for d in _stockholm():
        (folder / f"readiness-{d['run_id']}.json").write_text(json.dumps(d), encoding="utf-8")
    done = cli("aggregate", str(folder), "-o", str(tmp_path / "fleet.html"), "--history", str(tmp_path / "hist"))
    assert done.returncode == 0, done.stderr
    index = (tmp_path / "hist" / "index.html").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (tmp_path / "hist").glob("*.html"))
    assert len(pages) == 5 and "index.html" in pages  # three rooms, a computer, the index
    for name in pages:
        if name != "index.html":
            assert f'href="{name}"' in index
    room = (tmp_path / "hist" / "room-Stockholm--4.12.html").read_text(encoding="utf-8")
    assert room.count("<svg") >= 4 and "<script" not in room and "24.1.0 → 24.2.0" in room
    assert "in 3 rooms after" in index
    fleet = (tmp_path / "fleet.html").read_text(encoding="utf-8")
    assert "in 3 rooms after" in fleet and 'href="hist/room-Stockholm--4.12.html"' in fleet
    assert 'href="hist/host-desk-7.html"' in fleet
    refused = cli("aggregate", "--db", "sqlite:///x.db", "--history", str(tmp_path / "h2"))
    assert refused.returncode == 2 and "--history reads result files" in refused.stderr


def test_revision_0009_fills_the_history_of_runs_stored_before_it_as_ingest_does(db_url):
    from sqlalchemy import select, text

    from readiness.collector.ingest import ingest
    from readiness.collector.migrations import downgrade, head
    from readiness.collector.store import Store
    from readiness.collector.tables import run_history

    store = Store(db_url)
    try:
        store.migrate()
        for d in _stockholm():
            ingest(store, json.dumps(d).encode(), "Stockholm")

        def rows() -> dict[str, Any]:
            with store.engine.connect() as conn:
                return {r.run_id: (r.room_key, r.site, r.record) for r in conn.execute(select(run_history))}

        fresh = rows()
        assert len(fresh) == len(_stockholm()) and any(rec["versions"] for _, _, rec in fresh.values())
        with store.engine.begin() as conn:  # as a collector of revision 0005 left it
            downgrade(conn, "0010")  # the documents as text again, as that release stored them
            conn.execute(text("DROP TABLE run_history"))
            conn.execute(text("UPDATE alembic_version SET version_num = '0005'"))
        store.migrate()
        assert rows() == fresh
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head()
    finally:
        store.close()


def test_a_plot_shows_hostile_labels_as_text_and_holds_no_script():
    from xml.dom.minidom import parseString

    from readiness.render.plots import Bound, Series, line_svg

    when = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=i) for i in range(3)]
    svg = line_svg([Series(HOSTILE + " $x$ \\", when, [1.0, 2.0, 3.0])], [Bound(2.0, "$a <b>", "required")], "$",
                   labelled_by=HOSTILE)
    assert "<script" not in svg and "<img" not in svg
    dom = parseString(svg)  # well-formed: every hostile character escaped
    assert dom.documentElement.getAttribute("role") == "img"
    assert dom.documentElement.getAttribute("aria-labelledby") == HOSTILE
    assert not dom.getElementsByTagName("script")


def test_aggregate_history_without_matplotlib_says_what_to_install_in_one_line(cli, tmp_path):
    import os

    blocked = tmp_path / "blocked"
    (blocked / "matplotlib").mkdir(parents=True)  # shadows the installed one: its import fails
    (blocked / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    folder = tmp_path / "share"
    folder.mkdir()
    for d in _stockholm()[:4]:
        (folder / f"readiness-{d['run_id']}.json").write_text(json.dumps(d), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")]))
    done = cli("aggregate", str(folder), "-o", str(tmp_path / "fleet.html"), "--history", str(tmp_path / "hist"), env=env)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "pip install 'readiness[server]'" in done.stderr
    assert not list((tmp_path / "hist").glob("*.html"))  # no page written
    assert (tmp_path / "fleet.html").is_file()  # the fleet report, which needs no plot, is there


def test_the_suspected_regressions_on_fleet_open_one_alert_and_none_before_the_first_pass(tmp_path):
    """The wiring ``readiness serve --alerts`` uses: the collector's pass over the rooms' changes
    hands its regressions (stable key, words) to the alerts; before its first pass it hands None,
    so a restart does not clear and reopen every open regression."""
    from readiness.collector.alertconfig import load_alerts
    from readiness.collector.alerts import Alerts
    from readiness.collector.history import FleetChanges
    from readiness.collector.ingest import ingest
    from readiness.collector.store import Store

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        store.migrate()
        for d in _stockholm():
            ingest(store, json.dumps(d).encode(), "Stockholm")
        changes = FleetChanges(store, min_age_s=3600)
        assert changes.keyed("en") is None  # not looked yet; this asking started the first pass
        deadline = time.monotonic() + 60
        while changes._stamp is None and time.monotonic() < deadline:
            time.sleep(0.05)
        keyed = changes.keyed("sv")
        assert [k for k, _ in keyed] == ["speakers.speech_mos|version:software.teams_version=24.2.0"]
        assert "24.2.0" in keyed[0][1]
        rules = tmp_path / "alerts.toml"
        rules.write_text('group_within = "1s"\n[channel.hook]\ntype = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
                         'secret = "s3cret-s3cret-s3cret"\n[[rule]]\nevents = ["regression"]\nchannels = ["hook"]\n')
        sent: list = []
        alerts = Alerts(store, load_alerts(rules), 3 * 86400, lambda _c, ch, m: sent.append(m))
        alerts.regressions(keyed)
        alerts.flush(force=True)
        alerts.deliver()
        assert len(sent) == 1 and keyed[0][1] in sent[0].text
    finally:
        store.close()


def test_the_regressions_pass_waits_for_the_first_fleet_page_or_its_time_limit(tmp_path):
    """At a collector's start the pass over the rooms' changes (about a second of CPU for 10 000
    rooms) is held until a first /fleet page was made (``FleetView.served``), or at most a time
    limit: asking meanwhile starts nothing; the page's end lets it start."""
    from readiness.collector.fleetdb import FleetView
    from readiness.collector.history import FleetChanges
    from readiness.collector.ingest import ingest
    from readiness.collector.store import Store

    def found(changes: FleetChanges, within_s: float) -> list | None:
        deadline = time.monotonic() + within_s
        while (keyed := changes.keyed("en")) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return keyed

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        store.migrate()
        for d in _stockholm():
            ingest(store, json.dumps(d).encode(), "Stockholm")
        view = FleetView(store)
        changes = FleetChanges(store, min_age_s=0)
        changes.hold(view.served, 600)
        assert found(changes, 1.5) is None  # asked many times meanwhile: held, no pass
        assert not view.served.is_set()
        assert "4.12" in view.html("en")  # the first page ...
        assert view.served.is_set()
        keyed = found(changes, 60)  # ... lets the pass start
        assert [k for k, _ in keyed] == ["speakers.speech_mos|version:software.teams_version=24.2.0"]

        late = FleetChanges(store, min_age_s=0)
        late.hold(threading.Event(), 0.5)  # no page comes: the time limit starts it
        assert [k for k, _ in found(late, 60)] == [k for k, _ in keyed]
    finally:
        store.close()


def test_the_collector_preloads_the_plotting_library_once_it_listens(tmp_path):
    """The first room page after a start would pay for importing matplotlib and building its
    font cache; the server does it in the background after it listens: the line saying so comes
    after "listening on" (the Collector has read up to that line), and the server answers meanwhile."""
    from netns import wait_line

    c = Collector(f"sqlite:///{tmp_path / 'readiness.db'}")
    try:
        assert c.request("GET", "/healthz")[0] == 200
        line = wait_line(c.proc, "history plots: ready", timeout=120)
        assert "to load matplotlib" in line
        assert c.request("GET", "/healthz")[0] == 200
    finally:
        err = c.stop()
    assert "Traceback" not in err
