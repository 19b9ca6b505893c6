"""The collector behind a real nginx (Debian's), configured by the example the repo ships
(contrib/nginx-readiness.conf), with TLS end to end: agents → nginx (HTTPS) → ``readiness serve
--db --tls-cert`` (HTTPS).

Two network namespaces (tests/netns.py): nginx and the collector in the "server" one, a remote
client in the "client" one (a real other address, 10.231.x.1, not a loopback alias). Proved:
who may read the fleet (/fleet, /runs, /api/v1/fleet, /metrics) through the proxy and around
it; a forwarding header counts only from the trusted proxy; the collector logs the client the
proxy names, not the proxy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import collector_docs as docs
from netns import Link, available, wait_line
from support import need, need_tool
from test_collector_serve import readiness_cmd

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "contrib" / "nginx-readiness.conf"
SERVE_PORT, PROXY_PORT, BARE_PORT = 8080, 8443, 8444  # in the server namespace: nothing else there
READ_PATHS = ("/fleet", "/api/v1/fleet", "/metrics")

# One request from inside a namespace; prints the status (retries while nginx starts).
_FETCH = r"""
import http.client, json, ssl, sys, time
url, method, path, headers, body, cafile, times = sys.argv[1:8]
host, port = url.split(":")
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False  # the test certificate names 127.0.0.1; the namespace's address differs
deadline = time.monotonic() + 20
for _ in range(int(times)):
    while True:
        try:
            conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
            conn.request(method, path, body=body.encode() or None, headers=json.loads(headers))
            resp = conn.getresponse()
            resp.read()
            conn.close()
            print(resp.status)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
"""


def _nginx_conf(prefix: Path, server_ip: str, cert: Path, key: Path) -> str:
    """The example with this test's addresses and files: the same server block twice, once as
    shipped and once without the X-Forwarded-For line (nginx's proxy_pass default, which names
    nobody), inside a main configuration of its own (no system file touched)."""
    block = EXAMPLE.read_text()
    swaps = [("listen 443 ssl;", f"listen {server_ip}:{PROXY_PORT} ssl; listen 127.0.0.1:{PROXY_PORT} ssl;"),
             ("/etc/ssl/certs/collector.example.pem", str(cert)),
             ("/etc/ssl/private/collector.example.key", str(key)),
             (f"proxy_pass https://127.0.0.1:{SERVE_PORT};", f"proxy_pass https://127.0.0.1:{SERVE_PORT};")]
    for old, new in swaps:
        assert block.count(old) == 1, f"the example no longer holds {old!r}"
        block = block.replace(old, new)
    bare = re.sub(r"\n\s*proxy_set_header X-Forwarded-For [^\n]*", "", block)
    assert bare != block
    bare = bare.replace(f"listen {server_ip}:{PROXY_PORT} ssl; listen 127.0.0.1:{PROXY_PORT} ssl;",
                        f"listen {server_ip}:{BARE_PORT} ssl;")
    return f"""
daemon off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{block}
{bare}
}}
"""


class Stack:
    """nginx and the collector in ``link``'s server namespace."""

    def __init__(self, link: Link, folder: Path) -> None:
        self.link, self.folder = link, folder
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        subprocess.run([need_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key),
                        "-out", str(self.cert)], check=True, capture_output=True, timeout=60)
        self.db = f"sqlite:///{folder / 'readiness.db'}"
        done = subprocess.run(readiness_cmd("serve", "token", "add", "--db", self.db, "--site", "Stockholm"),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        self.token = done.stdout.strip()
        self.serve = link.popen(link.server_ns, readiness_cmd(
            "serve", "--db", self.db, "--host", "127.0.0.1", "--http-port", str(SERVE_PORT), "--stun-port", "0",
            "--results-dir", str(folder / "selftest"), "--ingest-workers", "0", "--tls-cert", str(self.cert),
            "--tls-key", str(self.key), "--trusted-proxy", "127.0.0.2"))
        wait_line(self.serve, "listening on", timeout=120)
        prefix = folder / "nginx"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(_nginx_conf(prefix, link.server_ip, self.cert, self.key))
        self.nginx_log = prefix / "error.log"
        test = subprocess.run(["ip", "netns", "exec", link.server_ns, "nginx", "-t", "-c", str(conf), "-p", str(prefix)],
                              capture_output=True, text=True, timeout=30)
        assert test.returncode == 0, test.stderr
        self.nginx = link.popen(link.server_ns, ["nginx", "-c", str(conf), "-p", str(prefix)])

    def fetch(self, ns: str, where: str, method: str, path: str, headers: dict[str, str] | None = None,
              body: bytes = b"", times: int = 1) -> Any:
        """The status of the request (a list of them when sent ``times`` > 1 times)."""
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _FETCH, where, method, path,
                               json.dumps(headers or {}), body.decode(), str(self.cert), str(times)],
                              capture_output=True, text=True, timeout=60 + 5 * times)
        assert done.returncode == 0, done.stderr[-2000:] + self.nginx_log.read_text()[-2000:]
        codes = [int(line) for line in done.stdout.split()]
        return codes if times > 1 else codes[0]

    # where a request is sent from, and to
    def remote(self, path: str, port: int = PROXY_PORT, **kw) -> int:
        """From the other machine (the client namespace) through nginx."""
        return self.fetch(self.link.client_ns, f"{self.link.server_ip}:{port}", kw.pop("method", "GET"), path, **kw)

    def local_via_proxy(self, path: str, **kw) -> int:
        """From the collector's own machine, through nginx."""
        return self.fetch(self.link.server_ns, f"127.0.0.1:{PROXY_PORT}", kw.pop("method", "GET"), path, **kw)

    def direct(self, path: str, **kw) -> int:
        """From the collector's own machine, straight to the collector."""
        return self.fetch(self.link.server_ns, f"127.0.0.1:{SERVE_PORT}", kw.pop("method", "GET"), path, **kw)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    ok, why = available()
    need(ok, why)
    need_tool("nginx")
    with Link() as link:
        s = Stack(link, tmp_path_factory.mktemp("proxy"))
        doc = docs.document()
        assert s.direct("/api/v1/results", method="POST", body=docs.body(doc),
                        headers={"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"}) == 201
        s.run_path = f"/runs/{doc['run_id']}"
        yield s


def test_the_machine_itself_reads_directly_and_through_the_proxy(stack):
    for path in (*READ_PATHS, stack.run_path):
        assert stack.direct(path) == 200, path
        assert stack.local_via_proxy(path) == 200, path  # the proxy says its client is 127.0.0.1


def test_a_remote_client_through_the_proxy_cannot_read(stack):
    for path in (*READ_PATHS, stack.run_path):
        assert stack.remote(path) == 401, path
        # the client's own claim to be this machine is left of what nginx appends: not believed
        assert stack.remote(path, headers={"X-Forwarded-For": "127.0.0.1"}) == 401, path
        assert stack.remote(path, headers={"Forwarded": "for=127.0.0.1"}) == 401, path


def test_a_proxy_that_names_nobody_is_not_this_machine(stack):
    # nginx's proxy_pass default (no X-Forwarded-For), as HAProxy without forwardfor or stunnel:
    # before, the collector saw a loopback peer and let everyone the proxy serves read the fleet
    for path in (*READ_PATHS, stack.run_path):
        assert stack.remote(path, port=BARE_PORT) == 401, path


def test_forwarding_headers_from_an_untrusted_peer_are_not_local(stack):
    for path in (*READ_PATHS, stack.run_path):
        assert stack.direct(path, headers={"X-Forwarded-For": ""}) == 401, path
        assert stack.direct(path, headers={"X-Forwarded-For": "127.0.0.1"}) == 401, path


def test_the_collector_logs_the_client_the_proxy_names(stack):
    status = stack.remote("/api/v1/results", method="POST", body=b'{"kind": "nothing"}',
                          headers={"Authorization": f"Bearer {stack.token}", "Content-Type": "application/json"})
    assert status == 422  # the upload went through nginx to the collector, TLS both ways
    line = wait_line(stack.serve, "upload refused", timeout=30)
    assert line.split()[1] == stack.link.client_ip, line  # the remote client, not nginx's 127.0.0.2


def test_the_self_test_pages_limit_counts_the_client_the_proxy_names(stack):
    """One address's results per minute (the disk is finite) are the client's, not the proxy's:
    a remote client that used up its share through nginx does not use up the machine's own."""
    from readiness.selftest.web import RESULTS_PER_MINUTE
    from test_selftest import observations

    body = json.dumps(observations()).encode()
    headers = {"Content-Type": "application/json"}
    codes = stack.remote("/__selftest/result", method="POST", body=body, headers=headers, times=RESULTS_PER_MINUTE + 2)
    assert codes == [200] * RESULTS_PER_MINUTE + [429] * 2
    assert stack.local_via_proxy("/__selftest/result", method="POST", body=body, headers=headers) == 200
