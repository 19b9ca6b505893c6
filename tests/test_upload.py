"""The agent's upload path (``readiness.unattended.upload``) against real components: a real
``readiness serve --db sqlite:///…`` as the collector, small real HTTP servers for what a
collector must never be taken for (a redirecting portal, a server failing one file, one that
cuts the connection), a real tinyproxy, and real links, hard links and FIFOs in the spool.

Each attack from issue 21 (items 1-4) and the poisoned spool from issue 20 (item 9) has its test:
the token never reaches another host, a result leaves the spool only on the collector's own
"stored", one bad file never blocks or fails the rest, refused files go to quarantine with
their reason, no credential is printed, and ``readiness upload`` takes the proxy ``run`` takes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

import collector_docs as docs
from test_collector_serve import Collector, add_token, rows, spool_env
from test_proxies import open_proxy, pac_server, tinyproxy  # noqa: F401 - fixtures: tinyproxy (with and without a password), a PAC server
from test_server import certificate  # noqa: F401 - the fixture: a self-signed certificate for 127.0.0.1


class Recorder:
    """A small real HTTP/1.1 server that records every request (path, headers, body) and answers
    with ``answer(run_id, body) -> (status, headers, body)``; None: cut the connection."""

    def __init__(self, answer: Callable[[str, bytes], tuple[int, dict[str, str], bytes] | None]) -> None:
        self.seen: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # so "Expect: 100-continue" is answered, as a collector does

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    run_id = str(json.loads(body).get("run_id"))
                except (ValueError, AttributeError):
                    run_id = ""
                outer.seen.append({"path": self.path, "headers": dict(self.headers), "body": body, "run_id": run_id})
                got = answer(run_id, body)
                if got is None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, data = got
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = _any  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def stored(run_id: str, _body: bytes) -> tuple[int, dict[str, str], bytes]:
    """What the collector answers to a result it stored."""
    return 201, {"Content-Type": "application/json"}, json.dumps({"run_id": run_id, "stored": "new"}).encode()


@pytest.fixture
def recorder():
    made: list[Recorder] = []

    def make(answer=stored) -> Recorder:
        made.append(Recorder(answer))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'readiness.db'}"


@pytest.fixture
def token(cli, sqlite_url) -> str:
    return add_token(cli, sqlite_url, "--site", "Stockholm")


@pytest.fixture
def token_file(tmp_path, token) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return path


def spooled(folder: Path, doc: dict[str, Any], mtime: float | None = None) -> Path:
    """A result waiting in the spool, as the agent leaves it (``<run id>.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{doc['run_id']}.json"
    path.write_bytes(docs.body(doc))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# --- 1. redirects: the token never leaves for another host -------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(cli, tmp_path, recorder, token_file, status):
    elsewhere = recorder()  # answers "stored" to anything: if the agent went there, it would believe it
    portal = recorder(lambda _r, _b: (status, {"Location": f"{elsewhere.url}/api/v1/results?session=s3cr3t"}, b""))
    env = spool_env(tmp_path)
    doc = docs.document()
    spooled(tmp_path / "spool", doc)
    done = cli("upload", portal.url, "--token-file", str(token_file), env=env)
    assert done.returncode == 2, done.stderr
    assert f"answered {status}, a redirect to {elsewhere.url}/api/v1/results" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout  # where it pointed, redacted
    assert elsewhere.seen == []  # no request at all reached the other host, so no Authorization either
    assert len(portal.seen) == 1  # one try: a redirect is no outage to retry
    assert [p.stem for p in (tmp_path / "spool").glob("*.json")] == [doc["run_id"]]  # not stored: kept


def test_with_replicas_a_redirecting_one_is_passed_over_and_followed_nowhere(cli, tmp_path, recorder, token_file):
    elsewhere = recorder()
    portal = recorder(lambda _r, _b: (302, {"Location": f"{elsewhere.url}/api/v1/results"}, b""))
    replica = recorder()
    env = spool_env(tmp_path)
    doc = docs.document()
    spooled(tmp_path / "spool", doc)
    done = cli("upload", f"{portal.url},{replica.url}", "--token-file", str(token_file), env=env)
    assert done.returncode == 0, done.stderr
    assert [s["run_id"] for s in replica.seen] == [doc["run_id"]] and elsewhere.seen == []
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_urlopen_follows_no_redirect_with_credentials(recorder):
    """proxies.urlopen, kept for requests other than uploads: with Authorization, a 3xx is an error."""
    import urllib.error

    from readiness.measure.proxies import ProxyResolver, urlopen

    elsewhere = recorder()
    portal = recorder(lambda _r, _b: (302, {"Location": f"{elsewhere.url}/x"}, b""))
    with pytest.raises(urllib.error.HTTPError) as err:
        urlopen(portal.url + "/api/v1/results", data=b"{}", headers={"Authorization": "Bearer rdy_secret"},
                resolver=ProxyResolver(proxy="direct"), timeout_s=10)
    assert err.value.code == 302 and elsewhere.seen == []
    with urlopen(portal.url + "/open", resolver=ProxyResolver(proxy="direct"), timeout_s=10) as r:
        assert r.status == 201  # without credentials a redirect is still followed
    assert [s["path"] for s in elsewhere.seen] == ["/x"]


@pytest.mark.parametrize("answer", [
    (200, {"Content-Type": "text/html"}, b"<html>Welcome to the guest network</html>"),  # a captive portal
    (201, {"Content-Type": "application/json"}, b'{"stored": "new", "run_id": "0123456789abcdef0123456789abcdef"}'),
    (200, {"Content-Type": "application/json"}, b'{"ok": true}'),
])
def test_a_result_leaves_the_spool_only_on_the_collectors_stored(cli, tmp_path, recorder, token_file, answer):
    impostor = recorder(lambda _r, _b: answer)
    env = spool_env(tmp_path)
    doc = docs.document()
    spooled(tmp_path / "spool", doc)
    done = cli("upload", impostor.url, "--token-file", str(token_file), env=env)
    assert done.returncode == 2 and "without saying it stored the result" in done.stderr, done.stderr
    assert [p.stem for p in (tmp_path / "spool").glob("*.json")] == [doc["run_id"]]


# --- 2. the spool: no links, newest first, one bad file blocks nothing, quarantine ---------------


def test_the_spool_follows_no_link_and_never_sends_what_one_points_to(cli, tmp_path, recorder, token_file):
    receiver = recorder()
    env = spool_env(tmp_path)
    spool = tmp_path / "spool"
    secret = tmp_path / "secret.json"  # looks like a result, to tempt the agent
    original = docs.body(docs.document(hostname="SECRET-FILE"))
    secret.write_bytes(original)
    fine_doc = docs.document(hostname="fine")
    fine = spooled(spool, fine_doc)
    (spool / "aaaa.json").symlink_to(secret)
    os.link(secret, spool / "bbbb.json")  # a hard link: the same secret under a second name
    os.mkfifo(spool / "cccc.json")  # a FIFO would hang a plain open()
    done = cli("upload", receiver.url, "--token-file", str(token_file), env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert [s["run_id"] for s in receiver.seen] == [fine_doc["run_id"]]
    assert all(b"SECRET-FILE" not in s["body"] for s in receiver.seen)
    assert not fine.exists() and list(spool.glob("*.json")) == []
    quarantine = spool / "quarantine"
    assert sorted(p.name for p in quarantine.glob("*.json")) == ["aaaa.json", "bbbb.json", "cccc.json"]
    assert (quarantine / "aaaa.json").is_symlink()  # the link moved, not what it points to
    assert secret.read_bytes() == original  # the secret is untouched
    for name in ("aaaa", "bbbb", "cccc"):
        assert "a link or not a plain file" in (quarantine / f"{name}.json.reason.txt").read_text()


def test_a_quarantine_folder_that_is_a_link_receives_nothing(cli, tmp_path, recorder, token_file):
    refusing = recorder(lambda _r, _b: (422, {"Content-Type": "application/json"},
                                        b'{"error": "invalid_result", "reason": "not a valid result"}'))
    env = spool_env(tmp_path)
    spool = tmp_path / "spool"
    doc = docs.document()
    spooled(spool, doc)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (spool / "quarantine").symlink_to(elsewhere)
    done = cli("upload", refusing.url, "--token-file", str(token_file), env=env)
    assert done.returncode == 2 and "not a plain folder" in done.stderr, done.stderr
    assert list(elsewhere.iterdir()) == []
    assert [p.stem for p in spool.glob("*.json")] == [doc["run_id"]]  # kept where it was


def test_newest_first_and_one_bad_file_never_blocks_the_rest(cli, tmp_path, recorder, token_file):
    now = time.time()
    fails, cut, old, older = (docs.document(hostname=h) for h in ("fails", "cut", "old", "older"))
    bad = {fails["run_id"]: "fail", cut["run_id"]: "cut"}

    def answer(run_id: str, body: bytes):
        if bad.get(run_id) == "fail":
            return 500, {"Content-Type": "application/json"}, b'{"error": "internal error"}'
        if bad.get(run_id) == "cut":
            return None
        return stored(run_id, body)

    collector = recorder(answer)
    env = spool_env(tmp_path)
    spool = tmp_path / "spool"
    for i, doc in enumerate((fails, cut, old, older)):
        spooled(spool, doc, mtime=now - 60 * i)
    done = cli("upload", collector.url, "--token-file", str(token_file), "--attempts", "2", env=env, timeout=120)
    assert done.returncode == 1, done.stderr  # some wait: nothing refused
    order = list(dict.fromkeys(s["run_id"] for s in collector.seen))
    assert order == [fails["run_id"], cut["run_id"], old["run_id"], older["run_id"]]  # newest first
    assert sorted(p.stem for p in spool.glob("*.json")) == sorted([fails["run_id"], cut["run_id"]])
    assert "2 results waiting" in done.stderr and "Uploaded 2 results" in done.stderr
    assert not (spool / "quarantine").exists()  # a 5xx or a cut is no refusal: kept for later


def test_an_oversized_file_is_set_aside_and_the_others_go(cli, tmp_path, sqlite_url, token, token_file):
    c = Collector(sqlite_url, "--max-upload-mb", "0.02")
    try:
        env = spool_env(tmp_path)
        spool = tmp_path / "spool"
        big = docs.document(hostname="big")
        big["padding"] = "x" * 60_000  # well over the collector's 20 kB
        small = docs.document(hostname="small")
        spooled(spool, big, mtime=time.time())
        spooled(spool, small, mtime=time.time() - 60)
        done = cli("upload", c.url, "--token-file", str(token_file), env=env)
        assert done.returncode == 2, done.stderr
        assert "refused it (413)" in done.stderr and "Uploaded 1 result" in done.stderr
        assert rows(sqlite_url) == 1 and list(spool.glob("*.json")) == []
        assert (spool / "quarantine" / f"{big['run_id']}.json").exists()
        assert "413" in (spool / "quarantine" / f"{big['run_id']}.json.reason.txt").read_text()
        again = cli("upload", c.url, "--token-file", str(token_file), env=env)
        assert again.returncode == 0, again.stderr  # set aside: it fails no later call
        listed = cli("upload", "--quarantined", env=env)
        assert listed.returncode == 0 and f"{big['run_id']}.json" in listed.stdout and "413" in listed.stdout
        dropped = cli("upload", "--drop-quarantined", env=env)
        assert dropped.returncode == 0 and "Deleted 1 results" in dropped.stdout
        assert list((spool / "quarantine").iterdir()) == []
        assert "No results in quarantine" in cli("upload", "--quarantined", env=env).stdout
        sv = cli("upload", "--quarantined", "--lang", "sv", env=env)
        assert "Inga resultat i karantän" in sv.stdout
    finally:
        err = c.stop()
    assert "refused: 413" in err and token not in err


def test_the_exit_code_of_run_is_its_own_result_and_upload(cli, tmp_path, sqlite_url, token, token_file):
    """An older refused file is set aside and said; the run's own result is stored, its exit code
    is its verdict's, its summary says the result was sent (in both languages); the collector
    logs one line per upload (site, run id, outcome), never the token."""
    c = Collector(sqlite_url)
    try:
        env = spool_env(tmp_path)
        spool = tmp_path / "spool"
        malmo = docs.document(site="Malmö", hostname="older")
        spooled(spool, malmo, mtime=time.time() - 3600)
        out = tmp_path / "out"
        args = ("run", "--check", "system", "--site", "Stockholm", "--room", "4.12", "-o", str(out), "--no-open",
                "--upload-url", c.url, "--token-file", str(token_file))
        done = cli(*args, env=env, timeout=180)
        assert done.returncode in (0, 1, 3), done.stderr  # the verdict's code, not 2 for the older file
        own_file = next(out.glob("*.json"))
        own = json.loads(own_file.read_text())["run_id"]
        assert f"Result sent to {c.url}: stored." in done.stdout
        assert "refused it (403)" in done.stderr and "set aside" in done.stderr
        assert (spool / "quarantine" / f"{malmo['run_id']}.json").exists()
        sv = cli(*args, "--lang", "sv", env=env, timeout=180)
        assert sv.returncode == done.returncode, sv.stderr
        assert f"Resultatet skickat till {c.url}: sparat." in sv.stdout
        assert rows(sqlite_url) == 2
        again = cli("upload", c.url, str(own_file), "--token-file", str(token_file), env=env)
        assert again.returncode == 0, again.stderr
        wrong = cli("run", "--check", "system", "--site", "Malmö", "-o", str(tmp_path / "out2"), "--no-open", "--quiet",
                    "--upload-url", c.url, "--token-file", str(token_file), env=env, timeout=180)
        assert wrong.returncode == 2 and "Result not sent: the collector refused it (403)" in wrong.stderr
    finally:
        err = c.stop()
    lines = [ln for ln in err.splitlines() if " upload: " in ln]
    assert f"upload: site 'Stockholm', run {own}: stored (new)" in err
    assert f"upload: site 'Stockholm', run {own}: stored (duplicate)" in err
    assert f"upload: site 'Stockholm', run {malmo['run_id']}: refused (403 wrong_site)" in err
    assert len(lines) == 5, lines  # older file, run, run in Swedish, the same again, the Malmö run
    assert token not in err and token.split("_", 1)[-1] not in err


# --- 3. credentials in the URL are never printed ------------------------------------------------


def test_credentials_in_the_url_are_never_printed(cli, tmp_path, sqlite_url, token, token_file):
    c = Collector(sqlite_url)
    try:
        env = spool_env(tmp_path)
        made = docs.write(docs.document(), tmp_path / "out")
        url = f"http://user:pa55word@127.0.0.1:{c.port}/?token=t0psecret"
        done = cli("upload", url, str(made), "--token-file", str(token_file), env=env)
        assert done.returncode == 0, done.stderr
        assert f"Uploaded 1 result to http://***@127.0.0.1:{c.port}/" in done.stderr
        with socket.socket() as s:  # a port nobody listens on: the error path
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        spooled(tmp_path / "spool", docs.document())
        for bad in (f"http://user:pa55word@127.0.0.1:{dead}/?token=t0psecret", "ftp://user:pa55word@host/?token=t0psecret",
                    f"http://user:pa55word@127.0.0.1:99999/?token=t0psecret"):
            failed = cli("upload", bad, "--token-file", str(token_file), "--attempts", "1", env=env)
            assert failed.returncode in (1, 2) and "Traceback" not in failed.stderr, failed.stderr
            assert failed.stderr.strip()
            for text in (failed.stdout, failed.stderr):
                assert "pa55word" not in text and "t0psecret" not in text
    finally:
        c.kill()


# --- 4. readiness upload takes the proxy run takes ----------------------------------------------


def test_upload_goes_through_the_configured_proxy(cli, tmp_path, sqlite_url, token_file, tinyproxy):
    c = Collector(sqlite_url)
    try:
        env = spool_env(tmp_path)
        for k in [k for k in env if k.lower().endswith("_proxy")]:
            del env[k]
        spool = tmp_path / "spool"
        first = docs.document(hostname="by-option")
        spooled(spool, first)
        done = cli("upload", c.url, "--token-file", str(token_file), "--proxy", tinyproxy["url"], env=env)
        assert done.returncode == 0, done.stderr
        log = tinyproxy["log"].read_text(errors="replace")
        assert f"POST http://127.0.0.1:{c.port}/api/v1/results" in log
        assert "s3cret-Losen" not in done.stderr + done.stdout
        # the same from a configuration file, as `run` reads it (the collector's URL and token too)
        config = tmp_path / "readiness.toml"
        config.write_text(f'proxy = "{tinyproxy["url"]}"\nupload_url = "{c.url}"\ntoken_file = "{token_file}"\n')
        before = log.count("/api/v1/results")
        spooled(spool, docs.document(hostname="by-config"))
        done = cli("upload", "--config", str(config), env=env)
        assert done.returncode == 0, done.stderr
        assert tinyproxy["log"].read_text(errors="replace").count("/api/v1/results") == before + 1
        # and from the environment, the Linux convention the OS layer reads
        spooled(spool, docs.document(hostname="by-environment"))
        done = cli("upload", c.url, "--token-file", str(token_file), env={**env, "HTTP_PROXY": tinyproxy["url"]})
        assert done.returncode == 0, done.stderr
        assert tinyproxy["log"].read_text(errors="replace").count("/api/v1/results") == before + 2
        # and a proxy that is down is a proxy used: the result waits
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = s.getsockname()[1]
        spooled(spool, docs.document(hostname="dead-proxy"))
        down = cli("upload", c.url, "--token-file", str(token_file), "--proxy", f"http://127.0.0.1:{dead}",
                   "--attempts", "1", env=env)
        assert down.returncode == 1 and "cannot reach the collector" in down.stderr, down.stderr
        assert rows(sqlite_url) == 3
    finally:
        c.kill()


def test_upload_over_tls_through_the_proxy_a_pac_file_names(cli, tmp_path, sqlite_url, token_file, certificate,
                                                             open_proxy, pac_server):
    """``--pac-url`` as ``run`` takes it: the PAC file names tinyproxy for 127.0.0.1, the upload
    goes through a CONNECT tunnel to a TLS collector, trusted through the OS store."""
    cert, key = certificate
    c = Collector(sqlite_url, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        env = spool_env(tmp_path)
        for k in [k for k in env if k.lower().endswith("_proxy")]:
            del env[k]
        env["SSL_CERT_FILE"] = str(cert)
        spooled(tmp_path / "spool", docs.document())
        done = cli("upload", c.url, "--token-file", str(token_file), "--pac-url", f"{pac_server}?port={open_proxy['port']}",
                   env=env)
        assert done.returncode == 0, done.stderr
        assert f"CONNECT 127.0.0.1:{c.port}" in open_proxy["log"].read_text(errors="replace")
        assert rows(sqlite_url) == 1
    finally:
        c.kill()


def test_token_and_spool_faults_are_said_in_swedish_in_one_line(cli, tmp_path):
    """The token and spool refusals come from the catalogs: with --lang sv an unreadable, empty or
    garbled token file, no token at all, and a spool folder that cannot be made each give one Swedish line, exit 2."""
    result = tmp_path / "result.json"
    result.write_text(json.dumps(docs.document()), encoding="utf-8")
    good = tmp_path / "token"
    good.write_text("a-token-of-the-site\n")
    empty = tmp_path / "empty-token"
    empty.write_text("\n")
    garbled = tmp_path / "garbled-token"
    garbled.write_text("two words\n")
    not_text = tmp_path / "binary-token"
    not_text.write_bytes(b"\xff\xfe\x00token")
    in_the_way = tmp_path / "not-a-folder"
    in_the_way.write_text("a file where the spool folder should be\n")
    env = spool_env(tmp_path)
    env.pop("READINESS_UPLOAD_TOKEN", None)
    for args, swedish, english in [
        (("--token-file", str(not_text)), "kan inte läsa nyckelfilen", "cannot read the token file"),
        (("--token-file", str(empty)), "är tom", "is empty"),
        (("--token-file", str(garbled)), "innehåller mellanslag eller styrtecken", "spaces or control characters"),
        ((), "en uppladdningsnyckel behövs", "an upload token is needed"),
        (("--token-file", str(good), "--spool-dir", str(in_the_way / "spool"), str(result)),
         "kan inte spara resultatet i kömappen", "cannot keep the result"),
    ]:
        done = cli("upload", "http://127.0.0.1:9", *args, "--lang", "sv", env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert swedish in done.stderr and english not in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        english_done = cli("upload", "http://127.0.0.1:9", *args, env=env)
        assert english_done.returncode == 2 and english in english_done.stderr, english_done.stderr
    assert in_the_way.is_file() and result.exists()  # nothing lost, nothing replaced
    no_url = cli("upload", "--token-file", str(good), "--lang", "sv", env=env)
    assert no_url.returncode == 2 and no_url.stderr.strip() == (
        "readiness: ange insamlingsserverns adress (eller sätt upload_url i konfigurationen)"), no_url.stderr
