"""Proxies and TLS inspection, with real components on loopback:

- tinyproxy (Debian package) as the organisation's forward proxy, with a password;
- a PAC file served over HTTP, read and evaluated by pypac;
- a TLS server whose certificate comes from a private CA made here with openssl: the CA plays
  an inspecting proxy's root that IT installed on its computers. "Installed in the OS trust
  store" is done the way OpenSSL-based Linux does it: SSL_CERT_FILE names a bundle that holds
  the system's roots plus this CA (truststore reads the same OpenSSL default paths).

The connectivity check runs through the CLI as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import Cli
from support import need_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A private root CA and a server certificate for 127.0.0.1 signed by it."""
    openssl = need_tool("openssl")
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/O=Myndigheten Inspektion/CN=Inspection Root CA",
        "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-out", "server.pem", "-extfile", "ext.cnf")
    import certifi

    (d / "os-store.pem").write_text(Path(certifi.where()).read_text() + (d / "ca.pem").read_text())
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key", "os_store": d / "os-store.pem"}


@pytest.fixture(scope="module")
def tls_server(pki):
    """A real TLS server on loopback that completes handshakes and closes."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    lsock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(3)
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield lsock.getsockname()[1]
    stop.set()
    t.join(2)
    lsock.close()


def start_tinyproxy(folder: Path, auth: bool):
    """tinyproxy on loopback (optionally asking for a password), logging every request."""
    binary = shutil.which("tinyproxy") or need_tool("/usr/bin/tinyproxy")
    port = free_port()
    (folder / "tinyproxy.conf").write_text(
        f"Port {port}\nListen 127.0.0.1\nTimeout 10\nAllow 127.0.0.1\nMaxClients 20\nLogLevel Info\n"
        f"LogFile \"{folder / 'tinyproxy.log'}\"\nPidFile \"{folder / 'tinyproxy.pid'}\"\n"
        + ("BasicAuth agent s3cret-Losen\n" if auth else ""))
    proc = subprocess.Popen([binary, "-d", "-c", str(folder / "tinyproxy.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"tinyproxy did not start: {proc.stderr.read().decode(errors='replace')}")
            time.sleep(0.1)
    creds = "agent:s3cret-Losen@" if auth else ""
    return proc, {"port": port, "log": folder / "tinyproxy.log", "url": f"http://{creds}127.0.0.1:{port}"}


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory):
    proc, info = start_tinyproxy(tmp_path_factory.mktemp("tinyproxy"), auth=True)
    yield info
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory):
    proc, info = start_tinyproxy(tmp_path_factory.mktemp("tinyproxy-open"), auth=False)
    yield info
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def pac_server():
    """Serves PAC files: /proxy.pac?port=N says PROXY 127.0.0.1:N for 127.0.0.1, DIRECT else."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            from urllib.parse import parse_qs, urlsplit

            q = parse_qs(urlsplit(self.path).query)
            target = q.get("port", ["0"])[0]
            body = ('function FindProxyForURL(url, host) {\n'
                    f'  if (shExpMatch(host, "127.0.0.1")) return "PROXY 127.0.0.1:{target}; DIRECT";\n'
                    '  return "DIRECT";\n}\n').encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ns-proxy-autoconfig")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/proxy.pac"
    srv.shutdown()
    srv.server_close()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and not k.startswith("READINESS_") and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env.update(extra)
    return env


def connectivity(tmp_path: Path, port: int, env: dict[str, str], *args: str) -> dict:
    svc = f'[{{name = "Möte", tls = ["127.0.0.1:{port}"]}}]'
    out = Cli(env=env, cwd=tmp_path)("run", "--check", "connectivity", "--set", f"connectivity.services={svc}",
                                     "--set", "connectivity.timeout_s=3", "--json", "--no-open", "-q",
                                     "-o", str(tmp_path), *args, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    assert "s3cret" not in out.stdout
    for f in tmp_path.glob("*.json"):
        assert "s3cret" not in f.read_text(encoding="utf-8")  # credentials are never recorded
    return json.loads(out.stdout)["checks"]["connectivity"]


def test_inspected_tls_through_the_proxy_is_reported(tmp_path, pki, tls_server, tinyproxy):
    env = clean_env(HTTPS_PROXY=tinyproxy["url"], SSL_CERT_FILE=str(pki["os_store"]))
    rec = connectivity(tmp_path, tls_server, env)
    tls = rec["details"]["services"][0]["tls"][f"127.0.0.1:{tls_server}"]
    assert tls["certificate"] == "intercepted" and tls["issuer"] == "Myndigheten Inspektion"
    assert tls["via"] == f"http://***@127.0.0.1:{tinyproxy['port']}" and tls["source"] == "environment"
    assert rec["metrics"]["tls_intercepted"]["value"] is True
    assert rec["metrics"]["proxy_detected"]["value"] is True
    assert {"code": "tls_intercepted", "args": {"service": "Möte", "endpoint": f"127.0.0.1:{tls_server}",
                                                 "issuer": "Myndigheten Inspektion"}} in rec["details"]["findings"]
    assert f"CONNECT 127.0.0.1:{tls_server}" in tinyproxy["log"].read_text(errors="replace")
    from readiness.render.report import finding_texts

    assert (f"TLS till Möte (127.0.0.1:{tls_server}) bryts upp: certifikatet är signerat av Myndigheten Inspektion, "
            "en rot som den här datorn litar på men som inte är publik (TLS-inspektion).") in finding_texts(rec["details"], "sv")


def test_without_the_root_installed_the_certificate_is_not_trusted(tmp_path, tls_server, tinyproxy):
    import certifi

    env = clean_env(HTTPS_PROXY=tinyproxy["url"], SSL_CERT_FILE=certifi.where())
    tls = connectivity(tmp_path, tls_server, env)["details"]["services"][0]["tls"][f"127.0.0.1:{tls_server}"]
    assert tls["certificate"] == "not trusted" and "ms" in tls


def test_a_wrong_proxy_password_is_a_refused_tunnel(tmp_path, pki, tls_server, tinyproxy):
    env = clean_env(HTTPS_PROXY=f"http://agent:wrong@127.0.0.1:{tinyproxy['port']}", SSL_CERT_FILE=str(pki["os_store"]))
    rec = connectivity(tmp_path, tls_server, env)
    assert rec["status"] == "error" and "wrong" not in json.dumps(rec)
    assert rec["error"].startswith(f"no meeting service could be reached through the proxy http://***@127.0.0.1:{tinyproxy['port']} "
                                   "(environment): TLS handshake failed (the proxy refused the tunnel (HTTP/1.0 40")  # tinyproxy says 401, others 407


def test_pac_file_names_the_proxy(tmp_path, pki, tls_server, open_proxy, pac_server):
    """The PAC file (fetched and run by pypac) sends 127.0.0.1 through the proxy."""
    pac = f"{pac_server}?port={open_proxy['port']}"
    env = clean_env(SSL_CERT_FILE=str(pki["os_store"]), READINESS_PAC_URL=pac)
    rec = connectivity(tmp_path, tls_server, env)
    tls = rec["details"]["services"][0]["tls"][f"127.0.0.1:{tls_server}"]
    recorded = pac.split("?")[0]  # no query is recorded (it may hold a token)
    assert tls["source"] == "pac" and tls["via"] == f"http://127.0.0.1:{open_proxy['port']}" and tls["pac_url"] == recorded
    assert tls["certificate"] == "intercepted"
    assert rec["details"]["proxies"]["pac_url"] == recorded
    assert f"CONNECT 127.0.0.1:{tls_server}" in open_proxy["log"].read_text(errors="replace")


def test_a_pac_file_that_cannot_be_fetched_means_direct_and_is_said(tmp_path, pki, tls_server):
    env = clean_env(SSL_CERT_FILE=str(pki["os_store"]), READINESS_PAC_URL=f"http://127.0.0.1:{free_port()}/none.pac")
    rec = connectivity(tmp_path, tls_server, env)
    assert rec["metrics"]["proxy_detected"]["value"] is False
    assert rec["details"]["proxies"]["pac_url"] is None and "no PAC file could be fetched" in rec["details"]["proxies"]["pac_error"]


def test_pac_direct_and_proxy_setting_direct(tmp_path, pki, tls_server, pac_server):
    env = clean_env(SSL_CERT_FILE=str(pki["os_store"]))
    pac_for_other_hosts = f"{pac_server}?port=1"
    rec = connectivity(tmp_path, tls_server, env, "--proxy", "direct", "--pac-url", pac_for_other_hosts)
    tls = rec["details"]["services"][0]["tls"][f"127.0.0.1:{tls_server}"]
    assert tls["certificate"] == "intercepted" and "via" not in tls  # direct: the --proxy setting wins
    assert rec["metrics"]["proxy_detected"]["value"] is False


def test_public_roots_see_no_interception(pki, tls_server, monkeypatch):
    """Where the public list itself holds the root (stood in for by our CA here: no public CA
    signs a loopback certificate), the chain is "trusted", not "intercepted"."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checks"))
    from readiness.measure import proxies
    from readiness.checks import connectivity as conn

    monkeypatch.setattr(proxies, "public_tls_context", lambda: ssl.create_default_context(cafile=str(pki["ca"])))
    res = conn._tls_handshakes(lambda: socket.create_connection(("127.0.0.1", tls_server), 3), "127.0.0.1", 3)
    assert res["certificate"] == "trusted" and res["ms"] > 0


def test_resolver_order_and_redaction():
    from readiness.measure.proxies import ProxyResolver, redact

    r = ProxyResolver(env={"HTTPS_PROXY": "http://u:p@proxy.corp:3128", "NO_PROXY": "intra.corp,.local"})
    assert r.route("https://teams.microsoft.com/").proxy == "http://u:p@proxy.corp:3128"
    assert r.route("https://wiki.intra.corp/").proxy is None and r.route("https://x.local/").proxy is None
    assert r.facts() == {"environment": {"https": "http://***@proxy.corp:3128", "no": "intra.corp,.local"}}
    assert ProxyResolver(proxy="direct", env={"HTTPS_PROXY": "http://p:1"}).route("https://a/").source == "setting"
    assert redact("http://user:pw@host:1/x?token=1") == "http://***@host:1/x"


def test_upload_path_goes_through_the_proxy_with_the_os_trust_store(pki, tinyproxy, monkeypatch):
    """proxies.urlopen, the one way the agent sends HTTP(S) out (uploads): a POST to a local
    HTTPS server signed by the private CA, through tinyproxy with its password."""
    from readiness.measure.proxies import ProxyResolver, urlopen

    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            got.append(self.rfile.read(int(self.headers["Content-Length"])))
            body = b'{"stored": true}'
            self.send_response(201)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(pki["os_store"]))
        url = f"https://127.0.0.1:{srv.server_address[1]}/api/v1/results"
        with urlopen(url, data=b'{"run": 1}', headers={"Content-Type": "application/json"},
                     resolver=ProxyResolver(proxy=tinyproxy["url"]), timeout_s=10) as r:
            assert r.status == 201 and json.loads(r.read()) == {"stored": True}
        assert got == [b'{"run": 1}']
        assert f"CONNECT 127.0.0.1:{srv.server_address[1]}" in tinyproxy["log"].read_text(errors="replace")
        monkeypatch.setenv("SSL_CERT_FILE", str(Path(__import__("certifi").where())))
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            urlopen(url, data=b"{}", resolver=ProxyResolver(proxy=tinyproxy["url"]), timeout_s=10)
    finally:
        srv.shutdown()
        srv.server_close()
