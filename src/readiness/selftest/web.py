"""The self-test's HTTP handlers, apart from any HTTP loop: a request in, a :class:`Response` out.

Routes (all under the server's own origin):
- ``GET /`` the page (``?lang=sv``, ``?profile=audio-call``, ``?site=…&room=…&label=…``, and
  ``&key=…``: a site link's token, which the page posts back with its result so the collector
  takes the result in; it is never stored, shown or logged);
- ``GET /__selftest/selftest.js`` and ``/__selftest/selftest.css``: its script and style;
- ``POST /__selftest/rtc``: a WebRTC offer in, the echoing peer's answer out (``peer.py``);
- ``GET /__selftest/ping``: an empty answer, for RTT over HTTP where WebRTC cannot connect;
- ``POST /__selftest/result``: the page's observations; checked (``submission.py``), turned
  into a result document (``document.py``), judged by the named profile, stored in the results
  folder with its report; answers where the report is;
- ``GET /__selftest/report/<run id>.html`` / ``.json`` (``?download=1`` as an attachment).

Every answer carries a strict Content-Security-Policy: the page may run only this server's
script and style and talk only to this server, so nothing a URL parameter or a posted field
holds can make it load anything from elsewhere. Every word shown comes from the catalogs;
everything inserted into HTML is escaped by Jinja's autoescaping.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from readiness.atomic import write_all_or_none
from readiness.i18n import languages
from readiness.i18n.format import catalog
from readiness.judge.requirements import load_profile, shipped_profiles
from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from readiness.render.report import check_title, profile_title, render_report
from readiness.result import load_result_bytes, result_stem
from readiness.selftest import submission
from readiness.selftest.document import agent_only, build_result
from readiness.selftest.outcome import keeper, page_outcome
from readiness.server.fairness import FairRate
from readiness.server.http import log
from readiness.server.routes import Request, Response, Route

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
            "media-src 'self' blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_COMMON = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Cross-Origin-Resource-Policy": "same-origin"}
_RUN_ID = re.compile(r"[0-9a-f]{32}")
# a stored result or report of this page: result_stem of a result whose host is "browser-<8 hex>"
_PAGE_FILE = re.compile(r"readiness-browser-[0-9a-f]{8}-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}\.(json|html)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASSETS = {"selftest.js": "text/javascript; charset=utf-8", "selftest.css": "text/css; charset=utf-8"}
PREFIX = "/__selftest/"
MAX_LABEL = 120
KEY = "key"  # the site link's query parameter and submission field (collector.links.LINK_PARAM)
# The disk is finite: stored results (about 75 kB with the report) per client network (an office
# behind one NAT address, an IPv6 /64, shares it) and from everyone together (see FairRate).
RESULTS_PER_MINUTE = 30  # per network
RESULTS_PER_MINUTE_ALL = 60
RESULTS_PER_HOUR_ALL = 600


def _resp(status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, body, ctype, _COMMON | (headers or {}))


def _json(status: int, body: dict[str, Any]) -> Response:
    return _resp(status, json.dumps(body).encode(), "application/json")


@lru_cache(maxsize=None)
def _asset(name: str) -> bytes:
    return resources.files("readiness.selftest").joinpath("static", name).read_bytes()


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    def load(name: str) -> str:
        return resources.files("readiness.selftest").joinpath("static", name).read_text(encoding="utf-8")

    return jinja2.Environment(loader=jinja2.FunctionLoader(load), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _catalog(lang: str) -> tuple[str, dict[str, str]]:

    lang = lang if lang in languages() else "en"
    return lang, catalog(lang)


def _first(query: dict[str, list[str]], key: str, default: str = "") -> str:
    values = query.get(key) or [default]
    return values[0]


class SelfTest:
    """The self-test feature of ``readiness serve``; ``results_dir`` is where results go.

    ``org`` names the organisation that runs the server; the page says it keeps the result
    ("the organisation that sent you this link" when unnamed).

    ``collect`` (optional) also hands each stored result document (its JSON bytes, its site
    label and the site link key the page was opened with, "" for none) to the collector's
    database. It returns None when collected, or a short reason code when the collector does not
    take the result (no or wrong site link); it may raise to say it could not. Either way the
    result stays in the folder alone, and the answer says ``"collected": false`` and
    ``"not_collected": REASON``.
    """

    def __init__(self, results_dir: Path, default_profile: str = "video-call",
                 collect: Callable[[bytes, str, str], str | None] | None = None, org: str = "") -> None:
        from readiness.selftest.peer import EchoPeers  # lazy: aiortc (server extra)

        self.collect = collect
        self.org = _CONTROL.sub("", org)[:MAX_LABEL]  # named on the page as the one who keeps results
        self.results_dir = Path(results_dir)
        self.default_profile = default_profile
        self.peers = EchoPeers()
        self._write_lock = threading.Lock()
        self._rates = (FairRate(RESULTS_PER_MINUTE_ALL, RESULTS_PER_MINUTE, 60.0),
                       FairRate(RESULTS_PER_HOUR_ALL, RESULTS_PER_HOUR_ALL, 3600.0))

    def prune(self, keep_s: float, now: float | None = None) -> int:
        """Delete this page's own results and reports older than ``keep_s`` seconds (by their
        modification time); returns how many files. Only files named as the page names them
        (``readiness-browser-…``, directly in the folder, not links) are touched: agents' results
        put in the same folder stay."""
        cutoff = (time.time() if now is None else now) - keep_s
        gone = 0
        with self._write_lock:
            try:
                entries = list(os.scandir(self.results_dir))
            except (FileNotFoundError, NotADirectoryError):
                return 0
            for e in entries:
                try:
                    if (_PAGE_FILE.fullmatch(e.name) and e.is_file(follow_symlinks=False)
                            and e.stat(follow_symlinks=False).st_mtime < cutoff):
                        os.unlink(e.path)
                        gone += 1
                except FileNotFoundError:
                    pass
        return gone

    def _allow(self, client: str) -> float:
        """0 when a result from ``client`` may be stored now, else the seconds to wait: at most
        RESULTS_PER_MINUTE per client network and minute, RESULTS_PER_MINUTE_ALL and
        RESULTS_PER_HOUR_ALL from everyone, with a fair share kept for each network."""
        now = time.monotonic()
        wait = max(rate.allow(client, now, count=False) for rate in self._rates)
        if not wait:
            for rate in self._rates:
                rate.allow(client, now)
        return wait

    # ------------------------------------------------------------------ profiles
    @staticmethod
    @lru_cache(maxsize=16)
    def _profile(name: str) -> Any:

        if name not in shipped_profiles():
            return None
        plugins = load_plugins()
        return load_profile(name, checks=plugins.checks, broken=plugins.broken)

    def profile(self, name: str) -> Any:
        return self._profile(name) if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) else None

    # ------------------------------------------------------------------ dispatch
    def routes(self) -> list[Route]:
        """The self-test's endpoints for ``run_server(routes=...)``."""
        return [Route(("GET", "HEAD"), "/", self.serve),
                Route(("GET", "POST"), PREFIX, self.serve, max_body=submission.MAX_BODY, prefix=True)]

    def serve(self, req: Request) -> Response:
        body = req.body.read() if req.method == "POST" else b""
        return self.handle(req.method, req.path, req.query, body, req.client)

    def handle(self, method: str, path: str, q: dict[str, list[str]], body: bytes, client: str) -> Response:
        """The answer to one request; ``q`` is the parsed query (parse_qs)."""
        if path == "/":
            return self.page(q)
        rest = path[len(PREFIX):]
        if method == "GET" and rest in _ASSETS:
            return _resp(200, _asset(rest), _ASSETS[rest])
        if method == "GET" and rest == "ping":
            return _resp(200, b"", "text/plain")
        if method == "POST" and rest == "rtc":
            return self.rtc(body, client)
        if method == "POST" and rest == "result":
            return self.result(body, client)
        m = re.fullmatch(r"report/([0-9a-f]{32})\.(html|json)", rest)
        if method == "GET" and m:
            return self.report(m.group(1), m.group(2), _first(q, "download") == "1")
        return _json(404, {"error": "not found"})

    # ------------------------------------------------------------------ the page
    def page(self, q: dict[str, list[str]]) -> Response:
        lang, t = _catalog(_first(q, "lang", "en"))
        name = _first(q, "profile", self.default_profile)
        prof = self.profile(name)
        if prof is None:
            html = _environment().get_template("error.html").render(
                lang=lang, t=t, message=t["selftest_no_profile"].format(name=name[:80]))
            return _resp(404, html.encode(), "text/html; charset=utf-8", {"Content-Security-Policy": PAGE_CSP})
        cam = prof.check_settings.get("camera", {})

        cam_cls = load_plugins().checks.get("camera")
        defaults = cam_cls.default_settings() if cam_cls else {"width": 1280, "height": 720}
        config = {
            "profile": prof.name, "lang": lang,
            # as text the result border accepts (no control characters), so the page can post it back
            "labels": {k: v for k in ("site", "room", "label") if (v := _CONTROL.sub("", _first(q, k))[:MAX_LABEL])},
            KEY: _CONTROL.sub("", _first(q, KEY))[:submission.MAX_KEY],
            "camera": {"width": int(cam.get("width", defaults["width"]) or 0),
                       "height": int(cam.get("height", defaults["height"]) or 0)},
            "needs": sorted(prof.checks()),
            "words": {k[len("selftest_js_"):]: v for k, v in t.items() if k.startswith("selftest_js_")},
        }
        checks = load_plugins().checks  # every installed check, a third party's too, in its own words
        elsewhere = ", ".join(check_title(n, lang, checks[n].title) for n in agent_only(checks))
        html = _environment().get_template("page.html").render(lang=lang, t=t, config=config, agent_checks=elsewhere,
                                                               keeper=keeper(lang, self.org),
                                                               profile_title=profile_title(prof.summary(), lang))
        return _resp(200, html.encode(), "text/html; charset=utf-8",
                     {"Content-Security-Policy": PAGE_CSP, "Permissions-Policy": "camera=(self), microphone=(self)"})

    # ------------------------------------------------------------------ WebRTC
    def rtc(self, body: bytes, client: str = "") -> Response:
        from readiness.selftest.peer import MAX_OFFER, PeerError  # lazy: aiortc (server extra)

        if len(body) > MAX_OFFER + 1024:
            return _json(413, {"error": "the offer is too large"})
        try:
            offer = json.loads(body.decode("utf-8"))
            if not isinstance(offer, dict):
                raise ValueError
            return _json(200, self.peers.answer(offer, client))
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"error": "not a WebRTC offer"})
        except PeerError as exc:
            return _resp(503, json.dumps({"error": str(exc)}).encode(), "application/json", {"Retry-After": "5"})

    # ------------------------------------------------------------------ results
    def result(self, body: bytes, client: str) -> Response:
        try:
            sub = submission.parse(body)
        except submission.SubmissionError as exc:
            return _json(400, {"error": str(exc)})
        prof = self.profile(sub["profile"])
        if prof is None:
            return _json(400, {"error": f"no requirement list named {sub['profile'][:64]!r}"})
        wait = self._allow(client)
        if wait:
            return _resp(429, json.dumps({"error": "too many results at once; try again in a minute"}).encode(),
                         "application/json", {"Retry-After": str(math.ceil(wait))})
        lang, _ = _catalog(sub.get("lang", "en"))
        result = build_result(sub, prof)
        j = judge(result, prof, only_checks=set(result.checks))  # partial: a browser cannot run them all
        result.judgement = j.to_dict()
        text = result.to_json()
        load_result_bytes(text.encode("utf-8"), "self-test result")  # the border every result crosses
        html = _render(result, j, lang)
        stem = result_stem(result)
        with self._write_lock:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            # both or neither: a report without its result (or the reverse) would mislead
            write_all_or_none([(self.results_dir / f"{stem}.json", text), (self.results_dir / f"{stem}.html", html)])
        answer: dict[str, Any] = {"collected": None}
        if self.collect is not None:
            answer = self._collect(text, result, sub.get(KEY, ""), client)
        base = f"{PREFIX}report/{result.run_id}"
        return _json(200, answer | {"run_id": result.run_id, "overall": j.overall, "verdict": j.verdict, "ready": j.ready,
                                    "outcome": page_outcome(result, j, lang, self.org),
                                    "report": f"{base}.html", "download": f"{base}.html?download=1",
                                    "json": f"{base}.json?download=1"})

    def _collect(self, text: str, result: Any, key: str, client: str) -> dict[str, Any]:
        """Hand the stored result to the collector; the answer's "collected" (and why not)."""
        site = result.labels.get("site", "")
        try:
            reason = self.collect(text.encode("utf-8"), site, key)  # type: ignore[misc]
            detail = reason
        except Exception as exc:  # noqa: BLE001 - the folder holds it; the database may be down
            reason, detail = "not_stored", str(exc)[:200]
        if reason is None:
            return {"collected": True}
        # one line; the key itself is never logged
        log(f"{client} self-test result {result.run_id} for site {site[:80]!r} not collected: {detail}")
        return {"collected": False, "not_collected": reason}

    def report(self, run_id: str, kind: str, download: bool) -> Response:
        if not _RUN_ID.fullmatch(run_id):
            return _json(404, {"error": "not found"})
        matches = sorted(self.results_dir.glob(f"readiness-*-{run_id[:8]}.{kind}"))
        for path in matches:
            sibling = path.with_suffix(".json")
            try:
                if json.loads(sibling.read_text(encoding="utf-8")).get("run_id") != run_id:
                    continue
                data = path.read_bytes()
            except (OSError, ValueError):
                continue
            headers = {"Content-Security-Policy": REPORT_CSP}
            if download:
                headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
            ctype = "text/html; charset=utf-8" if kind == "html" else "application/json"
            return _resp(200, data, ctype, headers)
        return _json(404, {"error": "no such result"})

    def close(self) -> None:
        self.peers.close()


def _render(result: Any, judgement: Any, lang: str) -> str:
    return render_report(result, judgement, lang)
