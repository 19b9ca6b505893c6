"""Alerts (``readiness serve --alerts FILE``): the rules file checked at startup, the channels
against real receivers (aiosmtpd with STARTTLS and AUTH, an HTTP server checking the webhook's
HMAC signature, an HTTPS server standing in for Teams' Workflows host), the engine on a real
database (grouping by root cause, resolution, silence, not reporting, regressions), and a real
``readiness serve --db`` fed real uploads, killed mid-delivery and started again, on SQLite
and PostgreSQL."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from alert_receivers import Receiver, Smtp
from fleet_rooms import room
from postgres import postgres  # noqa: F401 - the session fixture
from readiness.collector.alertconfig import AlertConfigError, Silence, load_alerts
from readiness.collector.alerts import Alerts
from readiness.collector.ingest import ingest
from readiness.collector.notify import send, signature, send_test
from readiness.collector.store import Store
from readiness.judge.requirements import load_profile
from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from test_server import certificate  # noqa: F401 - the fixture: a self-signed certificate for 127.0.0.1

SECRET = "s3cret-signing-key-0123"
UDP = {"connectivity.udp_media_reachable": False}


def write(tmp_path: Path, text: str, name: str = "alerts.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def hook_file(tmp_path: Path, url: str, extra: str = "", top: str = "") -> Path:
    return write(tmp_path, f"""
        base_url = "https://fleet.example.org"
        group_within = "1s"
        delivery_timeout = "2s"
        {top}
        [channel.hook]
        type = "webhook"
        url = "{url}"
        secret = "{SECRET}"

        [[rule]]
        channels = ["hook"]
        {extra}
        """)


def judged(host: str, site: str, label: str, faults: dict | None = None, minutes: int = 0) -> bytes:
    plugins = load_plugins()
    prof = load_profile("meeting-room", checks=plugins.checks, broken=plugins.broken)
    r = room(host, site, label, faults, minutes=minutes)
    r.judgement = judge(r, prof).to_dict()
    return r.to_json().encode("utf-8")


# --- the file ------------------------------------------------------------------------------

BAD = [
    ("colour = 1\n", ":2: unknown key 'colour' in the file"),
    ('[channel.x]\ntype = "webhook"\nurl = "ftp://h/x"\nsecret = "0123456789abcdef"\n', ":4: [channel.x]: url is not an address such as https://HOST/..."),
    ('[channel.x]\ntype = "webhook"\nurl = "https://h/x"\nsecret_env = "NO_SUCH_VAR_HERE"\n',
     ":5: [channel.x]: the environment variable NO_SUCH_VAR_HERE (secret_env) is not set or empty"),
    ('group_within = "soon"\n', ":2: group_within: 'soon' is not a time span"),
    ('group_within = "0s"\n', ":2: group_within: '0s' is not a time span"),
    ('group_within = "-2m"\n', ":2: group_within: '-2m' is not a time span"),
    ('group_within = 120\n', ":2: group_within: 120 is not a time span"),
    ('group_within = "36501d"\n', ":2: group_within: '36501d' is longer than a hundred years"),
    ('delivery_timeout = "11m"\n', ":2: delivery_timeout: at most 10m"),
    ('[channel.m]\ntype = "email"\nhost = "smtp.example.org"\nfrom = "a@example.org"\nto = ["b@example.org"]\n'
     'user = "a"\npassword_env = "NO_SUCH_VAR_HERE"\n', ":8: [channel.m]: the environment variable NO_SUCH_VAR_HERE"),
    ('[channel.m]\ntype = "email"\nhost = "smtp.example.org"\nfrom = "a@example.org"\nto = ["b@example.org"]\nsmtp_port = 25\n',
     ":7: unknown key 'smtp_port' in [channel.m]"),
    ('[[rule]]\nchannels = ["nowhere"]\n', ":3: [[rule]]: no channel 'nowhere'"),
    ('[[rule]]\nevents = ["fire"]\nchannels = []\n', ":3: [[rule]]: events must be a list of"),
    ('[[silence]]\nsite = "A"\ndays = ["mon"]\nfrom = "25:00"\nto = "06:00"\n', ":5: [[silence]]: from must be a time of day"),
    ('[[silence]]\nsite = "A"\nstart = 2026-12-05T10:00:00Z\nend = 2026-12-05T09:00:00Z\n', ":5: [[silence]]: end must come after start"),
    ('language = "fi"\n', ":2: language 'fi' is not one of"),
    ('base_url = "fleet.example.org"\n', ":2: base_url 'fleet.example.org' is not an http(s) address"),
]


@pytest.mark.parametrize("text,expected", BAD)
def test_every_mistake_in_the_file_is_one_line_naming_its_line(tmp_path, text, expected):
    path = write(tmp_path, "\n" + text)
    with pytest.raises(AlertConfigError) as caught:
        load_alerts(path, environ={})
    said = str(caught.value)
    assert said.startswith(str(path)) and expected in said and "\n" not in said


@pytest.mark.parametrize("group,timeout,expected", [("45s", "30s", (45, 30)), ("2m", "10m", (120, 600)),
                                                     ("1h", "5s", (3600, 5)), ("1d", "1m", (86400, 60)), ("1w", "9s", (604800, 9))])
def test_the_file_takes_every_unit_of_a_time_span(tmp_path, group, timeout, expected):
    path = write(tmp_path, f'group_within = "{group}"\ndelivery_timeout = "{timeout}"\n')
    config = load_alerts(path, environ={})
    assert (config.group_within_s, config.delivery_timeout_s) == expected


def test_secrets_come_from_the_environment(tmp_path):
    path = write(tmp_path, """
        [channel.m]
        type = "email"
        host = "smtp.example.org"
        user = "alerts@example.org"
        password_env = "SMTP_PASSWORD"
        from = "alerts@example.org"
        to = "it@example.org"
        [channel.t]
        type = "teams"
        url_env = "TEAMS_URL"
        """)
    cfg = load_alerts(path, environ={"SMTP_PASSWORD": "pw from env", "TEAMS_URL": "https://example.webhook.office.com/x"})
    assert cfg.channels["m"].password == "pw from env" and cfg.channels["m"].port == 587 and cfg.channels["m"].starttls
    assert cfg.channels["t"].url == "https://example.webhook.office.com/x" and cfg.rules == ()


def test_a_bad_file_stops_serve_with_one_line(cli, tmp_path):
    path = write(tmp_path, '[channel.h]\ntype = "webhook"\nurl = "https://h/x"\nsecret_env = "NO_SUCH_VAR_HERE"\n')
    done = cli("serve", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--alerts", str(path), "--http-port", "0",
               "--stun-port", "0", "--results-dir", str(tmp_path / "res"), timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "NO_SUCH_VAR_HERE" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = cli("serve", "--alerts", str(path), "--http-port", "0", "--stun-port", "0", timeout=60)
    assert done.returncode != 0 and "--alerts needs the collector's database" in done.stderr


def test_silence_windows_one_off_and_weekly_across_midnight():
    at = datetime(2026, 12, 5, 10, 0, tzinfo=timezone.utc)  # a Saturday
    once = Silence("Göteborg", start=at - timedelta(hours=1), end=at + timedelta(hours=1))
    assert once.covers("Göteborg", "4.12", at) and not once.covers("Göteborg", "4.12", at + timedelta(hours=1))
    assert not once.covers("Malmö", "4.12", at)
    from datetime import time as clock
    night = Silence("Göteborg", room="4.12", days=(4,), since=clock(22, 0), until_minutes=6 * 60)  # Friday 22-06
    friday_late = datetime(2026, 12, 4, 23, 30, tzinfo=timezone.utc)
    assert night.covers("Göteborg", "4.12", friday_late)
    assert night.covers("Göteborg", "4.12", friday_late + timedelta(hours=6))  # Saturday 05:30
    assert not night.covers("Göteborg", "4.12", friday_late + timedelta(hours=7))  # Saturday 06:30
    assert not night.covers("Göteborg", "4.13", friday_late)
    assert not night.covers("Göteborg", "4.12", friday_late - timedelta(days=1))  # Thursday


# --- the channels, against real receivers -----------------------------------------------------

def test_the_webhook_is_signed_over_the_exact_body(tmp_path):
    rx = Receiver(secret=SECRET)
    try:
        cfg = load_alerts(hook_file(tmp_path, rx.url()))
        assert send_test(cfg) == [("hook", None)]
        post = rx.wait(1)[0]
        assert post["signed"] and post["headers"]["X-Readiness-Signature"] == signature(SECRET, post["body"])
        assert post["json"]["title"] == "Test message from readiness" and len(post["json"]["id"]) == 32
        rx.mode = "fail"
        assert send_test(cfg) == [("hook", "127.0.0.1 answered 500")]
        wrong = Receiver(secret="another-secret-entirely")
        try:
            send(load_alerts(hook_file(tmp_path, wrong.url())), "hook", _message(cfg))
            assert not wrong.wait(1)[0]["signed"]  # a receiver with another key refuses it
        finally:
            wrong.close()
    finally:
        rx.close()


def _message(cfg):
    from readiness.collector.alertmessages import sample_message

    return sample_message(cfg)


def test_email_goes_through_starttls_and_login(tmp_path, certificate, monkeypatch):
    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the certificate is verified, against this one
    smtp = Smtp(cert, key, "alerts@example.org", "right password")
    try:
        path = write(tmp_path, f"""
            language = "sv"
            [channel.mail]
            type = "email"
            host = "127.0.0.1"
            port = {smtp.port}
            starttls = true
            user = "alerts@example.org"
            password_env = "SMTP_PASSWORD"
            from = "alerts@example.org"
            to = ["it@example.org", "lead@example.org"]
            """)
        cfg = load_alerts(path, environ={"SMTP_PASSWORD": "right password"})
        assert send_test(cfg) == [("mail", None)]
        assert sorted(to for m in smtp.mails for to in m["to"]) == ["it@example.org", "lead@example.org"]
        for mail in smtp.mails:  # one mail per recipient, each over TLS after login
            assert mail["tls"] and mail["auth"] and mail["from"] == "alerts@example.org"
            assert mail["msg"]["Subject"] == "Testmeddelande från readiness"
            assert "Kanalen fungerar" in mail["msg"].get_body(("html", "plain")).get_content()
        bad = load_alerts(path, environ={"SMTP_PASSWORD": "wrong"})
        (name, why), = send_test(bad)
        assert why and smtp.logins[-1] == ("alerts@example.org", False) and len(smtp.mails) == 2
        monkeypatch.delenv("SSL_CERT_FILE")  # the server's certificate is checked: unknown, nothing sent
        (name, why), = send_test(cfg)
        assert why and len(smtp.mails) == 2
    finally:
        smtp.close()


def test_teams_workflows_webhook_reaches_its_host(tmp_path, certificate, monkeypatch):
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    rx = Receiver(tls=(cert, key), ok_status=202)  # Workflows answers 202 Accepted
    try:
        # apprise takes Workflows' own https URL only on Microsoft's hosts: its own form names this one
        url = f"workflows://127.0.0.1:{rx.port}/abc123/SIGNATURE"
        path = write(tmp_path, f'[channel.teams]\ntype = "teams"\nurl = "{url}"\n')
        assert send_test(load_alerts(path)) == [("teams", None)]
        post = rx.wait(1)[0]
        assert post["path"].startswith("/workflows/abc123/triggers/manual/paths/invoke")
        card = json.dumps(post["json"])
        assert "AdaptiveCard" in card and "Test message from readiness" in card
    finally:
        rx.close()


def test_alerts_test_command_says_per_channel(cli, tmp_path):
    rx = Receiver(secret=SECRET)
    try:
        path = write(tmp_path, f"""
            [channel.hook]
            type = "webhook"
            url = "{rx.url()}"
            secret = "{SECRET}"
            [channel.dead]
            type = "webhook"
            url = "http://127.0.0.1:9/nobody"
            secret = "{SECRET}"
            [channel.slack]
            type = "slack"
            url = "https://hooks.slack.invalid/services/T000/B000/XXXX"
            """)
        done = cli("serve", "alerts", "test", "--alerts", str(path), timeout=90)
        lines = done.stdout.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 3, done.stdout + done.stderr
        assert lines[0] == "hook (webhook): sent" and lines[1].startswith("dead (webhook): failed: 127.0.0.1:")
        assert lines[2].startswith("slack (slack): failed: ")
        assert rx.wait(1)[0]["signed"]
    finally:
        rx.close()


# --- the engine on a real database -----------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.migrate()
    yield s
    s.close()


def engine(store, cfg, sent, after_s: float = 3 * 86400):
    return Alerts(store, cfg, after_s, lambda _c, ch, m: sent.append((ch, m)))


def test_four_rooms_one_cause_one_message_then_resolution(tmp_path, store):
    cfg = load_alerts(hook_file(tmp_path, "http://127.0.0.1:9/x"))
    sent: list = []
    a = engine(store, cfg, sent)
    for i in range(4):
        ingest(store, judged(f"gbg{i}", "Göteborg", f"R{i}", UDP), "Göteborg")
    assert a.evaluate() == 4 and a.evaluate() == 0  # a room is judged once per run
    assert a.flush() == 0  # the group is still open
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    assert a.flush(later) == 1
    assert a.deliver(later) == 1 and a.depth() == 0
    (_, m), = sent
    assert m.title == "Not ready at Göteborg: 4 rooms. Open the meeting services' UDP media ports"
    assert [r["room"] for r in m.facts["rooms"]] == ["R0", "R1", "R2", "R3"] and m.facts["site_wide"]
    assert "https://fleet.example.org/runs/" in m.text and "Teams 3478-3481" in m.text  # the fix, from the requirement
    assert m.facts["source"].startswith("https://") and m.facts["source"] in m.text
    # a restart: a new engine on the same database raises nothing again
    b = engine(store, cfg, sent)
    assert b.evaluate() == 0 and b.flush(force=True) == 0
    for i in range(4):
        ingest(store, judged(f"gbg{i}", "Göteborg", f"R{i}", None, minutes=-1), "Göteborg")
    b.evaluate()
    assert b.flush(force=True) == 1 and b.deliver() == 1
    assert sent[-1][1].title == "Ready again at Göteborg: 4 rooms. Fixed: Open the meeting services' UDP media ports"


def test_html_is_escaped_and_silence_suppresses(tmp_path, store):
    now = datetime.now(timezone.utc)
    cfg = load_alerts(hook_file(tmp_path, "http://127.0.0.1:9/x", top=f"""
        [[silence]]
        site = "Malmö"
        start = {(now - timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}
        end = {(now + timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}
        """.replace("\n        ", "\n")))
    sent: list = []
    a = engine(store, cfg, sent)
    ingest(store, judged("m1", "Malmö", "M1", UDP), "Malmö")
    ingest(store, judged("x1", "Lund", "<b>x</b>", {"camera.height_px": 240}), "Lund")
    a.evaluate()
    assert a.flush(force=True) == 1 and a.deliver() == 1
    (_, m), = sent
    assert m.facts["site"] == "Lund" and "&lt;b&gt;x&lt;/b&gt;" in m.html and "<b>x</b>" not in m.html


def test_not_reporting_and_back(tmp_path, store):
    cfg = load_alerts(hook_file(tmp_path, "http://127.0.0.1:9/x"))
    sent: list = []
    a = engine(store, cfg, sent, after_s=600)
    ingest(store, judged("s1", "Umeå", "U1", None, minutes=30), "Umeå")  # fleet_rooms runs start an hour ago
    a.evaluate()
    assert a.sweep() == 1 and a.sweep() == 0
    a.flush(force=True)
    a.deliver()
    assert sent[-1][1].title == "Not reporting at Umeå: U1" and "No result for more than 10 minutes" in sent[-1][1].text
    ingest(store, judged("s1", "Umeå", "U1", None, minutes=-1), "Umeå")
    a.evaluate()
    a.flush(force=True)
    a.deliver()
    assert sent[-1][1].title == "Reporting again at Umeå: U1" and len(sent) == 2


def test_regressions_hook_opens_once_and_clears(tmp_path, store):
    cfg = load_alerts(hook_file(tmp_path, "http://127.0.0.1:9/x"))
    sent: list = []
    a = engine(store, cfg, sent)
    items = [("speech|teams-24", "speech quality fell in 12 rooms after Teams 24.x; 11 of them updated the same day")]
    a.regressions(items)
    a.regressions(items)  # the same list again: nothing new
    a.flush(force=True)
    a.deliver()
    assert len(sent) == 1 and sent[0][1].title == "Suspected regressions: 1" and items[0][1] in sent[0][1].text
    a.regressions([])
    a.flush(force=True)
    a.deliver()
    assert sent[-1][1].title == "Suspected regressions cleared: 1" and len(sent) == 2


def test_a_failed_send_is_retried_with_backoff(tmp_path, store):
    cfg = load_alerts(hook_file(tmp_path, "http://127.0.0.1:9/x"))
    tries: list = []

    def flaky(_c, ch, m):
        tries.append(m.id)
        if len(tries) < 3:
            raise RuntimeError("receiver down")

    a = Alerts(store, cfg, 86400, flaky)
    ingest(store, judged("h", "Kiruna", "K1", UDP), "Kiruna")
    a.evaluate()
    a.flush(force=True)
    t0 = datetime.now(timezone.utc)
    assert a.deliver(t0) == 0 and a.deliver(t0 + timedelta(seconds=4)) == 0  # not due before 5 s
    assert a.deliver(t0 + timedelta(seconds=6)) == 0  # second failure: next in 10 s
    assert a.deliver(t0 + timedelta(seconds=12)) == 0 and len(tries) == 2
    assert a.deliver(t0 + timedelta(seconds=30)) == 1 and a.depth() == 0 and len(set(tries)) == 1
    assert a.deliver(t0 + timedelta(hours=2)) == 0 and len(tries) == 3


# --- a real collector ------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readiness.db'}"
    return request.getfixturevalue("postgres").fresh_url()


def _upload(server, token: str, body: bytes) -> None:
    status, _, answer = server.request("POST", "/api/v1/results", body, token=token)
    assert status == 201, answer


def _outbox(db_url: str) -> list[tuple]:
    from sqlalchemy import select

    from readiness.collector.tables import alert_outbox

    s = Store(db_url, create=False)
    try:
        with s.engine.connect() as conn:
            return conn.execute(select(alert_outbox.c.message_id, alert_outbox.c.sent, alert_outbox.c.attempts)).all()
    finally:
        s.close()


def test_serve_groups_four_rooms_resolves_and_keeps_silence(cli, tmp_path, db_url):
    from test_collector_serve import Collector, add_token

    rx = Receiver(secret=SECRET)
    now = datetime.now(timezone.utc)
    path = hook_file(tmp_path, rx.url(), top=f"""
        [[silence]]
        site = "Malmö"
        start = {(now - timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}
        end = {(now + timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%SZ')}
        """.replace("\n        ", "\n"))
    gbg = add_token(cli, db_url, "--site", "Göteborg")
    mal = add_token(cli, db_url, "--site", "Malmö")
    server = Collector(db_url, "--alerts", str(path))
    try:
        bodies = [judged(f"gbg{i}", "Göteborg", f"Rum {i}", UDP) for i in range(4)]
        for body in bodies:  # a morning burst: four rooms of one site fail the same cause
            _upload(server, gbg, body)
        for i in range(2):  # silenced: maintenance at Malmö
            _upload(server, mal, judged(f"mal{i}", "Malmö", f"M{i}", UDP))
        first = rx.wait(1)[0]
        time.sleep(4)  # anything else would have come by now (group_within 1 s, a tick of 1 s)
        assert len(rx.messages()) == 1
        assert first["signed"]
        msg = first["json"]
        assert msg["title"] == "Not ready at Göteborg: 4 rooms. Open the meeting services' UDP media ports"
        assert [r["room"] for r in msg["facts"]["rooms"]] == [f"Rum {i}" for i in range(4)]
        assert msg["facts"]["site_wide"] and "https://fleet.example.org/runs/" in msg["text"]
        bodies = [judged(f"gbg{i}", "Göteborg", f"Rum {i}", None, minutes=-1) for i in range(4)]
        for body in bodies:  # the next good runs resolve it
            _upload(server, gbg, body)
        second = rx.wait(2)[1]["json"]
        assert second["title"] == "Ready again at Göteborg: 4 rooms. Fixed: Open the meeting services' UDP media ports"
        assert second["facts"]["state"] == "resolved" and second["id"] != msg["id"]
        time.sleep(3)
        assert len(rx.messages()) == 2 and not any("Malmö" in p["json"]["title"] for p in rx.messages())
        status, _, metrics = server.request("GET", "/metrics")
        assert status == 200 and "readiness_alert_outbox_depth 0.0" in metrics.decode()
    finally:
        err = server.stop()
        rx.close()
    assert "alerts: hook: sent" in err and "Traceback" not in err
    rows = _outbox(db_url)
    assert len(rows) == 2 and all(sent is not None for _, sent, _ in rows)


def test_sigkill_mid_delivery_every_message_arrives_none_twice_once_acknowledged(cli, tmp_path, db_url):
    from test_collector_serve import Collector, add_token

    rx = Receiver(secret=SECRET, hang_s=6.0)
    rx.mode = "fail"  # the receiver is down at first: the messages wait in the outbox
    path = hook_file(tmp_path, rx.url())
    token = add_token(cli, db_url, "--site", "Göteborg")
    server = Collector(db_url, "--alerts", str(path))
    try:
        bodies = [judged(f"g{i}", "Göteborg", f"R{i}", UDP) for i in range(3)]
        bodies.append(judged("g9", "Göteborg", "R9", {"camera.height_px": 240}))
        for body in bodies:  # two causes, two messages: the UDP ports (3 rooms) and the camera (1 room)
            _upload(server, token, body)
        rx.wait(2, status=500)
        ids = {m for m, _, _ in _outbox(db_url)}
        assert len(ids) == 2 and {p["json"]["id"] for p in rx.messages()} == ids
        rx.mode = "ack_first_then_hang"  # the next try: one acknowledged, the other held mid-delivery
        deadline = time.monotonic() + 60
        while not rx.messages("held") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert rx.messages("held"), [p["status"] for p in rx.messages()]
        server.kill()  # SIGKILL while the second message is in flight
        acked = {p["json"]["id"] for p in rx.messages(200)}
        assert len(acked) == 1
        sent_before = {m for m, sent, _ in _outbox(db_url) if sent is not None}
        assert sent_before == acked  # what the collector knew was delivered is marked in the database
        rx.mode = "ok"
        count_before = len(rx.messages())
        server.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(sent is None for _, sent, _ in _outbox(db_url)):
            time.sleep(0.2)
        rows = _outbox(db_url)
        assert all(sent is not None for _, sent, _ in rows), rows
    finally:
        server.kill()
        rx.close()
    after = [p["json"]["id"] for p in rx.messages()[count_before:]]
    (held,) = ids - acked
    assert held in after  # the message in flight at the kill came again after the restart
    assert not acked & set(after)  # the acknowledged one never again
    assert {p["json"]["id"] for p in rx.messages() if p["status"] in (200, 204)} == ids


def test_two_replicas_on_postgresql_never_send_one_message_twice(tmp_path, postgres):  # noqa: F811
    import threading

    url = postgres.fresh_url()
    store = Store(url)
    store.migrate()
    try:
        cfg = load_alerts(hook_file(tmp_path, "http://127.0.0.1:9/x"))
        got: list = []
        lock = threading.Lock()

        def slow(_c, ch, m):
            time.sleep(0.2)  # a send in flight while the other replica looks for work
            with lock:
                got.append(m.id)

        replicas = [Alerts(store, cfg, 86400, slow), Alerts(store, cfg, 86400, slow)]
        sites = [f"Site {i}" for i in range(6)]
        for i, site in enumerate(sites):  # six sites, six messages
            ingest(store, judged(f"h{i}", site, "R", UDP), site)
        replicas[0].evaluate()
        assert replicas[1].evaluate() == 0
        later = datetime.now(timezone.utc) + timedelta(seconds=5)
        made = [replicas[0].flush(later), replicas[1].flush(later)]
        assert sorted(made) == [0, 6]
        threads = [threading.Thread(target=lambda r=r: [r.deliver(later, batch=2) for _ in range(6)]) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 6 and len(set(got)) == 6 and replicas[0].depth() == 0
    finally:
        store.close()
