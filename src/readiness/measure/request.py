"""One HTTP request through the route the proxy settings give (``proxies.ProxyResolver``): a
direct connection or a CONNECT tunnel, TLS with the OS trust store, the body sent only after
the server's ``100 Continue`` when asked, no redirect followed, the answer read with limits on
its size and time. The upload path's one way out (``unattended.upload``)."""

from __future__ import annotations

import base64
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from readiness.measure.proxies import ProxyResolver, Route, with_scheme, open_tunnel, redact, tls_context

class ConnectFailed(OSError):
    """The server (or the proxy on the way) could not be reached: nothing was sent."""


@dataclass
class Answer:
    """A server's final answer to :func:`send`: status, headers (names in lower case), and at
    most ``answer_limit`` bytes of body."""

    status: int
    headers: dict[str, str]
    body: bytes
    invited: bool | None = None  # did "100 Continue" come in time (None: not asked)


class _Reader:
    """Buffered, bounded reads from a socket, with one deadline for the whole answer."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self.sock, self.buf, self.deadline = sock, b"", deadline
        self.eof = False

    def _more(self) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not come in time")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def head(self, limit: int) -> bytes:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise OSError("the answer's head is too long")
            if not self._more():
                raise ConnectionError("the connection was closed before an answer")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        return head

    def line(self, limit: int) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > limit or not self._more():
                raise OSError("a broken chunked answer")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def take(self, n: int) -> bytes:
        while len(self.buf) < n and self._more():
            pass
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})(?: |$)", lines[0])
    if not m:
        raise OSError(f"not an HTTP answer ({lines[0][:60]!r})")
    headers: dict[str, str] = {}
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(m.group(1)), headers


def _read_body(reader: _Reader, headers: dict[str, str], limit: int) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = b""
        while len(out) < limit:
            size = int(reader.line(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                break
            out += reader.take(size)
            reader.take(2)
        return out[:limit]
    length = headers.get("content-length", "")
    if length.isdigit():
        return reader.take(min(int(length), limit))
    while len(reader.buf) < limit and reader._more():
        pass
    return reader.buf[:limit]


def _connect(url: str, timeout_s: float, route: Route) -> tuple[Any, str]:
    """A connected (and for https, TLS-wrapped) socket for ``url``, and the request target."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        if route.proxy and https:
            sock = open_tunnel(route.proxy, host, port, timeout_s)
        elif route.proxy:
            p = urlsplit(with_scheme(route.proxy))
            if not p.hostname:
                raise OSError(f"proxy {redact(route.proxy)} has no host")
            sock = socket.create_connection((p.hostname, p.port or 8080), timeout=timeout_s)
            target = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path or "/", parts.query, ""))
        else:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        if https:
            try:
                sock = tls_context().wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
    except OSError as exc:
        raise ConnectFailed(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) from exc
    return sock, target


def send(url: str, body: bytes, headers: dict[str, str], timeout_s: float = 30.0,
         resolver: ProxyResolver | None = None, method: str = "POST", answer_limit: int = 65536,
         continue_wait_s: float = 3.0) -> Answer:
    """One HTTP(S) request to ``url`` through the proxy the resolver names, with the OS trust
    store; its final answer. Never follows a redirect (a 3xx is an answer like any other, so
    credentials in ``headers`` reach no other host). The body waits for the server's
    ``100 Continue`` (``continue_wait_s`` at most, then goes anyway, as RFC 9110 allows; 0: no
    asking), so a server that refuses the size or the credentials answers before any of it is
    sent; ``Answer.invited`` says whether the invitation came. Raises
    ConnectFailed when nothing could be sent, another OSError when the exchange broke."""
    parts = urlsplit(url)
    route = (resolver or ProxyResolver()).route(url)
    sock, target = _connect(url, timeout_s, route)
    host = parts.netloc.rpartition("@")[2]
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", "Connection: close"]
    asking = bool(body) and continue_wait_s > 0
    if asking:
        lines.append("Expect: 100-continue")
    if route.proxy and parts.scheme != "https":
        p = urlsplit(with_scheme(route.proxy))
        if p.username is not None:
            creds = base64.b64encode(f"{unquote(p.username)}:{unquote(p.password or '')}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {creds}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with sock:
        sock.settimeout(timeout_s)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        pending = bool(body)
        invited: bool | None = None
        reader = _Reader(sock, time.monotonic() + (continue_wait_s if asking else timeout_s))
        if asking:
            try:
                status, got = _parse_head(reader.head(16384))
            except TimeoutError:
                invited = False  # no word (a server or proxy that ignores Expect): the body goes now
            else:
                invited = True
                if status != 100:  # a final answer before the body: refused (size, token) or moved
                    reader.deadline = time.monotonic() + timeout_s
                    return Answer(status, got, _read_body(reader, got, answer_limit), invited)
        while True:
            if pending:
                pending = False
                try:
                    sock.settimeout(timeout_s)
                    sock.sendall(body)
                except OSError:  # the server may have answered and closed: read what it said
                    reader.deadline = min(reader.deadline, time.monotonic() + 2.0)
                    try:
                        status, got = _parse_head(reader.head(16384))
                    except OSError:
                        raise ConnectionError("the connection was cut while the result was sent") from None
                    return Answer(status, got, _read_body(reader, got, answer_limit), invited)
                reader.deadline = time.monotonic() + timeout_s
            status, got = _parse_head(reader.head(16384))
            if 100 <= status < 200:
                continue  # an interim answer (a late 100 Continue, 103): the final one follows
            return Answer(status, got, _read_body(reader, got, answer_limit), invited)
