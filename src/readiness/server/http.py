"""A small bounded HTTP/1.1 server framework: what ``readiness serve``'s endpoints plug into.

Sits under the speed-test endpoints (``server.measure``), the collector and the self-test page:
each brings a route table (``server.routes``: a handler gets a ``Request`` whose body reader is
already bounded in size and time, and returns a ``Response``); who gets a slot when the server is
full is ``server.fairness``'; which address a request comes from, ``server.clients``'.

Bounded so a client cannot stop it: every read and write of a socket has a deadline (the
headers of a request must arrive within the idle timeout, and within ``MAX_HEADER_S`` of their
first byte; a body must keep up ``MIN_BODY_RATE``; a request runs at most ``max_request_s``),
open connections and transfers are capped in total and per client network (:func:`client_key`),
request framing follows RFC 9112 (a bad, repeated or ambiguous Content-Length is refused with
400 and the connection closed). Refused and dropped connections are reported to the server's
``events`` (one log line each by default).

Fair shares: when every connection (or transfer slot) is taken, a newcomer does not wait while
its own network has an idle keep-alive connection or another network holds more: that idle
connection, else the bigger holder's connection still waiting for its request headers (the one
trickling them longest first) or its slowest transfer, is closed and the slot goes to the
newcomer. So a few networks, however many addresses each, cannot lock out the rest.
"""

from __future__ import annotations

import io
import math
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from readiness.server.clients import Network, is_trusted, resolve
from readiness.server.fairness import Hold, Slots
from readiness.server.routes import Body, BodyError, Request, Response, Route

DEFAULT_LIMITS: dict[str, float] = {
    "max_bytes": 256 * 1024 * 1024,  # per request, either direction
    "max_transfers": 16,  # concurrent /__down + /__up (a client network gets at most half)
    "idle_timeout_s": 10.0,  # a socket silent this long is dropped; a request's headers must arrive in this time
    "max_request_s": 30.0,  # no single request (body read, handler, response) runs longer
    "max_connections": 256,  # open connections at once (a client network gets at most an eighth)
}
MAX_HEADER_BYTES = 128 * 1024  # request line + headers (the stdlib allows 100 lines of 64 kB each)
MAX_HEADER_S = 5.0  # from a request's first byte to its last header line (a real client sends them at once)
_LENGTH = re.compile(r"[0-9]{1,18}")  # RFC 9112 Content-Length = 1*DIGIT (ASCII only)


LOG_LINE_MAX = 500  # characters of one log line: an exception may carry a whole request body


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if len(message) > LOG_LINE_MAX:
        message = message[:LOG_LINE_MAX - 1] + "…"
    # the log is text: what a client sent that is not (an unpaired surrogate) shown escaped
    print(f"{stamp} {message.encode('utf-8', 'backslashreplace').decode('utf-8')}", file=sys.stderr, flush=True)


# --- the server ------------------------------------------------------------------------------


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
        self.transfers = Slots(int(limits["max_transfers"]), max(1, int(limits["max_transfers"]) // 2))
        self.connections = Slots(int(limits["max_connections"]), max(1, int(limits["max_connections"]) // 8))
        self._holds: dict[Any, Hold] = {}  # connection socket -> its slot
        self.stopping = threading.Event()
        self.events = events if events is not None else Refusals()
        self.trusted_proxies = trusted_proxies  # reverse proxies whose forwarding headers count

    def process_request(self, request, client_address) -> None:
        # runs in the accepting thread: refuse at once, never block. Before any header is read
        # the TCP peer is all there is: a reverse proxy's connections count as the proxy's.
        hold = Hold(client_address[0], request)
        got = self.connections.take(hold, "dropped: waiting connection closed to make room (server full)",
                                    capped=not is_trusted(client_address[0], self.trusted_proxies))
        if got is False:
            self.events.refused(client_address[0], "refused: too many connections")
            try:
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        if isinstance(got, Hold):
            self.events.refused(got.ip, got.cut or "dropped")
        self._holds[request] = hold
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._holds.pop(request, None)
            self.connections.give(hold)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            hold = self._holds.pop(request, None)
            if hold is not None:
                self.connections.give(hold)

    def handle_error(self, request, client_address) -> None:
        # a client that hangs up mid-request (every speed test does when it has seen enough)
        # is normal here, not a traceback
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            log(f"{client_address[0]} request failed: {exc!r}")


class _DeadlineSocket(io.RawIOBase):
    """The connection's reading end: each receive waits at most the idle timeout and never past
    ``deadline``, so however the bytes trickle in, a read is over in bounded time. Once a
    request's first byte is in, the rest of its headers have ``MAX_HEADER_S`` at most."""

    def __init__(self, sock: socket.socket, idle_s: float, hold: Hold | None = None) -> None:
        super().__init__()
        self.sock, self.idle_s, self.hold = sock, idle_s, hold
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
            if n and self.hold is not None and self.hold.state == "waiting":
                self.hold.set("headers")
                self.deadline = min(self.deadline, time.monotonic() + MAX_HEADER_S)
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
        self._hold = self.server._holds.get(self.request)
        self._transfer: Hold | None = None
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if self.server.ssl_context is not None:
            self.connection = self._tls_handshake(self.connection)
        self._raw = _DeadlineSocket(self.connection, self.server.limits["idle_timeout_s"], self._hold)
        self.rfile = io.BufferedReader(self._raw, 64 * 1024)
        self.wfile = _Writer(self.connection)
        self._deadline = math.inf

    def _tls_handshake(self, sock: socket.socket) -> socket.socket:
        """TLS set up in this connection's thread (never in accept(), where one silent client
        would stop the listener), within the idle timeout however the handshake trickles."""
        import select
        import ssl

        tls = self.server.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        if self._hold is not None:
            self._hold.sock = tls  # the plain socket gave its descriptor to the TLS one
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
        if self._hold is not None:
            self._hold.set("waiting")
        super().handle_one_request()  # a TimeoutError there is logged through log_error and closes

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # refusals go to self.server.events; the speed test logs one line per test

    def log_error(self, format: str, *args) -> None:  # noqa: A002
        if args and "timed out" in format:
            self.server.events.refused(self.client_address[0], "dropped: request not received in time")

    def cut_reason(self) -> str | None:
        if self.server.stopping.is_set():
            return "cut: server stopping"
        if self._transfer is not None and self._transfer.cut:
            return self._transfer.cut
        if time.monotonic() >= self._deadline:
            return "cut: too long"
        return None

    def progress(self, nbytes: int) -> None:
        """Bytes of a request's body or answer moved (what the slowest transfer is judged by)."""
        if self._transfer is not None:
            self._transfer.moved += nbytes

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
                self.progress(len(piece))
            if length is not None and sent < length:
                self.close_connection = True  # the client must not take what follows as a body
        finally:
            if streamed and hasattr(body, "close"):
                body.close()

    def parse_request(self) -> bool:
        self._expects_continue = False
        ok = super().parse_request()
        self._raw.header_left = None  # the headers are in; what follows is a body, bounded by its route
        if self._hold is not None:
            self._hold.set("busy")
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
        ip = who.address  # the forwarded client behind a trusted proxy: its network holds the slot
        if route.transfer:
            hold = Hold(ip, self.connection, "transfer")
            got = self.server.transfers.take(hold, "cut: slot given to another network (transfers full)")
            if got is False:
                self.server.events.refused(ip, f"refused: {int(self.server.limits['max_transfers'])} transfers already running")
                self._refuse(503, "busy", {"Retry-After": "5"})
                return
            if isinstance(got, Hold):
                self.server.events.refused(got.ip, got.cut or "cut")
            self._transfer = hold
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
            if self._transfer is not None:
                self.server.transfers.give(self._transfer)
                self._transfer = None

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
