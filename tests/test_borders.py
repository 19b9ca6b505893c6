"""Borders, round three (issue 21, items 8-12): text that is not text, values that would split a
generated schedule, a PAC file without limits, token and config files that are not small regular
files, and the collector's database readable by other users. Each attack runs against real
files, FIFOs, a real HTTP server serving the PAC and a real ``readiness serve``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import collector_docs as docs  # noqa: E402
from test_collector_serve import Collector, add_token, rows  # noqa: E402
from test_hostile import make_result, put  # noqa: E402
from test_selftest import observations  # noqa: E402

# --- 8. unpaired surrogates and bytes that are not UTF-8 -------------------------------------


def _surrogate_documents() -> list[tuple[str, bytes, str]]:
    """(id, bytes of a result, where the border says the bad text is)."""
    escaped = json.dumps(make_result("esc", index=71)).replace('"esc"', '"esc\\ud800"').encode()
    low = json.dumps(make_result("low", index=72)).replace('"low"', '"\\uDC00low"').encode()
    raw = json.dumps(make_result("raw", index=73), ensure_ascii=False).encode().replace(b'"raw"', b'"raw\xed\xa0\x80"')
    doc = make_result("key", index=74)
    doc["checks"]["system"]["details"] = {"\ud800": 1}
    key = json.dumps(doc).encode()
    utf16 = json.dumps(make_result("u16", index=75)).replace('"u16"', '"u16\\udbff"').encode("utf-16")
    return [("escaped", escaped, "host.hostname"), ("escaped-low", low, "host.hostname"),
            ("raw-utf8", raw, "host.hostname"), ("in-a-key", key, "details"), ("utf-16", utf16, "host.hostname")]


SURROGATES = _surrogate_documents()


@pytest.mark.parametrize("name,raw,where", SURROGATES, ids=[s[0] for s in SURROGATES])
def test_a_lone_surrogate_in_a_file_is_skipped_by_aggregate_and_refused_by_report(cli, tmp_path, name, raw, where):
    share = tmp_path / "share"
    share.mkdir()
    put(share / "good.json", make_result("good", index=1))
    bad = put(share / f"{name}.json", raw)
    r = cli("aggregate", str(share), "-o", str(tmp_path / "fleet.html"), "--json", str(tmp_path / "fleet.json"))
    assert r.returncode == 0, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 1 and skipped[0].startswith(f"skipped: {bad}: ") and where in skipped[0], r.stderr
    assert "not Unicode" in skipped[0]
    assert json.loads((tmp_path / "fleet.json").read_text("utf-8"))["counts"]["total"] == 1
    rep = cli("report", str(bad))
    lines = rep.stderr.strip().splitlines()
    assert rep.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"readiness: {bad}: "), rep.stderr
    assert "not Unicode" in lines[0] and not (tmp_path / "share" / f"{name}.html").exists()


def test_a_file_or_folder_name_that_is_not_utf8_is_listed_and_skipped_and_the_report_written(cli, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    put(share / "good.json", make_result("good", index=1))
    put(Path(os.fsdecode(os.fsencode(share) + b"/r\xff.json")), make_result("other", index=2))
    folder = Path(os.fsdecode(os.fsencode(share) + b"/d\xfe"))
    folder.mkdir()
    put(folder / "x.json", make_result("third", index=3))
    out = {k: tmp_path / f"fleet.{k}" for k in ("html", "csv", "json")}
    r = cli("aggregate", str(share), "-o", str(out["html"]), "--csv", str(out["csv"]), "--json", str(out["json"]))
    assert r.returncode == 0 and "internal error" not in r.stderr, r.stderr
    skipped = sorted(line for line in r.stderr.splitlines() if line.startswith("skipped: "))
    assert skipped == [f"skipped: {share}/d\\xfe: its name is not UTF-8 text; rename it to read it",
                       f"skipped: {share}/r\\xff.json: its name is not UTF-8 text; rename it to read it"], r.stderr
    figures = json.loads(out["json"].read_text("utf-8"))
    assert figures["counts"]["total"] == 1 and len(figures["skipped"]) == 2
    assert "r\\xff.json" in out["html"].read_text("utf-8")


def test_paired_surrogates_and_a_backslash_before_u_still_read(cli, tmp_path):
    # an emoji written as its escaped pair, and the text \ud800 (an escaped backslash): both text
    doc = json.dumps(make_result("pair", index=76)).replace('"pair"', '"pair\\ud83d\\ude00 \\\\ud800"')
    good = put(tmp_path / "pair.json", doc)
    r = cli("report", str(good), "-o", str(tmp_path / "pair.html"))
    assert r.returncode == 0, r.stderr
    assert "pair\U0001f600 \\ud800" in (tmp_path / "pair.html").read_text("utf-8")


def test_a_lone_surrogate_upload_is_a_400_with_a_short_reason_and_a_short_log_line(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    token = add_token(cli, db, "--site", "Stockholm")
    c = Collector(db)
    try:
        bodies = [json.dumps(docs.document(room="R\ud800")).encode(),  # json.dumps escapes it: "R\ud800"
                  json.dumps(docs.document(room="R\ud800"), ensure_ascii=False).encode("utf-8", "surrogatepass")]
        for body in bodies:
            status, _, data = c.request("POST", "/api/v1/results", body, token)
            answer = json.loads(data)
            assert status == 400 and answer["error"] == "not_text", data
            assert len(answer["reason"]) < 300 and "labels.room" in answer["reason"] and "not Unicode" in answer["reason"]
        assert c.proc.poll() is None and rows(db) == 0
        good = docs.document()
        status, _, _ = c.request("POST", "/api/v1/results", docs.body(good), token)
        assert status == 201 and rows(db) == 1
    finally:
        log = c.stop()
    refused = [line for line in log.splitlines() if "refused" in line]
    assert len(refused) == 2 and all(len(line) < 600 for line in refused), log
    assert "internal error" not in log and "failed" not in log


def test_a_lone_surrogate_in_the_page_result_is_a_400_and_nothing_is_kept(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    c = Collector(db)
    try:
        for sub in (observations(labels={"site": "HQ", "room": "R\ud800"}),
                    observations(browser={"name": "Chromium\udfff"})):
            status, _, data = c.request("POST", "/__selftest/result", json.dumps(sub).encode())
            assert status == 400 and "not Unicode" in json.loads(data)["error"], data
            assert len(data) < 300
        assert list(Path(c.results_dir).iterdir()) == [] and c.proc.poll() is None
        status, _, _ = c.request("POST", "/__selftest/result", json.dumps(observations()).encode())
        assert status == 200 and len(list(Path(c.results_dir).glob("*.json"))) == 1
    finally:
        log = c.stop()
    assert "internal error" not in log and "failed" not in log and all(len(line) < 600 for line in log.splitlines())


def test_an_argument_or_variable_that_is_not_utf8_is_a_usage_error(tmp_path):
    import subprocess

    out = tmp_path / "out"
    argv = [os.fsencode(sys.executable), b"-m", b"readiness.cli", b"run", b"--check", b"system", b"--room", b"R\xff",
            b"-o", os.fsencode(out), b"--no-open"]
    r = subprocess.run(argv, capture_output=True, timeout=120)
    assert r.returncode == 2 and b"'R\\xff' is not text" in r.stderr and b"internal error" not in r.stderr, r.stderr
    env = {k.encode(): v.encode() for k, v in os.environ.items()} | {b"READINESS_ROOM": b"R\xff"}
    r = subprocess.run(argv[:6] + argv[8:], capture_output=True, timeout=120, env=env)
    assert r.returncode == 2 and b"READINESS_ROOM" in r.stderr and b"not text" in r.stderr, r.stderr
    assert not out.exists()  # said before measuring: nothing written


# --- 9. control characters in what a scheduler reads ----------------------------------------

ROOT_LINE = "4.12\n* * * * * root touch x #"


@pytest.mark.parametrize("via,value", [
    ("cron", ROOT_LINE), ("systemd", "4.12\nExecStartPre=/bin/touch /x"), ("launchd", "4.12\r</string>"),
    ("windows", "4.12\x1b[2J"), ("systemd", "4.12\x7f"), ("cron", "4.12\x85x"), ("systemd", "4.12\u2028x"),
    ("cron", "4.12\tx"),
])
@pytest.mark.parametrize("scope", [["--system"], []])
def test_a_control_character_in_a_scheduled_value_is_refused_before_anything_is_written(cli, tmp_path, via, value,
                                                                                       scope):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), HOME=str(tmp_path / "home"))
    # a real install only where a regression would write into this test's own folders, never
    # into /etc or the crontab of the user running the tests
    actions = [["--print"]] + ([[]] if not scope and via != "cron" else [])
    for action in actions:
        r = cli("schedule", "install", *action, "--via", via, *scope, "--", "--room", value, env=env)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert r.stdout == "" and "control character" in r.stderr and "nothing was written" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "config").exists() and not (tmp_path / "home").exists()


def test_a_windows_user_name_with_a_line_break_is_refused(cli):
    env = dict(os.environ, USERNAME="alice</UserId><UserId>S-1-5-18\n", USERDOMAIN="CORP")
    r = cli("schedule", "install", "--print", "--via", "windows", env=env)
    assert r.returncode == 2 and "Windows user name" in r.stderr and r.stdout == "", r.stderr


# --- 10. a PAC file without limits -------------------------------------------------------------

GOOD_PAC = b'function FindProxyForURL(url, host) {\n  if (host == "127.0.0.1") return "PROXY 127.0.0.1:3128";\n' \
           b'  if (host == "loop.example") { while (true) {} }\n  return "DIRECT";\n}\n'


@pytest.fixture(scope="module")
def pac_files():
    """A real HTTP server with PAC files: good, one that never loads, and two of 100 MB (with a
    Content-Length, and without: sent until the reader stops). Counts the bytes it sent."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    sent = {"big": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ns-proxy-autoconfig")
            if self.path.startswith("/big"):
                if self.path == "/big.pac":
                    self.send_header("Content-Length", str(100 * 1024 * 1024))
                self.end_headers()
                try:
                    for _ in range(1600):
                        self.wfile.write(b"/" * 65536)
                        sent["big"] += 65536
                except OSError:
                    pass
                self.close_connection = True
                return
            body = b"while (true) {}\n" + GOOD_PAC if self.path == "/loop.pac" else GOOD_PAC
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", sent
    srv.shutdown()
    srv.server_close()


def test_a_good_pac_still_names_the_proxy_and_a_throwing_host_falls_back(pac_files):
    from readiness.measure.proxies import ProxyResolver

    base, _ = pac_files
    r = ProxyResolver(pac_url=f"{base}/good.pac", env={})
    assert r.route("https://127.0.0.1:8443/").proxy == "http://127.0.0.1:3128"
    assert r.route("https://example.org/") == r.route("https://example.org/")
    assert r.route("https://example.org/").source == "pac" and r.facts() == {"pac_url": f"{base}/good.pac"}
    # a call that never returns: the PAC is dropped for the rest of the run and said why
    loop = r.route("https://loop.example/")
    assert loop.source == "direct" and loop.proxy is None
    assert "did not answer within 2 s; not used" in r.facts()["pac_error"] and r.facts()["pac_url"] is None
    assert r.route("https://127.0.0.1:8443/").source == "direct"


@pytest.mark.parametrize("name,said", [("loop.pac", "did not load within"), ("big.pac", "larger than 1024 kB"),
                                       ("big-chunked.pac", "larger than 1024 kB")])
def test_a_pac_that_never_loads_or_is_100_mb_is_not_used_and_said(pac_files, name, said):
    import resource

    from readiness.measure.proxies import ProxyResolver

    base, sent = pac_files
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sent["big"] = 0
    r = ProxyResolver(pac_url=f"{base}/{name}", env={})
    route = r.route("https://127.0.0.1:8443/")
    assert route.source == "direct" and route.proxy is None
    assert said in r.facts()["pac_error"] and r.facts()["pac_url"] is None
    assert sent["big"] < 20 * 1024 * 1024  # the reader stopped at its limit, not at 100 MB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB: nothing of it here


def test_run_with_a_pac_that_loops_for_ever_finishes_and_says_why(cli, tmp_path, pac_files):
    base, _ = pac_files
    port = base.rsplit(":", 1)[1]  # a port that answers, so the check has something to report
    svc = f'[{{name = "Möte", tcp = ["127.0.0.1:{port}"], tls = ["127.0.0.1:{port}"]}}]'
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    r = cli("run", "--check", "connectivity", "--set", f"connectivity.services={svc}", "--set",
            "connectivity.timeout_s=2", "--json", "--no-open", "-q", "-o", str(tmp_path), "--pac-url",
            f"{base}/loop.pac", env=env, timeout=120)
    assert r.returncode in (0, 1, 3), r.stderr
    proxies = json.loads(r.stdout)["checks"]["connectivity"]["details"]["proxies"]
    assert proxies["pac_url"] is None and "did not load within" in proxies["pac_error"]


# --- 11. token and configuration files: regular, small, shallow ----------------------------------


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)  # nobody writes to it: reading it the ordinary way would wait for ever
    return path


def _one_plain_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    return lines[0]


def test_a_fifo_or_a_huge_token_file_is_refused_without_waiting_or_reading_it(cli, tmp_path, fifo):
    huge = tmp_path / "huge-token"
    with huge.open("wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # 200 MB that costs no disk: a sparse file
    for path, said in ((fifo, "not a regular file"), (huge, "too large (200.0 MB; at most 64 kB)")):
        r = cli("upload", "http://127.0.0.1:9", "--token-file", str(path), timeout=30)
        assert said in _one_plain_line(r) and ("token file" in r.stderr or "--token-file" in r.stderr)  # named either way
        r = cli("run", "--check", "system", "--no-open", "-q", "-o", str(tmp_path / "out"), "--upload-url",
                "http://127.0.0.1:9", "--token-file", str(path), timeout=60)
        assert "not a regular file" in _one_plain_line(r) if path == fifo else "too large" in _one_plain_line(r)
        assert not list((tmp_path / "out").glob("*.json"))  # said before measuring


def test_a_fifo_huge_or_deeply_nested_config_is_a_plain_error(cli, tmp_path, fifo):
    huge = tmp_path / "huge.toml"
    huge.write_text('site = "x"\nlabel = "' + "a" * (2 * 1024 * 1024) + '"\n')
    deep = tmp_path / "deep.toml"
    deep.write_text("[checks.latency]\ntargets = " + "[" * 5000 + "]" * 5000 + "\n")
    for path, said in ((fifo, "not a regular file"), (huge, "too large (2.0 MB; at most 1 MB)"),
                       (deep, "nested too deeply")):
        assert said in _one_plain_line(cli("config", "show", "--config", str(path), timeout=30))
        env = dict(os.environ, READINESS_CONFIG=str(path))
        assert said in _one_plain_line(cli("config", "show", env=env, timeout=30))
    deep_value = "[" * 5000 + "]" * 5000
    r = cli("run", "--check", "latency", "--set", f"latency.targets={deep_value}", "-o", str(tmp_path / "out"))
    assert "latency.targets" in _one_plain_line(r) or "targets" in r.stderr


def test_a_profile_nested_5000_deep_is_an_error_with_the_file(cli, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text('name = "deep"\nx = ' + "[" * 5000 + "]" * 5000 + "\n")
    result = put(tmp_path / "r.json", make_result("deep-profile", index=5))
    line = _one_plain_line(cli("report", "--requirements", str(deep), str(result)))
    assert str(deep) in line and "nested too deeply" in line


@pytest.mark.parametrize("what", ["random", "text", "fifo", "folder"])
def test_token_commands_on_a_file_that_is_not_a_database_are_a_plain_error(cli, tmp_path, what):
    path = tmp_path / "x.db"
    if what == "random":
        path.write_bytes(os.urandom(5000))
    elif what == "text":
        path.write_text("site = 'Stockholm'\n")
    elif what == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    for args in (["list"], ["add", "--site", "Stockholm"], ["revoke", "1"]):
        line = _one_plain_line(cli("serve", "token", *args, "--db", f"sqlite:///{path}", timeout=30))
        assert str(path) in line and ("not an SQLite database" in line or "not a regular file" in line), line
    assert (path.read_bytes() if path.is_file() else None) == before  # nothing written into it


# --- 12. the collector's database is private -----------------------------------------------------


def test_the_database_and_its_wal_and_shm_are_created_0600(cli, tmp_path):
    import stat

    db_path = tmp_path / "collector.db"
    url = f"sqlite:///{db_path}"
    old = os.umask(0o022)  # the usual umask, under which SQLite made them 0644
    try:
        token = add_token(cli, url, "--site", "Stockholm")
        c = Collector(url)
        try:
            status, _, _ = c.request("POST", "/api/v1/results", docs.body(docs.document()), token)
            assert status == 201
            files = [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm")]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}  # while serving: all three exist
        finally:
            c.kill()
    finally:
        os.umask(old)
    assert modes == {"collector.db": 0o600, "collector.db-wal": 0o600, "collector.db-shm": 0o600}
    assert rows(url) == 1
