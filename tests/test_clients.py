"""Who a request comes from (``readiness.server.clients``): the client address and "this machine",
behind trusted reverse proxies or not. Real header objects, as the server parses them."""

from __future__ import annotations

import email.parser
import http.client
import io

import pytest

from readiness.server.clients import parse_proxies, resolve

NGINX = parse_proxies(["127.0.0.3", "10.9.0.0/16"])


def headers(*lines: str):
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return http.client.parse_headers(io.BytesIO(raw))


@pytest.mark.parametrize("peer, lines, proxies, client, local", [
    # no proxy configured: the peer, and a forwarding header (any, even empty) means not local
    ("127.0.0.1", [], (), "127.0.0.1", True),
    ("::1", [], (), "::1", True),
    ("::ffff:127.0.0.1", [], (), "127.0.0.1", True),
    ("127.0.0.1", ["X-Forwarded-For:"], (), "127.0.0.1", False),
    ("127.0.0.1", ["X-Forwarded-For: 127.0.0.1"], (), "127.0.0.1", False),
    ("127.0.0.1", ["Forwarded: for=127.0.0.1"], (), "127.0.0.1", False),
    ("203.0.113.7", ["X-Forwarded-For: 127.0.0.1"], (), "203.0.113.7", False),  # headers of untrusted peers ignored
    # from a trusted proxy: the right-most hop it did not add itself
    ("127.0.0.3", ["X-Forwarded-For: 127.0.0.1, 203.0.113.7"], NGINX, "203.0.113.7", False),
    ("127.0.0.3", ["X-Forwarded-For: 203.0.113.7, 10.9.1.1"], NGINX, "203.0.113.7", False),
    ("127.0.0.3", ["X-Forwarded-For: 127.0.0.1"], NGINX, "127.0.0.1", True),
    ("127.0.0.3", ["X-Forwarded-For: [::1]:4711"], NGINX, "::1", True),
    ("127.0.0.3", ["Forwarded: for=198.51.100.1, for=\"[2001:db8::17]:4711\";proto=https"], NGINX, "2001:db8::17", False),
    ("127.0.0.3", ["Forwarded: for=127.0.0.1;proto=https"], NGINX, "127.0.0.1", True),
    ("127.0.0.3", ["X-Forwarded-For: 198.51.100.1", "X-Forwarded-For: 127.0.0.1"], NGINX, "127.0.0.1", True),
    # a trusted proxy that names nobody (or nonsense) is not this machine, whatever its own address
    ("127.0.0.3", [], NGINX, "127.0.0.3", False),
    ("127.0.0.3", ["X-Forwarded-For:"], NGINX, "127.0.0.3", False),
    ("127.0.0.3", ["X-Forwarded-For: unknown"], NGINX, "127.0.0.3", False),
    ("127.0.0.3", ["Forwarded: for=_hidden"], NGINX, "127.0.0.3", False),
    ("127.0.0.3", ["X-Forwarded-For: 127.0.0.3"], NGINX, "127.0.0.3", False),
    # the two headers naming different clients: one is the client's own; not local
    ("127.0.0.3", ["X-Forwarded-For: 127.0.0.1", "Forwarded: for=203.0.113.7"], NGINX, "127.0.0.1", False),
])
def test_the_client_and_this_machine(peer, lines, proxies, client, local):
    who = resolve(peer, headers(*lines), proxies)
    assert (who.address, who.local) == (client, local)
    assert who.proxied == (peer == "127.0.0.3" and bool(proxies))


def test_a_trusted_proxy_is_an_address_or_a_network():
    assert [str(n) for n in parse_proxies(["127.0.0.2", "10.0.0.0/8", "fd00::/8", "10.1.2.3/24"])] == [
        "127.0.0.2/32", "10.0.0.0/8", "fd00::/8", "10.1.2.0/24"]
    with pytest.raises(ValueError, match="'nginx' is not an IP address"):
        parse_proxies(["nginx"])


def test_a_long_header_is_read_only_at_its_end():
    many = ", ".join(f"198.51.100.{i % 250}" for i in range(3000)) + ", 203.0.113.9"
    assert resolve("127.0.0.3", headers(f"X-Forwarded-For: {many}"), NGINX).address == "203.0.113.9"


def test_a_trusted_proxys_connections_are_capped_by_the_total_only(tmp_path):
    """A proxy carries many clients: its connections count against the total, not against one
    address's eighth; any other address keeps its eighth. A real ``readiness serve``, sockets
    bound to two loopback addresses."""
    import re
    import socket
    import subprocess

    from netns import stop, wait_line
    from test_collector_serve import readiness_cmd

    p = subprocess.Popen(readiness_cmd("serve", "--host", "127.0.0.1", "--http-port", "0", "--stun-port", "0",
                                       "--max-connections", "16", "--trusted-proxy", "127.0.0.2",
                                       "--results-dir", str(tmp_path)),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    held = []
    try:
        port = int(re.search(r"://127\.0\.0\.1:(\d+)", wait_line(p, "listening on", timeout=120)).group(1))

        def statuses(source: str, n: int) -> list[int]:
            socks = []
            for _ in range(n):
                s = socket.socket()
                s.bind((source, 0))
                s.settimeout(20)
                s.connect(("127.0.0.1", port))
                socks.append(s)
            held.extend(socks)
            out = []
            for s in socks:
                try:
                    s.sendall(b"GET /__info HTTP/1.1\r\nHost: x\r\n\r\n")
                except OSError:
                    pass  # refused and closed already: its answer is waiting to be read
                out.append(int(s.recv(64).split()[1]))
            return out

        assert statuses("127.0.0.2", 6) == [200] * 6  # 6 > 16 / 8: the proxy is not one client
        assert statuses("127.0.0.3", 4) == [200, 200, 503, 503]  # an ordinary address: its eighth
    finally:
        for s in held:
            s.close()
        stop(p)
