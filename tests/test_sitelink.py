"""Site links (issue #11): the self-test page's results reach the collector's database only with a
live link token of the result's own site. A real ``readiness serve --db`` on loopback, tokens
made through the CLI, results posted to the self-test endpoint as the page posts them, rows
counted in the real SQLite file.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collector_docs as docs  # noqa: E402
from postgres import postgres  # noqa: E402,F401 - the session fixture
from readiness.collector.store import Store  # noqa: E402
from test_collector_serve import Collector, add_token, rows  # noqa: E402
from test_selftest import observations  # noqa: E402


def post(c: Collector, site: str, key: str | None = None, room: str = "4.12") -> dict:
    sub = observations(labels={"site": site, "room": room}, **({"key": key} if key is not None else {}))
    status, _, body = c.request("POST", "/__selftest/result", json.dumps(sub).encode())
    assert status == 200, body
    return json.loads(body)


def in_folder(c: Collector, run_id: str) -> list[Path]:
    return sorted(Path(c.results_dir).glob(f"*-{run_id[:8]}.*"))


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'readiness.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, db) -> str:
    """SQLite, and a fresh database in a real PostgreSQL cluster (tests/postgres.py)."""
    return db if request.param == "sqlite" else request.getfixturevalue("postgres").fresh_url()


def test_a_page_result_is_collected_only_with_a_live_link_of_its_own_site(cli, any_db):
    db = any_db
    made = cli("serve", "token", "add", "--link", "--site", "Stockholm", "--db", db,
               "--base-url", "https://test.example.org:8443/")
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    assert link.startswith("rdy_") and "shown only now" in made.stderr
    assert f"https://test.example.org:8443/?site=Stockholm&key={link}" in made.stderr.splitlines()
    malmo = add_token(cli, db, "--link", "--site", "Malmö")
    uppsala = add_token(cli, db, "--link", "--site", "Uppsala")
    upload = add_token(cli, db, "--site", "Stockholm")
    assert cli("serve", "token", "revoke", "--site", "Uppsala", "--db", db).returncode == 0  # links go with --site too
    listed = cli("serve", "token", "list", "--db", db).stdout.splitlines()
    assert [line.split()[1] for line in listed] == ["link", "link", "link", "upload"]
    assert "revoked" in listed[2] and "live" in listed[0]

    c = Collector(db)
    try:
        # the page opened with the link carries it in its config (and the page posts it back)
        status, _, page = c.request("GET", f"/?site=Stockholm&room=4.12&key={link}")
        config = json.loads(re.search(r'<script type="application/json" id="config">(.*?)</script>', page.decode(), re.S).group(1))
        assert status == 200 and config["key"] == link and config["labels"]["site"] == "Stockholm"

        refused = {
            "no key": (post(c, "Stockholm"), "no_site_link"),
            "empty key": (post(c, "Stockholm", ""), "no_site_link"),
            "unknown key": (post(c, "Stockholm", "rdy_" + "x" * 43), "bad_link"),
            "another site's link": (post(c, "Stockholm", malmo), "wrong_site"),
            "link used with no site label": (post(c, "", malmo), "wrong_site"),
            "revoked link": (post(c, "Uppsala", uppsala), "revoked_link"),
            "upload token as link": (post(c, "Stockholm", upload), "bad_link"),
        }
        for what, (answer, reason) in refused.items():
            assert answer["collected"] is False and answer["not_collected"] == reason, what
            # judged, kept and shown all the same
            assert answer["verdict"] and len(in_folder(c, answer["run_id"])) == 2, what
        assert rows(db) == 0

        good = post(c, "Stockholm", link)
        assert good["collected"] is True and "not_collected" not in good
        assert rows(db) == 1
        store = Store(db)
        try:
            stored = store.document(good["run_id"])
        finally:
            store.close()
        assert stored["labels"] == {"site": "Stockholm", "room": "4.12"}
        assert link not in json.dumps(stored)
        files = in_folder(c, good["run_id"])
        assert [f.suffix for f in files] == [".html", ".json"]
        assert not any(link.encode() in f.read_bytes() for f in Path(c.results_dir).iterdir())

        # a link is no upload token: the agents' endpoint refuses it
        status, _, body = c.request("POST", "/api/v1/results", docs.body(docs.document(site="Stockholm")), link)
        assert status == 401 and json.loads(body)["error"] == "bad_token"
        assert rows(db) == 1
    finally:
        log = c.stop()
    assert len(re.findall(r"self-test result [0-9a-f]{32} for site .* not collected: ", log)) == len(refused)
    assert "not collected: wrong_site" in log and "not collected: revoked_link" in log
    for secret in (link, malmo, uppsala, upload):
        assert secret not in log


def test_without_a_database_nothing_is_collected_or_refused(tmp_path):
    from test_selftest import post as post_plain, serve

    p, port = serve(tmp_path)
    try:
        status, answer = post_plain(port, observations(key="rdy_whatever"))
    finally:
        p.terminate()
        p.wait(10)
    assert status == 200 and answer["collected"] is None and "not_collected" not in answer
    assert not any(b"rdy_whatever" in f.read_bytes() for f in tmp_path.iterdir())


@pytest.mark.parametrize("args, said", [
    (("--link",), "a site link needs the site it is for: give --site NAME"),
    (("--link", "--read", "--site", "X"), "give --read or --link, not both"),
    (("--site", "X", "--base-url", "https://x"), "--base-url goes with --link"),
    (("--link", "--site", "X", "--base-url", "javascript:alert(1)"), "--base-url"),
])
def test_token_add_mistakes_are_one_plain_error(cli, db, args, said):
    done = cli("serve", "token", "add", "--db", db, *args)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    if args == ("--link",):
        assert done.stderr == f"readiness: {said}\n"  # one plain sentence


def test_a_link_without_a_base_url_prints_the_page_path(cli, db):
    done = cli("serve", "token", "add", "--link", "--site", "Göteborg Hamn", "--db", db)
    assert done.returncode == 0
    assert f"/?site=G%C3%B6teborg+Hamn&key={done.stdout.strip()}" in done.stderr.splitlines()


def test_the_page_in_chromium_posts_its_link_and_says_when_its_result_was_not_collected(cli, db):
    """The whole path in a real headless Chromium (its own fake camera and microphone)."""
    from browser import Chromium, chromium_path
    from support import need
    from test_selftest_browser import fake_media_flags, run_page

    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    link = add_token(cli, db, "--link", "--site", "Kiruna")
    c = Collector(db)
    try:
        with Chromium(fake_media_flags(None, None), allow=["127.0.0.1"]) as b:
            linked = run_page(b, f"{c.url}/?site=Kiruna&room=B2&key={link}")
            linked_note = b.evaluate("document.getElementById('not-collected').hidden")
        assert linked["run"] and rows(db) == 1
        with Chromium(fake_media_flags(None, None), allow=["127.0.0.1"]) as b:
            plain = run_page(b, f"{c.url}/?site=Kiruna&room=B2&lang=sv")
            plain_note = b.evaluate("document.getElementById('not-collected').hidden ? '' : "
                                    "document.getElementById('not-collected').innerText")
        assert plain["run"] and plain["run"] != linked["run"] and rows(db) == 1
        assert linked_note is True
        assert plain_note.startswith("Resultatet sparas bara på den här testservern")
        assert len(in_folder(c, plain["run"])) == 2
    finally:
        log = c.stop()
    assert f"self-test result {plain['run']} for site 'Kiruna' not collected: no_site_link" in log and link not in log
