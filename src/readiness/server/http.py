"""A small bounded HTTP/1.1 server framework: what ``readiness serve``'s endpoints plug into.

Sits under the speed-test endpoints (``server.measure``), the collector and the self-test page:
each brings a route table (:class:`Route`); a handler gets a :class:`Request` whose body reader
is already bounded in size and time, and returns a :class:`Response`.

Bounded so a client cannot stop it: every read and write of a socket has a deadline (the
headers of a request must arrive within the idle timeout; a request runs at most
``max_request_s``), open connections and transfers are capped in total and per client address,
request framing follows RFC 9112 (a bad, repeated or ambiguous Content-Length is refused with
400 and the connection closed). Refused and dropped connections are reported to the server's
``events`` (one log line each by default).
"""

from __future__ import annotations

import io
import json
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from readiness.server.clients import Network, is_trusted, resolve

DEFAULT_LIMITS: dict[str, float] = {
    "max_bytes": 256 * 1024 * 1024,  # per request, either direction
    "max_transfers": 16,  # concurrent /__down + /__up (a client gets at most half)
    "idle_timeout_s": 10.0,  # a socket silent this long is dropped; a request's headers must arrive in this time
    "max_request_s": 30.0,  # no single request (body read, handler, response) runs longer
    "max_connections": 256,  # open connections at once (a client address gets at most an eighth)
}
MAX_HEADER_BYTES = 128 * 1024  # request line + headers (the stdlib allows 100 lines of 64 kB each)
MIN_PROGRESS_BYTES = 1024  # a body must bring at least this much per idle timeout (see Body.chunks)
DEFAULT_MAX_BODY = 1_000_000  # a route's request body limit unless it says otherwise
_LENGTH = re.compile(r"[0-9]{1,18}")  # RFC 9112 Content-Length = 1*DIGIT (ASCII only)


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {message}", file=sys.stderr, flush=True)


# --- the route table: what other features plug into ----------------------------------------


class BodyError(Exception):
    """The request body could not be read in full: too slow, too long, cut or the client left.

    ``outcome`` is a short phrase for the log ("cut: too long", "client closed", ...). The
    server closes the connection without a response when a handler lets it escape.
    """

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Body:
    """A request body, readable only within the request's size and time bounds.

    ``length`` is the declared Content-Length, already checked against the route's
    ``max_body``. Every read waits at most the idle timeout and never past the request's
    deadline; a read that would has :class:`BodyError` raised instead.
    """

    def __init__(self, conn: "Handler", length: int) -> None:
        self._conn = conn
        self.length = length
        self.received = 0

    @property
    def complete(self) -> bool:
        return self.received >= self.length

    def chunks(self, size: int = 256 * 1024) -> Iterator[bytes]:
        """The body piece by piece as it arrives (at most ``size`` bytes each).

        A trickle counts as silence: less than ``MIN_PROGRESS_BYTES`` in an idle timeout's time
        ends the read, as nothing at all would, so a byte now and then cannot hold a slot.
        """
        idle = self._conn.server.limits["idle_timeout_s"]
        if self.received < self.length:
            try:
                self._conn.continue_if_expected()
            except OSError:  # a timeout too
                raise BodyError("client closed") from None
        window_start, window_bytes = time.monotonic(), 0
        while self.received < self.length:
            cut = self._conn.cut_reason()
            if cut:
                raise BodyError(cut)
            try:
                data = self._conn.rfile.read1(min(size, self.length - self.received))
            except TimeoutError:
                raise BodyError(self._conn.cut_reason() or "cut: client silent") from None
            except (OSError, ValueError):
                raise BodyError("client closed") from None
            if not data:
                raise BodyError("client closed")
            self.received += len(data)
            window_bytes += len(data)
            now = time.monotonic()
            if now - window_start >= idle:
                if window_bytes < MIN_PROGRESS_BYTES:
                    raise BodyError("cut: too slow")
                window_start, window_bytes = now, 0
            yield data

    def read(self) -> bytes:
        """The whole body (it is at most the route's ``max_body`` bytes)."""
        return b"".join(self.chunks())

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` when it is not JSON."""
        return json.loads(self.read())


@dataclass
class Request:
    """What a route handler gets. ``path`` excludes the query; ``query`` is parse_qs of it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message: .get(name), .get_all(name)
    client: str  # the client's IP address (behind a trusted proxy: the one it names, see server.clients)
    body: Body
    server: "Server"
    local: bool = False  # from this machine itself, not through a proxy that hides who (server.clients)
    peer: str = ""  # the TCP peer: the client, or the trusted proxy that forwarded the request

    @property
    def limits(self) -> dict[str, float]:
        return self.server.limits

    def cut_reason(self) -> str | None:
        """Why this request must stop now (server stopping, past its deadline), or None."""
        return self.body._conn.cut_reason()


@dataclass
class Response:
    """What a route handler returns. ``body`` is bytes, or an iterable of bytes with ``length``
    set (streamed; the server stops it at the request's deadline)."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    close: bool = False

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, json.dumps(obj, allow_nan=False).encode(), "application/json", dict(headers or {}))

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: dict[str, str] | None = None) -> "Response":
        return cls(status, text.encode("utf-8"), content_type, dict(headers or {}))


Handler = Callable[[Request], "Response | None"]


@dataclass(frozen=True)
class Route:
    """One endpoint. ``method`` is one method or a tuple of them; ``path`` matches exactly, or
    as a prefix when ``prefix`` is true. ``max_body`` bounds the request body (None: the
    server's ``max_bytes``); a longer Content-Length is refused with 413 before the handler
    runs. ``transfer`` routes take one of the server's transfer slots while they run.
    A handler returning None means: no response, close the connection."""

    method: str | tuple[str, ...]
    path: str
    handler: Handler
    max_body: int | None = DEFAULT_MAX_BODY
    prefix: bool = False
    transfer: bool = False

    def methods(self) -> tuple[str, ...]:
        return (self.method,) if isinstance(self.method, str) else tuple(self.method)

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


# --- the server ------------------------------------------------------------------------------


class _Counted:
    """Counts held in total and per client address, each with its own cap."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = total, per_client
        self.lock = threading.Lock()
        self.held = 0
        self.by_client: dict[str, int] = {}

    def take(self, ip: str, capped: bool = True) -> bool:
        """One more for ``ip``; ``capped`` False: only the total applies (a trusted proxy's
        connections carry many clients)."""
        with self.lock:
            mine = self.by_client.get(ip, 0)
            if self.held >= self.total or (capped and mine >= self.per_client):
                return False
            self.held += 1
            self.by_client[ip] = mine + 1
            return True

    def give(self, ip: str) -> None:
        with self.lock:
            self.held -= 1
            left = self.by_client.get(ip, 1) - 1
            if left > 0:
                self.by_client[ip] = left
            else:
                self.by_client.pop(ip, None)


class Refusals:
    """What the framework tells about connections it refused or dropped: one log line each. The
    speed-test endpoints pass their own (``readiness.server.measure.TestLog``), which folds these
    into the client's one line per test."""

    def refused(self, ip: str, why: str) -> None:
        log(f"{ip} {why}")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, handler, limits: dict, routes: Iterable[Route] = (), ssl_context: Any = None,
                 events: Any = None, trusted_proxies: tuple[Network, ...] = ()) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, handler)
        self.ssl_context = ssl_context
        self.limits = limits
        self.routes: list[Route] = list(routes)
        self.transfers = _Counted(int(limits["max_transfers"]), max(1, int(limits["max_transfers"]) // 2))
        self.connections = _Counted(int(limits["max_connections"]), max(1, int(limits["max_connections"]) // 8))
        self.stopping = threading.Event()
        self.events = events if events is not None else Refusals()
        self.trusted_proxies = trusted_proxies  # reverse proxies whose forwarding headers count

    def process_request(self, request, client_address) -> None:
        # runs in the accepting thread: refuse at once, never block
        if not self.connections.take(client_address[0], capped=not is_trusted(client_address[0], self.trusted_proxies)):
            self.events.refused(client_address[0], "refused: too many connections")
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.give(client_address[0])
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.give(client_address[0])

    def handle_error(self, request, client_address) -> None:
        # a client that hangs up mid-request (every speed test does when it has seen enough)
        # is normal here, not a traceback
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            log(f"{client_address[0]} request failed: {exc!r}")


class _DeadlineSocket(io.RawIOBase):
    """The connection's reading end: each receive waits at most the idle timeout and never past
    ``deadline``, so however the bytes trickle in, a read is over in bounded time."""

    def __init__(self, sock: socket.socket, idle_s: float) -> None:
        super().__init__()
        self.sock, self.idle_s = sock, idle_s
        self.deadline = math.inf
        self.header_left: int | None = None  # bytes a request's headers may still take, while they are read

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        if self.header_left is not None and self.header_left <= 0:
            raise ConnectionAbortedError("request headers too large")
        self.sock.settimeout(min(self.idle_s, left))
        n = self.sock.recv_into(buf)
        if self.header_left is not None:
            self.header_left -= n
        return n


class _Writer(io.RawIOBase):
    """The writing end: whole writes (sendall), bounded by the socket timeout set before each."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sock.sendall(data)
        return len(data)


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection per stream
    server_version = "readiness-serve"
    sys_version = ""  # no Python version in the Server header

    def setup(self) -> None:
        self.connection = self.request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if self.server.ssl_context is not None:
            self.connection = self._tls_handshake(self.connection)
        self._raw = _DeadlineSocket(self.connection, self.server.limits["idle_timeout_s"])
        self.rfile = io.BufferedReader(self._raw, 64 * 1024)
        self.wfile = _Writer(self.connection)
        self._deadline = math.inf

    def _tls_handshake(self, sock: socket.socket) -> socket.socket:
        """TLS set up in this connection's thread (never in accept(), where one silent client
        would stop the listener), within the idle timeout however the handshake trickles."""
        import select
        import ssl

        tls = self.server.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        tls.setblocking(False)
        deadline = time.monotonic() + self.server.limits["idle_timeout_s"]
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                wait = ([tls], [])
            except ssl.SSLWantWriteError:
                wait = ([], [tls])
            left = deadline - time.monotonic()
            if left <= 0 or not any(select.select(*wait, [], left)[:2]):
                self.server.events.refused(self.client_address[0], "dropped: TLS handshake not done in time")
                raise TimeoutError("TLS handshake not done in time")
        tls.setblocking(True)
        return tls

    def finish(self) -> None:
        try:
            self.wfile.close()
        except OSError:
            pass
        self.rfile.close()

    def handle_one_request(self) -> None:
        # the request line and headers must all arrive within the idle timeout, and be of a sane size
        self._raw.deadline = time.monotonic() + self.server.limits["idle_timeout_s"]
        self._raw.header_left = MAX_HEADER_BYTES
        super().handle_one_request()  # a TimeoutError there is logged through log_error and closes

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # refusals go to self.server.events; the speed test logs one line per test

    def log_error(self, format: str, *args) -> None:  # noqa: A002
        if args and "timed out" in format:
            self.server.events.refused(self.client_address[0], "dropped: request not received in time")

    def cut_reason(self) -> str | None:
        if self.server.stopping.is_set():
            return "cut: server stopping"
        if time.monotonic() >= self._deadline:
            return "cut: too long"
        return None

    def _send(self, data: bytes | memoryview) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        self.connection.settimeout(min(self.server.limits["idle_timeout_s"], left))
        self.wfile.write(data)

    def _refuse(self, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        self._deadline = time.monotonic() + self.server.limits["idle_timeout_s"]
        self._respond(Response.json({"error": message}, code, headers), close=True)

    def _respond(self, resp: Response, close: bool = False) -> None:
        body = resp.body
        streamed = not isinstance(body, (bytes, bytearray, memoryview))
        length = resp.length if streamed else len(body)
        close = close or resp.close or (streamed and length is None)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # headers go out with the first piece of the body
        head = b"".join(self._headers_buffer) + b"\r\n"
        self._headers_buffer = []
        try:
            if not streamed:
                self._send(head + bytes(body))
                return
            self._send(head)
            sent = 0
            for piece in body:
                self._send(piece)
                sent += len(piece)
            if length is not None and sent < length:
                self.close_connection = True  # the client must not take what follows as a body
        finally:
            if streamed and hasattr(body, "close"):
                body.close()

    def parse_request(self) -> bool:
        self._expects_continue = False
        ok = super().parse_request()
        self._raw.header_left = None  # the headers are in; what follows is a body, bounded by its route
        return ok

    def handle_expect_100(self) -> bool:
        """"Expect: 100-continue": the interim answer waits until the body is read (``Body``),
        after the route, the size and the handler's own checks (a token) have passed; a request
        refused before that is answered without inviting its body."""
        self._expects_continue = True
        return True

    def continue_if_expected(self) -> None:
        if getattr(self, "_expects_continue", False):
            self._expects_continue = False
            self._send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _frame(self) -> int | None:
        """The body's length by RFC 9112 section 6, or None after refusing the request."""
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if codings and lengths:
            self._refuse(400, "both Content-Length and Transfer-Encoding")
            return None
        if codings:
            self._refuse(411, "send the body with a Content-Length (no transfer coding is accepted)")
            return None
        if len(lengths) > 1:
            self._refuse(400, "more than one Content-Length")
            return None
        if not lengths:
            return 0 if self.command not in ("POST", "PUT", "PATCH") else -1
        value = lengths[0].strip(" \t")
        if not _LENGTH.fullmatch(value):
            self._refuse(400, "Content-Length must be a whole number of bytes")
            return None
        return int(value)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = self._frame()
        if length is None:
            return
        candidates = [r for r in self.server.routes if r.matches(url.path)]
        route = next((r for r in candidates if self.command in r.methods()), None)
        if route is None:
            if candidates:
                allow = ", ".join(sorted({m for r in candidates for m in r.methods()}))
                self._refuse(405, "method not allowed", {"Allow": allow})
            else:
                self._refuse(404, "not found")
            return
        if length < 0:
            self._refuse(411, "Content-Length required")
            return
        limit = self.server.limits["max_bytes"] if route.max_body is None else route.max_body
        if length > limit:  # said in the log: the handler (which would log it) never sees it
            self.server.events.refused(self.client_address[0], f"{self.command} {url.path[:100]!r} refused: 413, "
                                                               f"{length} bytes, at most {int(limit)}")
            self._refuse(413, f"at most {int(limit)} bytes per request")
            return
        who = resolve(self.client_address[0], self.headers, self.server.trusted_proxies)
        ip = who.address
        if route.transfer and not self.server.transfers.take(ip):
            self.server.events.refused(ip, f"refused: {int(self.server.limits['max_transfers'])} transfers already running")
            self._refuse(503, "busy", {"Retry-After": "5"})
            return
        self._deadline = time.monotonic() + self.server.limits["max_request_s"]
        self._raw.deadline = self._deadline
        body = Body(self, length)
        req = Request(self.command, url.path, parse_qs(url.query), self.headers, ip, body, self.server, who.local, who.peer)
        try:
            try:
                resp = route.handler(req)
            except BodyError:
                resp = None
            except Exception as exc:  # noqa: BLE001 - one broken handler must not take the server down
                log(f"{ip} {self.command} {url.path} failed: {exc!r}")
                resp = Response.json({"error": "internal error"}, 500)
                resp.close = True
            if resp is None:
                self.close_connection = True
                return
            if not body.complete:
                resp.close = True  # an unread body must not be read as the next request
            try:
                self._respond(resp)
            except (OSError, ValueError):
                self.close_connection = True
        finally:
            if route.transfer:
                self.server.transfers.give(ip)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch  # noqa: N815


def tls_context(cert_file: str, key_file: str | None = None) -> Any:
    """A server-side TLS context (TLS 1.2 or newer) with this certificate chain and key;
    raises OSError or ssl.SSLError (say which file) when they cannot be loaded."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def check_limits(lim: dict) -> None:
    for key, value in lim.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{key} must be a finite number above 0, not {value!r}")


def listen(host: str, port: int, routes: Iterable[Route], limits: dict, ssl_context: Any = None,
           events: Any = None, trusted_proxies: tuple[Network, ...] = ()) -> Server:
    """A bound server for ``routes`` (first match wins), not yet serving; raises OSError when the
    address cannot be had. ``limits`` are :data:`DEFAULT_LIMITS`, checked, with overrides;
    ``trusted_proxies``: reverse proxies whose forwarding headers name the client (``server.clients``)."""
    check_limits(limits)
    return Server((host, port), _Handler, limits, routes, ssl_context, events, trusted_proxies)
