"""The collector end to end: a real ``readiness serve --db URL`` on a loopback port the system picks,
agents uploading through the CLI (``readiness upload``), a real SQLite file or PostgreSQL cluster.

Proved here: nothing lost and nothing doubled when the collector is killed mid-upload or
PostgreSQL is stopped mid-ingest (rows counted afterwards); hostile uploads each get a 4xx with
a reason and the server stays up with flat memory; who may read; HTML in every string field
escaped on every page (and a real Chromium shows no script ran).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import collector_docs as docs
from browser import chromium_path, load_page
from netns import wait_line
from postgres import Postgres, postgres  # noqa: F401 - the session fixture
from readiness.collector.store import Store
from support import need
from test_server import certificate  # noqa: F401 - the fixture: a self-signed certificate for 127.0.0.1

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def readiness_cmd(*args: str) -> list[str]:
    exe = shutil.which("readiness")
    return [exe, *args] if exe else [sys.executable, "-m", "readiness.cli", *args]


class Collector:
    """``readiness serve --db URL`` as a subprocess; ``restart`` keeps the database."""

    def __init__(self, db_url: str, *extra: str) -> None:
        self.db_url, self.extra = db_url, extra
        self.scheme = "https" if "--tls-cert" in extra else "http"
        self.results_dir = tempfile.mkdtemp(prefix="readiness-selftest-")  # the self-test page's folder, unused here
        self.port = 0
        self.start()

    def start(self) -> None:
        # the same port again after a restart, so agents find it where they left it
        self.proc = subprocess.Popen(readiness_cmd("serve", "--db", self.db_url, "--host", "127.0.0.1", "--http-port",
                                                   str(self.port), "--stun-port", "0", "--results-dir", self.results_dir,
                                                   *self.extra),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = wait_line(self.proc, "listening on", timeout=120)
        self.port = int(re.search(r"://127\.0\.0\.1:(\d+)", line).group(1))

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=15)
        return err

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def add_token(cli, db_url: str, *args: str) -> str:
    done = cli("serve", "token", "add", "--db", db_url, *args)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("rdy_") and "shown only now" in done.stderr
    return token


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'readiness.db'}"


@pytest.fixture
def token_file(cli, tmp_path, sqlite_url) -> Path:
    path = tmp_path / "token"
    path.write_text(add_token(cli, sqlite_url, "--site", "Stockholm") + "\n")
    return path


@pytest.fixture
def collector(sqlite_url, token_file):
    c = Collector(sqlite_url)
    yield c
    c.kill()


def spool_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["READINESS_SPOOL_DIR"] = str(tmp_path / "spool")
    return env


def rows(db_url: str) -> int:
    store = Store(db_url)
    try:
        return store.count()
    finally:
        store.close()


def test_run_uploads_after_writing_its_files(cli, tmp_path, collector, token_file, sqlite_url):
    env = spool_env(tmp_path)
    out = tmp_path / "out"
    done = cli("run", "--check", "system", "--site", "Stockholm", "--room", "4.12", "-o", str(out), "--quiet",
               "--no-open", "--upload-url", collector.url, "--token-file", str(token_file), env=env, timeout=180)
    assert done.returncode in (0, 1, 3), done.stderr  # the verdict's code: a run of one check is partial (3)
    written = list(out.glob("*.json"))
    assert len(written) == 1 and list(out.glob("*.html"))
    store = Store(sqlite_url)
    assert store.document(json.loads(written[0].read_text())["run_id"]) == json.loads(written[0].read_text())
    store.close()
    assert list((tmp_path / "spool").glob("*.json")) == []
    no_token = cli("run", "--check", "system", "-o", str(out), "--quiet", "--no-open", "--upload-url", collector.url,
                   env=env)
    assert no_token.returncode == 2 and "upload token is needed" in no_token.stderr
    assert len(list(out.glob("*.json"))) == 1  # said before measuring: nothing run, nothing written


def test_upload_stores_each_result_once_and_empties_the_spool(cli, tmp_path, collector, token_file, sqlite_url):
    made = [docs.write(docs.document(hostname=f"pc{i}", room=str(i)), tmp_path / "out") for i in range(5)]
    env = spool_env(tmp_path)
    done = cli("upload", collector.url, *map(str, made), "--token-file", str(token_file), env=env)
    assert done.returncode == 0, done.stderr
    assert "Uploaded 5 results" in done.stderr
    assert rows(sqlite_url) == 5
    assert list((tmp_path / "spool").iterdir()) == []
    assert all(p.exists() for p in made)  # the local files stay
    # sent again (as after an answer lost on the way back): stored once, success both times
    again = cli("upload", collector.url, *map(str, made), "--token-file", str(token_file), env=env)
    assert again.returncode == 0 and rows(sqlite_url) == 5


def test_collector_unreachable_keeps_the_spool_until_it_is_back(cli, tmp_path, sqlite_url, token_file):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    made = [docs.write(docs.document(hostname=f"pc{i}"), tmp_path / "out") for i in range(3)]
    env = spool_env(tmp_path)
    done = cli("upload", f"http://127.0.0.1:{port}", *map(str, made), "--token-file", str(token_file),
               "--attempts", "2", env=env)
    assert done.returncode == 1, done.stderr
    assert "3 results waiting" in done.stderr and "cannot reach the collector" in done.stderr
    assert len(list((tmp_path / "spool").glob("*.json"))) == 3
    c = Collector(sqlite_url)
    try:
        sent = cli("upload", c.url, "--token-file", str(token_file), env=env)  # nothing named: the spool
        assert sent.returncode == 0, sent.stderr
        assert rows(sqlite_url) == 3 and list((tmp_path / "spool").glob("*.json")) == []
    finally:
        c.kill()


def test_collector_killed_mid_upload_loses_and_doubles_nothing(cli, tmp_path, sqlite_url, token_file):
    n = 500  # enough that the agent is still sending when the collector is killed, even on a busy machine
    folder = tmp_path / "out"
    made = [docs.write(docs.document(hostname=f"pc{i}", room=f"r{i}"), folder) for i in range(n)]
    env = spool_env(tmp_path)
    spooled = cli("upload", "http://127.0.0.1:9", *map(str, made), "--token-file", str(token_file), "--attempts", "1",
                  env=env)
    assert spooled.returncode == 1 and len(list((tmp_path / "spool").glob("*.json"))) == n
    c = Collector(sqlite_url)
    agent = subprocess.Popen(readiness_cmd("upload", c.url, "--token-file", str(token_file), "--attempts", "1"),
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while rows(sqlite_url) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    c.kill()  # SIGKILL: no clean shutdown, a request may be half-read or its answer unsent
    _, err = agent.communicate(timeout=60)
    stored_at_kill = rows(sqlite_url)
    left = len(list((tmp_path / "spool").glob("*.json")))
    assert agent.returncode == 1, err
    assert 20 <= stored_at_kill < n and left > 0
    assert stored_at_kill + left >= n  # every result is stored or still waiting (maybe both: answer lost)
    c.start()
    try:
        done = cli("upload", c.url, "--token-file", str(token_file), env=env)
        assert done.returncode == 0, done.stderr
    finally:
        c.kill()
    store = Store(sqlite_url)
    stored = {run_id for run_id, _ in store.documents(all_runs=True)}
    store.close()
    assert stored == {json.loads(p.read_text())["run_id"] for p in made}  # nothing lost
    assert rows(sqlite_url) == n  # nothing doubled
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_postgresql_stopped_mid_ingest_answers_503_and_everything_arrives_after(cli, tmp_path):
    pg = Postgres()
    try:
        url = pg.fresh_url()
        token_file = tmp_path / "token"
        token_file.write_text(add_token(cli, url, "--site", "Stockholm"))
        c = Collector(url)
        env = spool_env(tmp_path)
        made = [docs.write(docs.document(hostname=f"pc{i}", room=f"r{i}"), tmp_path / "out") for i in range(40)]
        first = cli("upload", c.url, *map(str, made[:10]), "--token-file", str(token_file), env=env)
        assert first.returncode == 0, first.stderr
        pg.stop()
        status, headers, body = c.request("POST", "/api/v1/results", docs.body(docs.document()),
                                          token_file.read_text().strip())
        assert status == 503 and headers.get("retry-after") and json.loads(body)["error"] == "database_unavailable"
        during = cli("upload", c.url, *map(str, made[10:]), "--token-file", str(token_file), "--attempts", "2", env=env)
        assert during.returncode == 1 and "answered 503" in during.stderr
        assert len(list((tmp_path / "spool").glob("*.json"))) == 30
        assert c.proc.poll() is None  # the collector stays up without its database
        pg.start()
        after = cli("upload", c.url, "--token-file", str(token_file), env=env)
        assert after.returncode == 0, after.stderr
        assert rows(url) == 40 and list((tmp_path / "spool").glob("*.json")) == []
        c.kill()
    finally:
        pg.close()


def _slow_post(port: int, token: str) -> bytes:
    """Headers promising 1000 bytes, then 10 bytes and silence: the server must not wait forever."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"POST /api/v1/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"kind\": ".encode())
        start = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert time.monotonic() - start < 20
        return data


def test_hostile_uploads_get_a_reason_and_the_server_stays_up(cli, tmp_path, collector, token_file, sqlite_url):
    token = token_file.read_text().strip()
    malmo = add_token(cli, sqlite_url, "--site", "Malmö")
    revoked = add_token(cli, sqlite_url, "--site", "Uppsala")
    assert cli("serve", "token", "revoke", "--site", "Uppsala", "--db", sqlite_url).returncode == 0
    schema_bad = docs.document()
    schema_bad["checks"]["system"]["status"] = "splendid"
    rss_before = collector.rss_kb()
    cases = [
        ("invalid JSON", b'{"kind": "readiness-result",', token, 400, "invalid_json"),
        ("schema-invalid", docs.body(schema_bad), token, 422, "invalid_result"),
        ("deep nesting", b"[" * 200_000 + b"]" * 200_000, token, None, None),
        ("another site", docs.body(docs.document(site="Malmö")), token, 403, "wrong_site"),
        ("wrong token", docs.body(docs.document()), "rdy_" + "x" * 43, 401, "bad_token"),
        ("revoked token", docs.body(docs.document(site="Uppsala")), revoked, 401, "revoked_token"),
        ("no token", docs.body(docs.document()), None, 401, "no_token"),
        ("read token", docs.body(docs.document()), add_token(cli, sqlite_url, "--read"), 401, "bad_token"),
    ]
    for what, body, tok, status, code in cases:
        got, _, data = collector.request("POST", "/api/v1/results", body, tok)
        if status is None:  # deep nesting: refused by size or by depth, a 4xx either way
            assert got in (400, 413), what
        else:
            assert (got, json.loads(data)["error"]) == (status, code), (what, data)
        assert json.loads(data)["reason"], what
    # 50 MB: refused from its Content-Length, before the body is read
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    conn.putrequest("POST", "/api/v1/results")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))
    conn.endheaders()
    try:
        conn.send(b"x" * (1024 * 1024))
    except OSError:
        pass  # the server may close as soon as it has answered
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]
    conn.close()
    answer = _slow_post(collector.port, token)
    assert answer == b"" or answer.split(b" ")[1].startswith(b"4")
    # still up, memory flat, and a good upload still works
    assert collector.proc.poll() is None
    assert collector.rss_kb() - rss_before < 60_000
    good = docs.document(site="Malmö")
    status, _, data = collector.request("POST", "/api/v1/results", docs.body(good), malmo)
    assert status == 201 and json.loads(data) == {"run_id": good["run_id"], "stored": "new"}
    assert rows(sqlite_url) == 1


def test_reading_is_local_or_needs_a_read_token(cli, collector, sqlite_url):
    read = add_token(cli, sqlite_url, "--read")
    status, _, _ = collector.request("GET", "/metrics")
    assert status == 200  # from this machine
    proxied = {"X-Forwarded-For": "203.0.113.9"}  # through a reverse proxy on this machine: not local
    for path in ("/metrics", "/fleet", "/api/v1/fleet", "/runs/" + "0" * 32):
        status, headers, body = collector.request("GET", path, headers=proxied)
        assert status == 401 and json.loads(body)["error"] == "read_token_required", path
    status, _, body = collector.request("GET", "/metrics", headers=proxied, token=read)
    assert status == 200 and b"readiness_results_stored" in body


def test_metrics_over_http_follow_uploads(cli, tmp_path, collector, token_file):
    env = spool_env(tmp_path)
    made = [docs.write(docs.document(room="1", hostname="a"), tmp_path / "o"),
            docs.write(docs.document(room="2", hostname="b", ram=2), tmp_path / "o")]
    assert cli("upload", collector.url, *map(str, made), "--token-file", str(token_file), env=env).returncode == 0
    status, headers, body = collector.request("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    rooms = {s.labels["state"]: s.value for s in fams["readiness_fleet_computers"].samples if s.labels["site"] == "Stockholm"}
    assert rooms == {"ready": 1, "not_ready": 1, "unknown": 0, "not_reporting": 0, "partial": 0}
    uploads = {s.labels["outcome"]: s.value for s in fams["readiness_uploads"].samples if s.name.endswith("_total")}
    assert uploads["new"] == 2


def test_every_page_escapes_every_string_and_chromium_runs_no_script(cli, tmp_path, collector, sqlite_url):
    token = add_token(cli, sqlite_url, "--site", HOSTILE)
    doc = docs.document(site=HOSTILE, room=HOSTILE, hostname=HOSTILE, label=HOSTILE)
    doc["checks"]["camera"]["title"] = HOSTILE
    doc["checks"]["system"]["details"] = {"note": HOSTILE, HOSTILE: [HOSTILE]}
    doc["warnings"] = [HOSTILE]
    doc["profile"]["title"] = HOSTILE
    for item in doc["judgement"]["items"]:
        item["requirement"]["label"] = HOSTILE
        item["requirement"]["fix"] = HOSTILE
    status, _, data = collector.request("POST", "/api/v1/results", docs.body(doc), token)
    assert status == 201, data
    status, headers, page = collector.request("GET", f"/runs/{doc['run_id']}")
    assert status == 200 and "default-src 'none'" in headers["content-security-policy"]
    assert b"<script>alert" not in page and b"<img src=x" not in page
    assert b"&lt;script&gt;alert" in page
    status, headers, fleet_page = collector.request("GET", "/fleet")
    assert status == 200 and "default-src 'none'" in headers["content-security-policy"]
    assert b"<script>alert" not in fleet_page and b"<img src=x" not in fleet_page
    assert fleet_page.count(b"&lt;script&gt;alert") >= 2  # site and host at least
    status, headers, api = collector.request("GET", "/api/v1/fleet")
    assert headers["content-type"].startswith("application/json") and json.loads(api)["sites"][0]["site"] == HOSTILE
    status, mh, metrics = collector.request("GET", "/metrics")
    assert status == 200 and mh["x-content-type-options"] == "nosniff" and b"readiness_fleet_computers" in metrics
    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    for name, html in (("fleet", fleet_page), ("run", page)):
        path = tmp_path / f"{name}.html"
        path.write_bytes(html)
        shown = load_page(path)
        assert shown.loaded and shown.dialogs == [] and shown.scripts == 0, name
        assert shown.other_requests == [] and shown.errors == [] and HOSTILE.split(">")[0] in shown.text, name


def test_fleet_from_the_database_is_the_fleet_from_the_same_files(cli, tmp_path, collector, token_file, sqlite_url):
    days = __import__("datetime").timedelta(days=1)
    made = [docs.document(room="1", hostname="a", age=3 * days), docs.document(room="1", hostname="a2", camera=False),
            docs.document(room="2", hostname="b", ram=2), docs.document(room="3", hostname="c", height=None),
            docs.document(room="", hostname="ws1", age=2 * days), docs.document(room="", hostname="ws1", cores=1)]
    files = [docs.write(d, tmp_path / "share") for d in made]
    env = spool_env(tmp_path)
    assert cli("upload", collector.url, *map(str, files), "--token-file", str(token_file), env=env).returncode == 0
    from_files = cli("aggregate", str(tmp_path / "share"), "-o", str(tmp_path / "f.html"), "--json", "-")
    from_db = cli("aggregate", "--db", sqlite_url, "-o", str(tmp_path / "d.html"), "--json", "-")
    assert from_files.returncode == 0 and from_db.returncode == 0, from_db.stderr
    a, b = json.loads(from_files.stdout), json.loads(from_db.stdout)
    for key in ("counts", "sites", "requirements", "trend"):
        assert a[key] == b[key], key
    assert b["counts"]["total"] == 4 and b["counts"]["not_ready"] == 2  # room 2 (memory) and ws1's newest run
    assert b["inputs"]["results_read"] == 6 and a["inputs"]["results_read"] == 6
    status, headers, body = collector.request("GET", "/api/v1/fleet")
    assert status == 200 and json.loads(body)["counts"] == b["counts"]
    status, headers, page = collector.request("GET", "/fleet?lang=sv")
    assert status == 200 and headers["content-type"].startswith("text/html") and b'lang="sv"' in page
    assert page.count(b'href="runs/') >= 4  # each row links its run's report on the collector
    status, _, run_page = collector.request("GET", "/runs/" + made[2]["run_id"])
    assert status == 200 and b"b" in run_page
    assert collector.request("GET", "/runs/" + "f" * 32)[0] == 404
    assert cli("aggregate", "--db", sqlite_url, str(tmp_path / "share")).returncode == 2  # one source, not both


def test_a_refused_upload_is_a_plain_error_that_keeps_the_file(cli, tmp_path, collector, token_file, sqlite_url):
    """A file the collector refuses (another site's) is said once, with the collector's reason,
    and set aside in quarantine with its reason: it blocks no later call. A refused token is
    not the file's fault: the file stays in the spool for a fixed token."""
    env = spool_env(tmp_path)
    spool = tmp_path / "spool"
    wrong_site = docs.write(docs.document(site="Malmö"), tmp_path / "out")
    good = docs.write(docs.document(hostname="fine"), tmp_path / "out")
    done = cli("upload", collector.url, str(wrong_site), str(good), "--token-file", str(token_file), env=env)
    assert done.returncode == 2
    assert "refused it (403)" in done.stderr and "Malmö" in done.stderr and "Traceback" not in done.stderr
    refused_id = json.loads(wrong_site.read_text())["run_id"]
    assert list(spool.glob("*.json")) == []
    assert [p.stem for p in (spool / "quarantine").glob("*.json")] == [refused_id]  # nothing lost
    reason = (spool / "quarantine" / f"{refused_id}.json.reason.txt").read_text()
    assert "403" in reason and "Malmö" in reason and "/api/v1/results" in reason
    assert rows(sqlite_url) == 1  # the good one went
    later = cli("upload", collector.url, "--token-file", str(token_file), env=env)
    assert later.returncode == 0, later.stderr  # the refused file poisons nothing after it
    assert "1 result is set aside in quarantine" in later.stderr
    assert cli("serve", "token", "revoke", "1", "--db", sqlite_url).returncode == 0
    again = cli("upload", collector.url, str(docs.write(docs.document(hostname="late"), tmp_path / "out")),
                "--token-file", str(token_file), env=env)
    assert again.returncode == 2 and "revoked" in again.stderr
    assert len(list(spool.glob("*.json"))) == 1  # kept for a new token, not set aside
    missing = cli("upload", collector.url, env={k: v for k, v in env.items() if k != "READINESS_UPLOAD_TOKEN"})
    assert missing.returncode == 2 and "upload token is needed" in missing.stderr


def test_a_token_revoked_while_the_collector_remembers_it_stores_nothing_more(collector, token_file, sqlite_url):
    """The collector remembers a token it has seen for two seconds (no query per upload); a
    token revoked within that time, by another process, still stores nothing from then on."""
    token = token_file.read_text().strip()
    status, _, body = collector.request("POST", "/api/v1/results", docs.body(docs.document(hostname="first")), token)
    assert status == 201, body
    store = Store(sqlite_url)
    try:
        assert store.revoke_tokens(site="Stockholm") == 1  # another process: the collector is not told
    finally:
        store.close()
    for doc in (docs.document(hostname="second"), docs.document(hostname="third", site="Malmö")):
        status, headers, body = collector.request("POST", "/api/v1/results", docs.body(doc), token)
        assert (status, json.loads(body)["error"]) == (401, "revoked_token"), body
        assert headers["www-authenticate"] == "Bearer"
    assert rows(sqlite_url) == 1


def _expecting(port: int, head: str, body: bytes | None) -> tuple[bytes, int | None]:
    """Send a request's head with "Expect: 100-continue" and read the first answer; when it is
    the interim 100, send the body and read the final answer's status."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode() + b"\r\n")
        first = s.recv(65536)  # the interim answer alone: nothing else comes before the body
        if not first.startswith(b"HTTP/1.1 100 ") or body is None:
            return first, None
        s.sendall(body)
        final = http.client.HTTPResponse(s)
        final.begin()
        final.read()
        return first, final.status


def test_expect_100_continue_is_answered_only_after_the_checks_that_need_no_body(collector, token_file, sqlite_url):
    """A client that asks before sending its body is invited only when the size, the route and
    its token pass: a 50 MB body or a bad token is refused at once, and no body crosses."""
    token = token_file.read_text().strip()
    body = docs.body(docs.document(hostname="asked-first"))

    def head(length: int, auth: str) -> str:
        return (f"POST /api/v1/results HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {auth}\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n")

    first, _ = _expecting(collector.port, head(50_000_000, token), None)
    assert first.startswith(b"HTTP/1.1 413 ")
    first, _ = _expecting(collector.port, head(len(body), "rdy_not-a-token"), None)
    assert first.startswith(b"HTTP/1.1 401 ")
    first, final = _expecting(collector.port, head(len(body), token), body)
    assert first == b"HTTP/1.1 100 Continue\r\n\r\n" and final == 201, (first, final)
    assert rows(sqlite_url) == 1


def test_retention_prunes_old_runs_but_keeps_each_rooms_latest(cli, tmp_path, sqlite_url, token_file):
    from datetime import timedelta

    from readiness.collector.ingest import ingest

    day = timedelta(days=1)
    superseded = docs.document(room="1", hostname="a", age=90 * day)  # every check measured again later
    camera = docs.document(room="1", hostname="b", age=60 * day)  # room 1's newest camera measurement
    newest = docs.document(room="1", hostname="c", age=40 * day, camera=False)  # room 1's newest run
    quiet = docs.document(room="2", hostname="d", age=200 * day)  # a room that went quiet: its only run
    store = Store(sqlite_url)
    for d in (superseded, camera, newest, quiet):
        ingest(store, docs.body(d), "Stockholm")
    store.close()
    c = Collector(sqlite_url, "--keep-days", "30")
    deadline = time.monotonic() + 120  # pruning runs in the background at start; a loaded machine is slow
    while rows(sqlite_url) > 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    c.stop()
    store = Store(sqlite_url)
    kept = {run_id for run_id, _ in store.documents(all_runs=True)}
    store.close()
    assert kept == {camera["run_id"], newest["run_id"], quiet["run_id"]}


def test_uploads_over_tls_and_no_token_in_clear(cli, tmp_path, sqlite_url, token_file, certificate):
    cert, key = certificate
    c = Collector(sqlite_url, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert c.url.startswith("https://")
        env = spool_env(tmp_path)
        made = docs.write(docs.document(), tmp_path / "out")
        untrusted = cli("upload", c.url, str(made), "--token-file", str(token_file), "--attempts", "1", env=env)
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr  # kept, not sent
        env["SSL_CERT_FILE"] = str(cert)  # the organisation's CA, as an agent would trust it
        sent = cli("upload", c.url, "--token-file", str(token_file), env=env)
        assert sent.returncode == 0, sent.stderr
        assert rows(sqlite_url) == 1
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            c.request("GET", "/metrics")  # plain HTTP to the TLS port gets no answer
    finally:
        c.kill()


def test_a_result_dated_ahead_of_its_arrival_is_refused_and_never_freezes_its_room(cli, sqlite_url, token_file):
    """A room PC whose clock says 2099 uploads a passing result, then (clock fixed) a failing
    one: the first is refused (400, with the reason, and a log line), the room shows the failure."""
    from datetime import datetime, timedelta, timezone

    c = Collector(sqlite_url)
    try:
        token = token_file.read_text().strip()
        future = docs.document(room="4.12", age=-(datetime(2099, 1, 1, tzinfo=timezone.utc) - docs.NOW))
        status, _, data = c.request("POST", "/api/v1/results", docs.body(future), token)
        answer = json.loads(data)
        assert status == 400 and answer["error"] == "clock_ahead", answer
        assert "2099-01-01T" in answer["reason"] and "clock is ahead" in answer["reason"]
        assert "10 minutes" in answer["reason"]
        near = docs.document(room="5.01", age=-timedelta(minutes=5))  # a clock a little fast: within tolerance
        assert c.request("POST", "/api/v1/results", docs.body(near), token)[0] == 201
        failing = docs.document(room="4.12", ram=2)
        assert c.request("POST", "/api/v1/results", docs.body(failing), token)[0] == 201
        status, _, body = c.request("GET", "/api/v1/fleet")
        counts = json.loads(body)["counts"]
        assert status == 200 and counts["total"] == 2 and counts["not_ready"] == 1 and counts["ready"] == 1
        assert rows(sqlite_url) == 2
        # the fleet notes the refusal among what it skipped, in its reader's language
        noted = json.loads(body)["skipped"]
        assert [s["path"] for s in noted] == [f"Stockholm / 4.12 (run {future['run_id']})"]
        assert noted[0]["reason"].startswith("upload refused: its start time 2099-01-01T") and "clock is ahead" in noted[0]["reason"]
        _, _, page = c.request("GET", "/fleet?lang=sv")
        assert "uppladdningen avvisades: starttiden 2099-01-01T" in page.decode()
    finally:
        log = c.stop()
    assert re.search(rf"127\.0\.0\.1 upload: site 'Stockholm', run {future['run_id']}: refused \(400 clock_ahead\): "
                     r".the result starts at 2099-01-01T", log), log


def test_advice_and_links_from_an_upload_are_never_shown_as_the_organisations(cli, tmp_path, sqlite_url, token_file):
    """An upload's requirement texts are data: /fleet's action list and /runs show the advice of
    the collector's own list (serve --requirements) for a requirement it knows, and an upload's
    texts for a metric no list knows only marked "as sent by the agent", escaped, never a link."""
    own = tmp_path / "collector-test.toml"
    own.write_text(docs.PROFILE + '\n[support]\nname = "IT desk"\nphone = "+46 8 123 456"\n')
    c = Collector(sqlite_url, "--requirements", str(own))
    try:
        token = token_file.read_text().strip()
        known = docs.document(room="1", hostname="a", ram=2)  # fails Memory, which the list knows
        known["judgement"]["profile"]["support"] = {"name": "Evil desk", "phone": "+1 555 0100",
                                                    "web": "http://evil.example/help"}
        for item in known["judgement"]["items"]:
            if item["requirement"]["metric"] == "system.ram_total_gb":
                item["requirement"].update(fix="Visit http://evil.example", why="Trust http://evil.example/why",
                                           source="http://evil.example/source")
        unknown = docs.document(room="2", hostname="b", cores=1)  # fails a requirement no list holds
        for item in unknown["judgement"]["items"]:
            if item["requirement"]["metric"] == "system.cpu_cores":
                item["requirement"].update(metric="system.disk_free_gb", label="Disk", fix="Call <b>+1 555 EVIL</b>",
                                           source="http://evil.example/disk")
        for doc in (known, unknown):
            status, _, data = c.request("POST", "/api/v1/results", docs.body(doc), token)
            assert status == 201, data
        status, _, page = c.request("GET", "/fleet")
        text = page.decode()
        actions = text.split('id="actions"')[1].split("</section>")[0]
        assert '<div class="fix">More memory.</div>' in actions  # the organisation's advice
        assert "evil.example" not in text.replace("Call &lt;b&gt;+1 555 EVIL&lt;/b&gt; (as sent by the agent)", "")
        assert "Call &lt;b&gt;+1 555 EVIL&lt;/b&gt; (as sent by the agent)" in actions and "<b>+1" not in text
        assert 'href="http://evil' not in text
        assert "IT desk" in text and "Evil desk" not in text and "555 0100" not in text  # whom to call: IT's list
        _, _, sv = c.request("GET", "/fleet?lang=sv")
        assert "Call &lt;b&gt;+1 555 EVIL&lt;/b&gt; (som agenten skickade det)" in sv.decode()
        _, _, api = c.request("GET", "/api/v1/fleet")
        rows = {r["metric"]: r for r in json.loads(api)["requirements"]}
        assert (rows["system.ram_total_gb"]["fix"], rows["system.ram_total_gb"]["source"]) == (
            "More memory.", "https://example.invalid/memory")
        assert rows["system.disk_free_gb"]["source"] == ""
        status, _, run_page = c.request("GET", f"/runs/{known['run_id']}")
        assert status == 200 and b"More memory." in run_page and b"evil.example" not in run_page
        assert b"IT desk" in run_page and b"Evil desk" not in run_page and b"555 0100" not in run_page
        status, _, run_page = c.request("GET", f"/runs/{unknown['run_id']}")
        assert status == 200 and b"Call &lt;b&gt;+1 555 EVIL&lt;/b&gt; (as sent by the agent)" in run_page
        assert b'href="http://evil' not in run_page
    finally:
        c.kill()
    assert Store(sqlite_url).document(known["run_id"]) == known  # the upload itself is kept as sent
