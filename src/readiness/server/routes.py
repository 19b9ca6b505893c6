"""The route table: what the speed test, the collector and the self-test page plug into the
server (``server.http``). A handler gets a :class:`Request` whose :class:`Body` reader is
already bounded in size, time and rate, and returns a :class:`Response`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

MIN_PROGRESS_BYTES = 1024  # a body must bring at least this much per idle timeout (see Body.chunks)
# ...and at least MIN_BODY_RATE averaged over each BODY_WINDOW_S: a 1 Mbit/s uplink split over the
# agent's 4 streams gives each ~31 kB/s; a trickle of 200 B/s per connection is 20 times too slow
MIN_BODY_RATE = 4096  # bytes per second
BODY_WINDOW_S = 5.0
DEFAULT_MAX_BODY = 1_000_000  # a route's request body limit unless it says otherwise


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

    def __init__(self, conn: Any, length: int) -> None:  # conn: the connection handler (server.http)
        self._conn = conn
        self.length = length
        self.received = 0

    @property
    def complete(self) -> bool:
        return self.received >= self.length

    def chunks(self, size: int = 256 * 1024) -> Iterator[bytes]:
        """The body piece by piece as it arrives (at most ``size`` bytes each).

        A trickle counts as silence: less than ``MIN_PROGRESS_BYTES`` in an idle timeout's time
        ends the read, as nothing at all would, and so does less than ``MIN_BODY_RATE`` averaged
        over a ``BODY_WINDOW_S`` window, so a byte now and then cannot hold a slot.
        """
        idle = self._conn.server.limits["idle_timeout_s"]
        if self.received < self.length:
            try:
                self._conn.continue_if_expected()
            except OSError:  # a timeout too
                raise BodyError("client closed") from None
        window_start = rate_start = time.monotonic()
        window_bytes = rate_bytes = 0
        while self.received < self.length:
            cut = self._conn.cut_reason()
            if cut:
                raise BodyError(cut)
            try:
                data = self._conn.rfile.read1(min(size, self.length - self.received))
            except TimeoutError:
                raise BodyError(self._conn.cut_reason() or "cut: client silent") from None
            except (OSError, ValueError):
                raise BodyError(self._conn.cut_reason() or "client closed") from None
            if not data:
                raise BodyError(self._conn.cut_reason() or "client closed")
            self.received += len(data)
            self._conn.progress(len(data))
            window_bytes += len(data)
            rate_bytes += len(data)
            now = time.monotonic()
            if now - window_start >= idle:
                if window_bytes < MIN_PROGRESS_BYTES:
                    raise BodyError("cut: too slow")
                window_start, window_bytes = now, 0
            if now - rate_start >= BODY_WINDOW_S and self.received < self.length:
                if rate_bytes < MIN_BODY_RATE * (now - rate_start):
                    raise BodyError("cut: too slow")
                rate_start, rate_bytes = now, 0
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
    server: Any  # the server.http.Server the request came to (its limits, its events)
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
