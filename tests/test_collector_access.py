"""Who may see what on the collector (``readiness.collector.access``): a real ``readiness serve
--db URL`` over a real SQLite file and a real PostgreSQL, callers with and without a site scope.

Proved here: every read endpoint (the fleet page, its JSON and CSV, a run's page, /metrics)
answers a caller scoped to Göteborg with Göteborg only: no Stockholm name, host, count or run;
a read token's expiry and last use; the audit log of tokens and exports.
"""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

import collector_docs as docs
from postgres import postgres  # noqa: F401 - the session fixture
from readiness.collector.ingest import ingest
from readiness.collector.store import Store
from test_collector_serve import Collector, add_token

NOT_LOCAL = {"X-Forwarded-For": "203.0.113.9"}  # through a proxy on this machine: not this machine's own read


def _names(text: str, word: str) -> bool:
    """Whether ``text`` names ``word`` as a word of its own: the room "5.01" is not inside a figure
    such as 385.014415 (a report age in /metrics)."""
    return re.search(rf"(?<![\w.]){re.escape(word)}(?![\w]|\.\d)", text) is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readiness.db'}"
    return request.getfixturevalue("postgres").fresh_url()


def _fill(db_url: str) -> dict[str, str]:
    """Two Stockholm rooms (one not ready) and one Göteborg room; returns run ids by host."""
    store = Store(db_url)
    store.migrate()
    made = {"sthlm-mr1": docs.document(site="Stockholm", room="4.12", hostname="sthlm-mr1"),
            "sthlm-mr2": docs.document(site="Stockholm", room="5.01", hostname="sthlm-mr2", ram=2),
            "gbg-mr1": docs.document(site="Göteborg", room="Ljuset", hostname="gbg-mr1", ram=2)}
    try:
        for d in made.values():
            ingest(store, docs.body(d), d["labels"]["site"])
    finally:
        store.close()
    return {host: d["run_id"] for host, d in made.items()}


@pytest.fixture
def fleet(cli, db_url):
    runs = _fill(db_url)
    c = Collector(db_url)
    yield c, runs
    c.kill()


def _reads(c: Collector, runs: dict[str, str], token: str | None, headers: dict[str, str] | None = None
           ) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in ("/fleet", "/api/v1/fleet", "/fleet.csv", "/metrics", *(f"/runs/{r}" for r in runs.values())):
        status, _, body = c.request("GET", path, token=token, headers=headers or NOT_LOCAL)
        out[path] = (status, body)
    return out


def test_a_site_scoped_read_token_reads_its_site_only_on_every_endpoint(cli, fleet, db_url):
    c, runs = fleet
    everything = add_token(cli, db_url, "--read")
    gbg = add_token(cli, db_url, "--read", "--site", "Göteborg")

    whole = _reads(c, runs, everything)
    assert all(status == 200 for status, _ in whole.values()), {p: s for p, (s, _) in whole.items()}
    assert b"sthlm-mr2" in whole["/fleet"][1] and b"gbg-mr1" in whole["/fleet"][1]

    part = _reads(c, runs, gbg)
    for path, (status, body) in part.items():
        if path.startswith("/runs/") and path != f"/runs/{runs['gbg-mr1']}":
            assert status == 404 and json.loads(body)["error"] == "not_found", path  # as if it were not there
            continue
        assert status == 200, path
        text = re.sub(r"<style>.*?</style>", "", body.decode("utf-8-sig"), flags=re.S)  # its comments name cities
        for word in ("Stockholm", "sthlm", "4.12", "5.01"):
            assert not _names(text, word), (path, word)
    assert "gbg-mr1" in part[f"/runs/{runs['gbg-mr1']}"][1].decode()

    # the counts are Göteborg's own, not the fleet's cut afterwards
    figs = json.loads(part["/api/v1/fleet"][1])
    all_figs = json.loads(whole["/api/v1/fleet"][1])
    assert [s["site"] for s in figs["sites"]] == ["Göteborg"]
    assert sorted(s["site"] for s in all_figs["sites"]) == ["Göteborg", "Stockholm"]
    assert figs["counts"]["total"] == 1 and all_figs["counts"]["total"] == 3
    assert figs["inputs"]["results_read"] == 1 and all_figs["inputs"]["results_read"] == 3
    assert figs["inputs"]["paths"] == []  # the database's address is not a site lead's business
    rows = list(csv.DictReader(io.StringIO(part["/fleet.csv"][1].decode("utf-8-sig"))))
    assert [r["hostname"] for r in rows] == ["gbg-mr1"]
    fams = {f.name: f for f in text_string_to_metric_families(part["/metrics"][1].decode())}
    assert {s.labels["site"] for s in fams["readiness_fleet_computers"].samples} == {"Göteborg"}
    assert fams["readiness_results_stored"].samples[0].value == 1
    whole_fams = {f.name: f for f in text_string_to_metric_families(whole["/metrics"][1].decode())}
    assert whole_fams["readiness_results_stored"].samples[0].value == 3


def test_an_expired_or_revoked_read_token_reads_nothing_and_the_list_shows_last_use(cli, fleet, db_url):
    c, runs = fleet
    token = add_token(cli, db_url, "--read", "--expires", "1h")
    assert c.request("GET", "/api/v1/fleet", token=token, headers=NOT_LOCAL)[0] == 200
    listed = cli("serve", "token", "list", "--db", db_url)
    line = next(x for x in listed.stdout.splitlines() if " read " in x)
    assert "live until" in line and "used 20" in line, line
    store = Store(db_url)
    try:  # an hour later
        from sqlalchemy import update

        from readiness.collector.engine import utcnow
        from readiness.collector.tables import tokens
        with store.engine.begin() as conn:
            conn.execute(update(tokens).where(tokens.c.kind == "read").values(expires=utcnow()))
    finally:
        store.close()
    status, _, body = c.request("GET", "/api/v1/fleet", token=token, headers=NOT_LOCAL)
    assert status == 401 and json.loads(body)["error"] == "read_token_required"
    assert "expired" in cli("serve", "token", "list", "--db", db_url).stdout
    for bad in ("0d", "30", "30y", "-1d", "99999999d"):
        done = cli("serve", "token", "add", "--db", db_url, "--read", "--expires", bad)
        assert done.returncode == 2 and "--expires" in done.stderr and "Traceback" not in done.stderr, bad


def test_token_changes_and_exports_are_in_the_audit_log(cli, fleet, db_url):
    c, runs = fleet
    gbg = add_token(cli, db_url, "--read", "--site", "Göteborg")
    add_token(cli, db_url, "--site", "Göteborg")
    assert cli("serve", "token", "revoke", "--db", db_url, "--site", "Göteborg").returncode == 0
    assert c.request("GET", "/fleet.csv", token=gbg, headers=NOT_LOCAL)[0] == 200
    store = Store(db_url)
    try:
        log = store.list_audit()
    finally:
        store.close()
    actions = [(e["action"], e["site"]) for e in log]
    assert ("token_add", "Göteborg") in actions and ("token_revoke", "Göteborg") in actions
    assert actions.count(("token_revoke", "Göteborg")) == 1  # the upload token only: a read token is not a site's
    export = next(e for e in log if e["action"] == "export")
    assert export["actor"].startswith("read token ") and export["detail"] == "1 rows"


def test_the_audit_log_is_listed_for_auditors_and_refused_to_readers(cli, fleet, db_url):
    c, runs = fleet
    gbg = add_token(cli, db_url, "--read", "--site", "Göteborg")
    everything = add_token(cli, db_url, "--read")
    status, headers, body = c.request("GET", "/admin/audit")  # this machine
    assert status == 200 and headers["content-security-policy"].startswith("default-src 'none'")
    page = body.decode()
    assert page.count("token_add") == 2 and "Göteborg" in page and "400 days" in page
    for token in (gbg, everything):  # a read token reads the fleet, not who did what
        status, _, body = c.request("GET", "/admin/audit", token=token, headers=NOT_LOCAL)
        assert status == 403 and json.loads(body)["error"] == "forbidden"
    assert c.request("GET", "/admin/audit", headers=NOT_LOCAL)[0] == 401
    listed = cli("serve", "audit", "--db", db_url, "--since", "1h")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2, listed.stdout
    assert all("command line  token_add  read token" in line for line in listed.stdout.splitlines())
    bad = cli("serve", "audit", "--db", db_url, "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr


def test_retention_prunes_the_audit_log_by_its_own_days(db_url):
    from datetime import timedelta

    from sqlalchemy import update

    from readiness.collector.access import AccessConfig
    from readiness.collector.http import Collector as Handlers
    from readiness.collector.engine import utcnow
    from readiness.collector.tables import audit

    store = Store(db_url)
    store.migrate()
    try:
        for age, what in ((40, "old"), (10, "recent")):
            store.add_audit("someone", "sign_in", what)
            with store.engine.begin() as conn:
                conn.execute(update(audit).where(audit.c.target == what).values(at=utcnow() - timedelta(days=age)))
        for secret in ("live", "signed-out"):
            store.put_session(secret, subject="s", name="n", role="reader", sites="", pending="", csrf="c",
                              expires=utcnow() + timedelta(hours=1))
        store.end_session("signed-out")
        Handlers(store, access=AccessConfig(audit_keep_days=30)).prune(timedelta(days=400))
        assert [e["target"] for e in store.list_audit()] == ["recent"]
        from readiness.collector.tables import sessions
        with store.engine.connect() as conn:
            assert conn.execute(sessions.select()).all().__len__() == 1
        assert store.get_session("live") is not None
    finally:
        store.close()


def test_a_partner_share_link_shows_its_site_without_hosts_and_stops_when_revoked(cli, db_url, tmp_path):
    store = Store(db_url)
    store.migrate()
    try:
        for d in (docs.document(site="Stockholm", room="4.12", hostname="sthlm-mr1", ram=2),
                  docs.document(site="Partner AB", room="Styrelserummet", hostname="partner-mr1", ram=2),
                  docs.document(site="Partner AB", room="", hostname="partner-laptop-77")):
            ingest(store, docs.body(d), d["labels"]["site"])
    finally:
        store.close()
    c = Collector(db_url, "--org", "Example Corp")
    try:
        made = cli("serve", "token", "add", "--db", db_url, "--share", "--site", "Partner AB", "--expires", "30d",
                   "--base-url", c.url)
        assert made.returncode == 0, made.stderr
        link = made.stderr.strip().splitlines()[-1]
        assert link.startswith(c.url + "/share/rdy_")
        path = link[len(c.url):]
        status, headers, body = c.request("GET", path, headers=NOT_LOCAL)
        page = body.decode()
        assert status == 200 and headers["referrer-policy"] == "no-referrer"
        assert "Styrelserummet" in page and "Example Corp" in page and "4 GB of RAM" in page and "works until" in page
        for hidden in ("partner-mr1", "partner-laptop-77", "Stockholm", "sthlm", "4.12"):
            assert not _names(re.sub(r"<style>.*?</style>", "", page, flags=re.S), hidden), hidden
        secret = path[len("/share/"):]
        # the link is good for this page only: not a read token, not an upload token
        assert c.request("GET", "/api/v1/fleet", token=secret, headers=NOT_LOCAL)[0] == 401
        assert c.request("POST", "/api/v1/results", body=b"{}", token=secret)[0] == 401
        token_id = made.stderr.split("(id ")[1].split(")")[0]
        assert cli("serve", "token", "revoke", "--db", db_url, token_id).returncode == 0
        status, _, body = c.request("GET", path, headers=NOT_LOCAL)
        assert status == 404 and "expired or was withdrawn" in body.decode() and "Styrelserummet" not in body.decode()
        assert c.request("GET", "/share/rdy_not-a-link", headers=NOT_LOCAL)[0] == 404
    finally:
        c.kill()
    store = Store(db_url)
    try:
        assert [e["action"] for e in store.list_audit()][:2] == ["token_revoke", "token_add"]
    finally:
        store.close()


@pytest.mark.parametrize("text, line, why", [
    ('[sign_in]\nissuer = "https://id.example.org"\nclient_id = "r"\nclient_secret_env = "NOPE_UNSET"\n'
     'base_url = "https://f.example.org"\n', 4, "NOPE_UNSET"),
    ('[sign_in]\nissuer = "id.example.org"\nclient_id = "r"\nclient_secret_env = "T_SECRET"\n'
     'base_url = "https://f.example.org"\n', 2, "issuer must be an address"),
    ('[sign_in]\nissuer = "https://id.example.org"\nclient_id = "r"\nclient_secret_env = "T_SECRET"\n'
     'base_url = "https://f.example.org"\nwhatever = 1\n', 6, "unknown key 'whatever'"),
    ('[sign_in]\nissuer = "https://id.example.org"\nclient_id = "r"\nclient_secret_env = "T_SECRET"\n'
     'base_url = "https://f.example.org"\n\n[[grant]]\nvalue = "a"\nrole = "admin"\n\n[[grant]]\nvalue = "b"\n'
     'role = "site_lead"\n', 11, "lists its sites"),
    ('[[grant]]\nvalue = "a"\nrole = "boss"\n', 1, "role must be one of"),
    ('[audit]\nkeep_days = 0\n', 2, "keep_days"),
])
def test_a_bad_access_file_is_one_line_with_its_line(tmp_path, text, line, why):
    from readiness.collector.access import AccessError, load_config

    path = tmp_path / "access.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AccessError) as caught:
        load_config(path, environ={"T_SECRET": "s"})
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ") and why in message and "\n" not in message, message


def test_serve_with_a_bad_access_file_stops_with_its_reason(cli, tmp_path):
    path = tmp_path / "access.toml"
    path.write_text('[audit]\nkeep_days = "forever"\n', encoding="utf-8")
    done = cli("serve", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--access", str(path), "--http-port", "0",
               "--stun-port", "0", "--results-dir", str(tmp_path / "res"))
    assert done.returncode != 0 and f"{path}:2: keep_days" in done.stderr and "Traceback" not in done.stderr


# --- time spans: the one reader behind --since, --expires, --not-reporting-after and the alert file


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("2m", 120), ("12h", 43200), ("3d", 259200), ("2w", 1209600),
                                          (" 90 m ", 5400), ("36500d", 36500 * 86400), ("5214w", 5214 * 604800)])
def test_a_time_span_takes_every_unit(text, seconds):
    from readiness.collector.access import parse_span

    assert parse_span(text).total_seconds() == seconds


@pytest.mark.parametrize("text,reason", [
    ("36501d", "longer than a hundred years"), ("5215w", "longer than a hundred years"),
    ("3153600001s", "longer than a hundred years"), ("999999999999w", "longer than a hundred years"),
    ("0s", "is not a time span"), ("0d", "is not a time span"), ("-5m", "is not a time span"),
    ("soon", "is not a time span"), ("12", "is not a time span"), ("1.5h", "is not a time span"),
    ("3y", "is not a time span"), ("", "is not a time span"), (None, "is not a time span"),
    (30, "is not a time span"), (True, "is not a time span"), (["1d"], "is not a time span"),
])
def test_a_bad_time_span_is_refused_with_a_plain_reason(text, reason):
    from readiness.collector.access import parse_span

    with pytest.raises(ValueError) as caught:
        parse_span(text)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_the_command_line_takes_minutes_and_refuses_garbage_in_one_line(cli, tmp_path):
    """``--not-reporting-after`` of ``aggregate`` through the same reader: 90m works, 0m and 101 years do not."""
    def aggregate(span: str):
        return cli("aggregate", str(tmp_path), "-o", str(tmp_path / "f.html"), "--not-reporting-after", span)

    for bad, reason in (("0m", "is not a time span"), ("5300w", "longer than a hundred years"), ("3 days", "is not a time span")):
        done = aggregate(bad)
        assert done.returncode == 2 and reason in done.stderr and "--not-reporting-after" in done.stderr
        assert "Traceback" not in done.stderr
    done = aggregate("90m")
    assert "Traceback" not in done.stderr and "not-reporting-after" not in done.stderr
