"""The collector's HTTP side: handlers plugged into the site server's route table (``readiness.server.http``).

``Collector.routes()`` gives the server its routes; the server bounds each request (body size
by the route's ``max_body``, every read in time) before a handler runs. Routes:

    POST /api/v1/results   one result document; ``Authorization: Bearer <upload token>``
    GET  /fleet            the live fleet report (HTML; ``?lang=sv``)
    GET  /api/v1/fleet     the fleet figures (JSON)
    GET  /fleet.csv        the fleet's rows (CSV; each export is written to the audit log)
    GET  /runs/<run id>    one run's report (HTML; ``?lang=sv``)
    GET  /rooms/<site>/<room>, /hosts/<hostname>   a room's (a computer's) history (``collector.history``)
    GET  /metrics          Prometheus text: per site, rooms/computers by state, newest result age;
                           per room, its last-report age, not reporting, ready;
                           this process's ingest latency, queue depth, database errors, memory
    GET  /admin/audit      the audit log (HTML; admin, auditor, this machine)
    GET  /auth/login       sign in with OpenID Connect (with ``[sign_in]`` in the access file)
    GET  /auth/callback    where the provider sends the browser back
    POST /auth/logout      sign out (the session's CSRF token in the form)
    GET  /admin/links      partner share links of the sites one manages (admin, site lead; signed in)
    POST /admin/links      make or withdraw one (the session's CSRF token in the form)
    GET  /share/<secret>   a partner's share link: one site's rooms, verdicts and fixes (no host names, no addresses)
    GET  /healthz          200 while the process is up (for a load balancer; no token)
    GET  /readyz           200 when the database answers a query within 2 s, else 503 (no token)

Reading is allowed from this machine itself (``Request.local``: loopback, and not hidden behind a
proxy, see ``server.clients``), with a read token, or from anywhere when the server was started
with ``--public-read``. Upload needs a site's upload token, and a token submits results for its
own site only. The pages speak with the organisation's words (``judge.wording``), never an
upload's unmarked. Every upload is logged in one line: client, site (the token's), run id,
outcome (stored new or duplicate, refused with its status and code); never the token.

Who reads sees only the sites allowed (``collector.access.Caller``): a read token made with
``--site`` reads that site alone; the fleet is cut to those sites before any figure is computed,
and a run of another site is "no such run".
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any, Callable

from readiness.collector.access import LOCAL, PUBLIC, AccessConfig, Caller
from readiness.collector.accessroutes import AccessRoutes
from readiness.collector.fleetdb import FleetView
from readiness.collector.history import FleetChanges, RoomPages
from readiness.collector.replies import CSP, CSV_TYPE, HTML_TYPE, RUN_ID, bearer, html, lang_of, refuse, reply  # noqa: F401 - CSP: read here by tests
from readiness.collector.ingest import Checkers, MAX_BODY_BYTES, Refused, REVOKED_REASON, ingest
from readiness.collector.metrics import CONTENT_TYPE, Health, exposition
from readiness.collector.pages import audit_page, with_bar
from readiness.collector.signin import SignIn
from readiness.collector.engine import Tally, Unavailable
from readiness.collector.store import Store
from readiness.fleet.compliance import NOT_REPORTING_AFTER_S
from readiness.fleet.files import Why
from readiness.fleet.model import Skipped
from readiness.fleet.page import fleet_csv
from readiness.judge.verdicts import Judgement
from readiness.judge.wording import OwnWords
from readiness.render.report import render_report
from readiness.result import Result
from readiness.server.routes import BodyError, Request, Response, Route

# uploads answered, by outcome (a fixed set: bounded cardinality), for /metrics
OUTCOMES = ("new", "already", "refused", "unauthorized", "unavailable")


class Collector(AccessRoutes):
    """The collector's handlers over one ``Store``."""

    def __init__(self, store: Store, public_read: bool = False, max_body: int = MAX_BODY_BYTES,
                 log: Callable[[str], None] | None = None, workers: int = 0, words: Any = None,
                 access: AccessConfig | None = None, tls: bool = False,
                 not_reporting_after: float = NOT_REPORTING_AFTER_S) -> None:
        """``words``: the organisation's words for requirements (``judge.wording.OwnWords``, from
        the shipped profiles and ``serve --requirements``); None: every requirement's texts are
        shown marked as sent by the agent."""
        self.store = store
        self.access = access or AccessConfig()
        self.tls = tls
        self.signin = SignIn(store, self.access) if self.access.sign_in is not None else None
        self.org = ""  # the organisation's name, as the share page names it (``serve --org``)
        self.local_read = self.access.sign_in is None or self.access.sign_in.local_read
        self.checker = Checkers(workers, store.packs_documents) if workers > 0 else None
        self.public_read = public_read
        self.max_body = max_body
        self.counters = Tally(OUTCOMES)
        self.health = Health(store)
        self.words = words if words is not None else OwnWords(())
        # the latest uploads refused for a clock ahead: the fleet lists them among its skipped
        # results, so IT sees which computer's clock to set (this process's, since it started)
        self.skewed: deque[dict[str, Any]] = deque(maxlen=self.SKEWED_MAX)
        self.skewed_total = 0
        self._skewed_lock = threading.Lock()
        self.view = FleetView(store, words=self.words, notes=self._skew_notes, not_reporting_after=not_reporting_after)
        self.log = log or (lambda _m: None)
        self._ready_lock = threading.Lock()
        self._ready_answer: tuple[float | None, str | None] = (None, None)  # (when asked, why not ready)
        self._ready_logged: float | None = None
        self.started = time.time()
        self._tokens: dict[str, tuple[float, Any]] = {}  # secret -> (when looked up, Token)
        self._tokens_lock = threading.Lock()
        self.rooms = RoomPages(store, self._reading, lambda text, who: html(text, who=who), refuse, lang_of, self.words)
        self.changes = FleetChanges(store, log=self.log)
        self.alerts: Any = None  # ``collector.alerts.Alerts`` when the server has alert rules

    SKEWED_MAX = 100

    def _skew_notes(self) -> tuple[int, list[Any]]:
        """(how many were noted so far, the fleet's skipped entries for them)."""
        with self._skewed_lock:
            notes, total = list(self.skewed), self.skewed_total
        out = []
        for n in notes:
            who = " / ".join(x for x in (n.get("site"), n.get("room") or n.get("hostname")) if x)
            text = (f"upload refused: its start time {n['started']} is after its arrival ({n['received']}); that "
                    "computer's clock is ahead")
            out.append(Skipped(f"{who} (run {n['run_id']})", Why("clock_ahead_upload", text, started=n["started"],
                                                                  received=n["received"])))
        return total, out

    TOKEN_CACHE_S = 2.0
    TOKEN_CACHE_MAX = 4096

    def _token(self, secret: str) -> Any:
        """The stored upload token for this secret, or None: the gate before a body is checked.
        A token found is remembered for ``TOKEN_CACHE_S`` (each agent uploads with the same one:
        no query per upload, measured 0.5 ms each with 32 uploading at once); one not found is
        asked again each time, so a token just added works at once. A revoked token stops at
        once all the same: the storing transaction checks it again (``Store.store``)."""
        now = time.monotonic()
        with self._tokens_lock:
            hit = self._tokens.get(secret)
        if hit is not None and now - hit[0] < self.TOKEN_CACHE_S:
            return hit[1]
        token = self.store.lookup_token(secret)
        if token is not None:
            self._touch(token)
            with self._tokens_lock:
                if len(self._tokens) >= self.TOKEN_CACHE_MAX:
                    self._tokens.clear()
                self._tokens[secret] = (now, token)
        return token

    def _touch(self, token: Any) -> None:
        """Note the token's last use (``token list`` shows it); a database away loses only that."""
        try:
            self.store.touch_token(token)
        except Unavailable:
            pass

    def audit(self, caller: Caller, action: str, target: str = "", site: str = "", detail: str = "") -> None:
        """One line in the audit log; a database away is logged here instead (never a failed request)."""
        try:
            self.store.add_audit(caller.name, action, target, site, detail)
        except Unavailable as exc:
            self.log(f"audit: not written ({caller.name} {action} {target}): {exc}")

    def routes(self) -> list[Route]:
        read = ("GET", "HEAD")
        return [Route("POST", "/api/v1/results", self.post_result, max_body=self.max_body),
                Route(read, "/fleet", self.get_fleet, max_body=0), Route(read, "/api/v1/fleet", self.get_fleet_json, max_body=0),
                Route(read, "/fleet.csv", self.get_fleet_csv, max_body=0),
                Route(read, "/admin/audit", self.get_audit, max_body=0),
                Route("GET", "/auth/login", self.get_login, max_body=0),
                Route("GET", "/auth/callback", self.get_callback, max_body=0),
                Route("POST", "/auth/logout", self.post_logout, max_body=4096),
                Route(read, "/share/", self.get_share, max_body=0, prefix=True),
                Route(read, "/admin/links", self.get_links, max_body=0),
                Route("POST", "/admin/links", self.post_links, max_body=4096),
                Route(read, "/runs/", self.get_run, max_body=0, prefix=True), Route(read, "/metrics", self.get_metrics, max_body=0),
                Route(read, "/rooms/", self.rooms.get_room, max_body=0, prefix=True),
                Route(read, "/hosts/", self.rooms.get_host, max_body=0, prefix=True),
                Route(read, "/healthz", self.get_healthz, max_body=0), Route(read, "/readyz", self.get_readyz, max_body=0)]

    READY_TIMEOUT_S = 2.0

    def get_healthz(self, _req: Request) -> Response:
        """The process is up and answering (no database involved: a load balancer must not take
        every replica out because the one database is restarting)."""
        return reply(200, {"status": "ok"}, **{"Cache-Control": "no-store"})

    READY_CACHE_S = 1.0  # /readyz's answer is kept this long: anyone may ask, the database is asked once
    READY_LOG_EVERY_S = 60.0  # a database that stays away is logged once a minute, not per request

    def _ready(self) -> str | None:
        """None when the database answers, else why not; asked at most once per
        ``READY_CACHE_S`` (requests meanwhile wait for that one answer), a failure logged at
        most once per ``READY_LOG_EVERY_S``."""
        with self._ready_lock:
            at, why = self._ready_answer
            if at is not None and time.monotonic() - at < self.READY_CACHE_S:
                return why
            why = self.store.ping(self.READY_TIMEOUT_S)
            now = time.monotonic()
            self._ready_answer = (now, why)
            if why is not None and (self._ready_logged is None or now - self._ready_logged >= self.READY_LOG_EVERY_S):
                self._ready_logged = now
                self.log(f"readyz: database not reachable: {why}")
            return why

    def get_readyz(self, _req: Request) -> Response:
        """Ready to take uploads: the database answers ``SELECT 1`` within ``READY_TIMEOUT_S``
        (see :meth:`_ready`). The reason names no address or password (anyone may ask)."""
        if self._ready() is None:
            return reply(200, {"status": "ready"}, **{"Cache-Control": "no-store"})
        return reply(503, {"status": "not_ready", "reason": "the database is not reachable"},
                     **{"Cache-Control": "no-store", "Retry-After": "5"})

    def prune(self, keep: timedelta) -> None:
        """One pass of retention over the database (a database that is away is tried again
        at the next pass)."""
        try:
            n = self.store.prune(keep)
            if n:
                self.log(f"retention: pruned {n} results older than {keep.days} days")
            days = self.access.audit_keep_days
            if n := self.store.prune_audit(timedelta(days=days)):
                self.log(f"retention: pruned {n} audit log entries older than {days} days")
        except Unavailable as exc:
            self.log(f"retention: {exc}")

    # --- upload ----------------------------------------------------------------------------

    def _logged(self, req: Request, site: str | None, run_id: str | None, outcome: str) -> None:
        """One line per upload: who sent it, the site (the token's), the run id, the outcome.
        Never the token; the site through repr (no line breaks from a stored name)."""
        where = repr(site[:80]) if site is not None else "?"
        self.log(f"{req.client} upload: site {where}, run {run_id or '?'}: {outcome}")

    def post_result(self, req: Request) -> Response:
        start = time.perf_counter()
        try:
            return self._post_result(req)
        finally:
            self.health.latency.observe(time.perf_counter() - start)

    def _post_result(self, req: Request) -> Response:
        secret = bearer(req)
        if secret is None:
            self.counters.add("unauthorized")
            self._logged(req, None, None, "refused (401 no_token)")
            return refuse(401, "no_token", "an upload token is required (Authorization: Bearer TOKEN)",
                          **{"WWW-Authenticate": "Bearer"})
        site: str | None = None
        try:
            token = self._token(secret)
            if token is None or token.kind != "upload":
                self.counters.add("unauthorized")
                self._logged(req, None, None, "refused (401 bad_token)")
                return refuse(401, "bad_token", "this is not a valid upload token", **{"WWW-Authenticate": "Bearer"})
            site = token.site
            if token.revoked is not None:
                self.counters.add("unauthorized")
                self._logged(req, site, None, "refused (401 revoked_token)")
                return refuse(401, "revoked_token", REVOKED_REASON, **{"WWW-Authenticate": "Bearer"})
            outcome = ingest(self.store, req.body.read(), token.site, self.max_body, self.checker, secret)
        except BodyError as exc:
            self.counters.add("refused")
            self._logged(req, site, None, f"refused (408 body_incomplete: {exc.outcome})")
            resp = refuse(408, "body_incomplete", f"the result did not arrive in time or whole ({exc.outcome})")
            resp.close = True  # what is left of the body must not be read as the next request
            return resp
        except Refused as exc:
            run_id = exc.run_id or (exc.facts or {}).get("run_id")
            self._logged(req, site, run_id, f"refused ({exc.status} {exc.code}): {exc.reason[:200]!r}")
            if exc.code == "revoked_token":
                with self._tokens_lock:
                    self._tokens.pop(secret, None)
                self.counters.add("unauthorized")
                return refuse(exc.status, exc.code, exc.reason, **{"WWW-Authenticate": "Bearer"})
            self.counters.add("refused")
            if exc.code == "clock_ahead" and exc.facts:
                with self._skewed_lock:
                    self.skewed.append(dict(exc.facts))
                    self.skewed_total += 1
            return refuse(exc.status, exc.code, exc.reason)
        except Unavailable as exc:
            self.counters.add("unavailable")
            self._logged(req, site, None, f"not stored (503 database_unavailable): {exc}")
            return refuse(503, "database_unavailable", "the database is not reachable now; keep the result and retry",
                          **{"Retry-After": "10"})
        self.counters.add(outcome["stored"])
        if self.alerts is not None and outcome["stored"] == "new":
            self.alerts.noted()
        self._logged(req, site, outcome["run_id"], "stored (new)" if outcome["stored"] == "new" else "stored (duplicate)")
        return reply(200 if outcome["stored"] == "already" else 201, outcome)

    # --- read side -------------------------------------------------------------------------

    def caller(self, req: Request) -> Caller | Response:
        """Who may read, and which sites; else the refusal. Credentials given (a live read
        token) count first, so a site's token reads its site only even from this machine."""
        secret = bearer(req)
        if secret is not None:
            try:
                token = self.store.lookup_token(secret)
            except Unavailable:
                return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
            if token is not None and token.kind == "read" and token.revoked is None:
                self._touch(token)
                return Caller(f"read token {token.id}", "token", frozenset({token.site}) if token.site else None)
        if self.signin is not None:
            try:
                person = self.signin.caller(req.headers.get("Cookie"))
            except Unavailable:
                return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
            if person is not None:
                return person
        if self.public_read:
            return PUBLIC
        if self.local_read and req.local:
            return LOCAL
        return refuse(401, "read_token_required",
                      "reading needs a read token (Authorization: Bearer TOKEN) from another machine",
                      **{"WWW-Authenticate": "Bearer"})

    def _reading(self, req: Request, make: Callable[[Caller], Response], page: bool = False) -> Response:
        who = self.caller(req)
        if isinstance(who, Response):
            if page and self.signin is not None and who.status == 401:  # a person: to the sign-in
                return Response(302, b"", HTML_TYPE, {"Location": self.signin.login_url(req.path), "Cache-Control": "no-store"})
            return who
        try:
            return make(who)
        except Unavailable as exc:
            self.log(f"{req.client} read failed: {exc}")
            return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})

    def get_run(self, req: Request) -> Response:
        run_id = req.path[len("/runs/"):]
        if not RUN_ID.match(run_id):
            return refuse(404, "not_found", "no such run")

        def make(who: Caller) -> Response:
            site = self.store.site_of(run_id)
            if site is None or not who.sees(site):  # another site's run is not there for this caller
                return refuse(404, "not_found", "no such run")
            doc = self.store.document(run_id)
            if doc is None:
                return refuse(404, "not_found", "no such run")
            result = Result.from_dict(doc, origin=f"run {run_id}")
            if not result.judgement:
                return refuse(404, "not_judged", "this run holds no judgement")
            judgement = Judgement.from_dict(result.judgement)
            for item in judgement.items:  # IT's words, or the agent's marked as such
                item.requirement = self.words.reword(item.requirement)[0]
            if isinstance(judgement.profile, dict):  # whom to call: the organisation's contact only
                judgement.profile = {**judgement.profile, "support": self.words.support(judgement.profile.get("name")) or None}
            lang = lang_of(req)
            return html(with_bar(render_report(result, judgement, lang), who, lang), who=who)

        return self._reading(req, make, page=True)

    def get_fleet(self, req: Request) -> Response:
        def make(who: Caller) -> Response:
            lang = lang_of(req)
            return html(with_bar(self.view.html(lang, who.sites, self.changes.texts(lang, who.sites)), who, lang), who=who)

        return self._reading(req, make, page=True)

    def get_fleet_json(self, req: Request) -> Response:
        def make(who: Caller) -> Response:
            return reply(200, self.view.get(lang_of(req), who.sites, rows=True)[1])

        return self._reading(req, make)

    def get_fleet_csv(self, req: Request) -> Response:
        def make(who: Caller) -> Response:
            fleet, _ = self.view.get("en", who.sites)
            self.audit(who, "export", "/fleet.csv", detail=f"{len(fleet.runs)} rows")
            return Response(200, fleet_csv(fleet), CSV_TYPE,
                            {"Content-Disposition": 'attachment; filename="fleet.csv"', "Cache-Control": "no-store"})

        return self._reading(req, make)

    def get_audit(self, req: Request) -> Response:
        def make(who: Caller) -> Response:
            if not who.audits:
                return refuse(403, "forbidden", "the audit log is for administrators and auditors")
            return html(audit_page(self.store.list_audit(), self.access.audit_keep_days, who, lang_of(req)), who=who)

        return self._reading(req, make, page=True)

    def get_metrics(self, req: Request) -> Response:
        def make(who: Caller) -> Response:
            return Response(200, exposition(self.view, self.counters.snapshot(), self.health, who.sites), CONTENT_TYPE)

        return self._reading(req, make)
