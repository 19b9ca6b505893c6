"""The collector's HTTP side: plain handlers (``Request`` -> ``Response``), no HTTP loop of their own.

``readiness.server`` finds them through ``Collector.routes()`` and hands each a request whose
body it has already read within the route's limit. Routes:

    POST /api/v1/results   one result document; ``Authorization: Bearer <upload token>``
    GET  /fleet            the live fleet report (HTML; ``?lang=sv``)
    GET  /api/v1/fleet     the fleet figures (JSON)
    GET  /runs/<run id>    one run's report (HTML; ``?lang=sv``)
    GET  /metrics          Prometheus text: per site, rooms/computers by state, newest result age

Reading is allowed from this machine itself (loopback, and not forwarded by a proxy), with a
read token, or from anywhere when the server was started with ``--public-read``. Upload needs a
site's upload token, and a token submits results for its own site only.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .ingest import MAX_BODY_BYTES, Refused, ingest
from .store import Store, Unavailable

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# The pages are self-contained: no script, styles inline, pictures as data: URLs only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # as received; look-ups are case-insensitive in http.server's Message
    client: str
    body: bytes = b""

    def param(self, name: str, default: str = "") -> str:
        return (self.query.get(name) or [default])[0]


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Route:
    method: str
    path: str  # exact, or a prefix when it ends with "/"
    handler: Callable[[Request], Response]
    max_body: int = 0

    def matches(self, method: str, path: str) -> bool:
        if method != self.method:
            return False
        return path.startswith(self.path) if self.path.endswith("/") else path == self.path


def reply(status: int, body: dict[str, Any], **headers: str) -> Response:
    return Response(status, json.dumps(body, ensure_ascii=False).encode("utf-8"), JSON_TYPE, dict(headers))


def refuse(status: int, code: str, reason: str, **headers: str) -> Response:
    return reply(status, {"error": code, "reason": reason}, **headers)


def html(text: str) -> Response:
    return Response(200, text.encode("utf-8"), HTML_TYPE,
                    {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


def _bearer(req: Request) -> str | None:
    value = req.headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _local(req: Request) -> bool:
    """From this machine and not passed on by a proxy (a proxy on the same box would otherwise
    open the read side to everyone it serves)."""
    if req.headers.get("X-Forwarded-For") or req.headers.get("Forwarded"):
        return False
    try:
        addr = ipaddress.ip_address(req.client.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


class Counters:
    """Uploads answered, by outcome (a fixed set: bounded cardinality), for /metrics."""

    OUTCOMES = ("new", "already", "refused", "unauthorized", "unavailable")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(self.OUTCOMES, 0)

    def add(self, outcome: str) -> None:
        with self.lock:
            self.counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


class Collector:
    """The collector's handlers over one ``Store``."""

    def __init__(self, store: Store, public_read: bool = False, max_body: int = MAX_BODY_BYTES,
                 log: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.public_read = public_read
        self.max_body = max_body
        self.counters = Counters()
        self.log = log or (lambda _m: None)
        self.started = time.time()

    def routes(self) -> list[Route]:
        return [Route("POST", "/api/v1/results", self.post_result, self.max_body),
                Route("GET", "/fleet", self.get_fleet), Route("GET", "/api/v1/fleet", self.get_fleet_json),
                Route("GET", "/runs/", self.get_run), Route("GET", "/metrics", self.get_metrics)]

    # --- upload ----------------------------------------------------------------------------

    def post_result(self, req: Request) -> Response:
        secret = _bearer(req)
        if secret is None:
            self.counters.add("unauthorized")
            return refuse(401, "no_token", "an upload token is required (Authorization: Bearer TOKEN)",
                          **{"WWW-Authenticate": "Bearer"})
        try:
            token = self.store.lookup_token(secret)
            if token is None or token.kind != "upload":
                self.counters.add("unauthorized")
                return refuse(401, "bad_token", "this is not a valid upload token", **{"WWW-Authenticate": "Bearer"})
            if token.revoked is not None:
                self.counters.add("unauthorized")
                return refuse(401, "revoked_token", "this upload token was revoked; ask IT for a new one",
                              **{"WWW-Authenticate": "Bearer"})
            outcome = ingest(self.store, req.body, token.site)
        except Refused as exc:
            self.counters.add("refused")
            self.log(f"{req.client} upload refused ({exc.status} {exc.code}): {exc.reason}")
            return refuse(exc.status, exc.code, exc.reason)
        except Unavailable as exc:
            self.counters.add("unavailable")
            self.log(f"{req.client} upload not stored: {exc}")
            return refuse(503, "database_unavailable", "the database is not reachable now; keep the result and retry",
                          **{"Retry-After": "10"})
        self.counters.add(outcome["stored"])
        return reply(200 if outcome["stored"] == "already" else 201, outcome)

    # --- read side -------------------------------------------------------------------------

    def _read_allowed(self, req: Request) -> Response | None:
        """None when this request may read; else the refusal."""
        if self.public_read or _local(req):
            return None
        secret = _bearer(req)
        if secret is not None:
            try:
                token = self.store.lookup_token(secret)
            except Unavailable:
                return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
            if token is not None and token.kind == "read" and token.revoked is None:
                return None
        return refuse(401, "read_token_required",
                      "reading needs a read token (Authorization: Bearer TOKEN) from another machine",
                      **{"WWW-Authenticate": "Bearer"})

    def _reading(self, req: Request, make: Callable[[], Response]) -> Response:
        denied = self._read_allowed(req)
        if denied is not None:
            return denied
        try:
            return make()
        except Unavailable as exc:
            self.log(f"{req.client} read failed: {exc}")
            return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})

    def get_run(self, req: Request) -> Response:
        run_id = req.path[len("/runs/"):]
        if not RUN_ID.match(run_id):
            return refuse(404, "not_found", "no such run")

        def make() -> Response:
            from ..judge import Judgement
            from ..report import render_report
            from ..result import Result

            doc = self.store.document(run_id)
            if doc is None:
                return refuse(404, "not_found", "no such run")
            result = Result.from_dict(doc, origin=f"run {run_id}")
            if not result.judgement:
                return refuse(404, "not_judged", "this run holds no judgement")
            return html(render_report(result, Judgement.from_dict(result.judgement), _lang(req)))

        return self._reading(req, make)

    def get_fleet(self, req: Request) -> Response:
        from .fleetdb import fleet_html

        return self._reading(req, lambda: html(fleet_html(self.store, _lang(req))))

    def get_fleet_json(self, req: Request) -> Response:
        from .fleetdb import fleet_figures

        return self._reading(req, lambda: reply(200, fleet_figures(self.store, _lang(req))[1]))

    def get_metrics(self, req: Request) -> Response:
        from .metrics import CONTENT_TYPE, exposition

        return self._reading(req, lambda: Response(200, exposition(self.store, self.counters.snapshot()), CONTENT_TYPE))


def _lang(req: Request) -> str:
    from ..report import LANGS

    lang = req.param("lang", "en")
    return lang if lang in LANGS else "en"
