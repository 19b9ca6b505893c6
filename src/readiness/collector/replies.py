"""What the collector's handlers answer with and read from a request: JSON replies and refusals,
pages under the strict Content-Security-Policy, a form, a query parameter, a bearer token, the
session's CSRF check and the page's language. Shared by ``http`` (the Collector) and ``accessroutes``
(share links and sign-in)."""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import parse_qs

from readiness.collector.access import Caller
from readiness.i18n import languages
from readiness.server.routes import BodyError, Request, Response

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# The pages are self-contained: no script, styles inline, pictures as data: URLs only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
CSV_TYPE = "text/csv; charset=utf-8"


def reply(status: int, body: dict[str, Any], **headers: str) -> Response:
    return Response.json(body, status, headers)


def refuse(status: int, code: str, reason: str, **headers: str) -> Response:
    return reply(status, {"error": code, "reason": reason}, **headers)


def html(text: str, status: int = 200, who: Caller | None = None, **headers: str) -> Response:
    """A page; a signed-in person's pages hold the sign-out form, posted to this server only."""
    csp = CSP.replace("form-action 'none'", "form-action 'self'") if who is not None and who.session else CSP
    return Response.text(text, status, content_type=HTML_TYPE,
                         headers={"Content-Security-Policy": csp, "Cache-Control": "no-store", **headers})


def form_of(req: Request) -> dict[str, str]:
    try:
        return {k: v[0] for k, v in parse_qs(req.body.read().decode("utf-8"), max_num_fields=20).items()}
    except (UnicodeDecodeError, ValueError, BodyError):
        return {}


def param(req: Request, name: str, default: str = "") -> str:
    return (req.query.get(name) or [default])[0]


def bearer(req: Request) -> str | None:
    value = req.headers.get("Authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def csrf_ok(given: str, who: Caller) -> bool:
    return bool(who.csrf) and hmac.compare_digest(given.encode("utf-8", "replace"), who.csrf.encode("ascii"))


def lang_of(req: Request) -> str:
    lang = param(req, "lang", "en")
    return lang if lang in languages() else "en"
