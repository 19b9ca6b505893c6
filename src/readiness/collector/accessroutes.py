"""The collector's handlers for partner share links and sign-in: /admin/links, /share/<secret>,
/auth/login, /auth/callback, /auth/logout. A part of :class:`readiness.collector.http.Collector`,
which holds the store, the sign-in and the access these use."""

from __future__ import annotations

from typing import Any

from readiness.collector.access import Caller, parse_span
from readiness.collector.engine import Unavailable, utcnow
from readiness.collector.pages import links_page, message_page, share_page
from readiness.collector.replies import HTML_TYPE, csrf_ok, form_of, html, lang_of, param, refuse
from readiness.collector.signin import SignInError
from readiness.i18n.format import word
from readiness.server.routes import Request, Response


class AccessRoutes:
    """Share links and sign-in, over the Collector's ``store``, ``signin``, ``view`` and audit."""

    store: Any
    signin: Any
    view: Any
    org: str
    caller: Any
    audit: Any
    log: Any
    _reading: Any
    _touch: Any

    def _manager(self, req: Request) -> Caller | Response:
        """A signed-in person who manages links of at least one site (admin, site lead)."""
        who = self.caller(req)
        if isinstance(who, Response):
            return who
        if not who.session or not (who.admin or who.lead_sites):
            return refuse(403, "forbidden", "share links are managed by administrators and site leads, signed in")
        return who

    def _links_page(self, req: Request, who: Caller, made: str = "") -> Response:
        links = [t for t in self.store.list_tokens() if t.kind == "share" and t.revoked is None and who.manages(t.site)]
        sites = None if who.admin else sorted(who.lead_sites)
        return html(links_page(who, links, sites, made, lang_of(req)), who=who)

    def get_links(self, req: Request) -> Response:
        def make(_who: Caller) -> Response:
            who = self._manager(req)
            return who if isinstance(who, Response) else self._links_page(req, who)

        return self._reading(req, make, page=True)

    def post_links(self, req: Request) -> Response:
        who = self._manager(req)
        if isinstance(who, Response):
            return who
        form = form_of(req)
        if not csrf_ok(form.get("csrf", ""), who):
            self.audit(who, "csrf_refused", req.path)
            return refuse(403, "csrf", "this form did not come from this collector's page")
        try:
            if form.get("action") == "add":
                site = form.get("site", "").strip()
                try:
                    span = parse_span(f"{form.get('days', '')}d")
                except ValueError:
                    return refuse(400, "bad_days", "give the days the link works, 1 to 365")
                if not site or len(site) > 200 or not who.manages(site) or span.days > 365:
                    return refuse(403, "forbidden", "you do not manage share links of that site")
                tok, secret = self.store.add_token("share", site, utcnow() + span)
                self.audit(who, "token_add", f"share token {tok.id}", site, f"expires {tok.expires:%Y-%m-%d %H:%M}Z")
                base = self.signin.settings.base_url if self.signin is not None else ""
                return self._links_page(req, who, f"{base}/share/{secret}")
            if form.get("action") == "revoke":
                wanted = form.get("id", "")
                token = next((t for t in self.store.list_tokens() if str(t.id) == wanted and t.kind == "share"), None)
                if token is None or not who.manages(token.site):
                    return refuse(403, "forbidden", "you do not manage that share link")
                for t in self.store.revoke(token_id=token.id):
                    self.audit(who, "token_revoke", f"share token {t.id}", t.site)
                return self._links_page(req, who)
        except Unavailable:
            return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
        return refuse(400, "bad_form", "this form asks for nothing this page does")

    def get_share(self, req: Request) -> Response:
        """A partner's view of its own site through a share link (kind "share"): the link is
        the credential, good for that one site and this page only, until it expires or is revoked."""
        secret = req.path[len("/share/"):]
        lang = lang_of(req)
        try:
            token = self.store.lookup_token(secret) if 0 < len(secret) <= 100 else None
            if token is None or token.kind != "share" or token.revoked is not None:
                return html(message_page("access.share_gone", lang), 404, **{"Referrer-Policy": "no-referrer"})
            self._touch(token)
            fleet, figs = self.view.get(lang, frozenset({token.site}))
            page = share_page(fleet, figs, token.site, self.org or word(lang, "access.share_host"), token.expires, lang)
        except Unavailable:
            return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
        return html(page, **{"Referrer-Policy": "no-referrer"})  # the link is the key: never in a Referer

    # --- sign-in ---------------------------------------------------------------------------

    def get_login(self, req: Request) -> Response:
        if self.signin is None:
            return refuse(404, "not_found", "sign-in is not set up on this collector (see --access)")
        try:
            url, cookie = self.signin.begin(param(req, "next", "/fleet"))
        except SignInError as exc:
            self.log(f"{req.client} sign-in not started: {exc}")
            return refuse(502, "provider_unavailable", "the sign-in provider is not reachable now")
        except Unavailable:
            return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
        return Response(302, b"", HTML_TYPE, {"Location": url, "Set-Cookie": cookie, "Cache-Control": "no-store"})

    def get_callback(self, req: Request) -> Response:
        if self.signin is None:
            return refuse(404, "not_found", "sign-in is not set up on this collector (see --access)")
        lang = lang_of(req)
        try:
            who, cookie, to, name = self.signin.finish(req.headers.get("Cookie"), req.query)
        except SignInError as exc:
            self.log(f"{req.client} sign-in refused: {exc}")
            self.audit(Caller(req.client, "anonymous"), "sign_in_refused", detail=str(exc))
            return html(message_page("access.sign_in_intro", lang, "/auth/login", word(lang, "access.sign_in")), 403,
                        **{"Set-Cookie": self.signin.clear_cookie()})
        except Unavailable:
            return refuse(503, "database_unavailable", "the database is not reachable now", **{"Retry-After": "10"})
        if who is None:
            self.audit(Caller(name, "anonymous"), "sign_in_refused", detail="no role for this account")
            return html(message_page("access.no_role", lang), 403, **{"Set-Cookie": cookie})
        sites = "every site" if who.sites is None else ", ".join(sorted(who.sites))
        self.audit(who, "sign_in", who.role, detail=sites)
        return Response(302, b"", HTML_TYPE, {"Location": to, "Set-Cookie": cookie, "Cache-Control": "no-store"})

    def post_logout(self, req: Request) -> Response:
        if self.signin is None:
            return refuse(404, "not_found", "sign-in is not set up on this collector (see --access)")
        who = self.caller(req)
        if not isinstance(who, Caller) or not who.session:
            return refuse(401, "not_signed_in", "not signed in")
        if not csrf_ok(form_of(req).get("csrf", ""), who):
            self.audit(who, "csrf_refused", req.path)
            return refuse(403, "csrf", "this form did not come from this collector's page")
        self.signin.end(who)
        self.audit(who, "sign_out")
        lang = lang_of(req)
        return html(message_page("access.signed_out", lang, "/auth/login", word(lang, "access.sign_in")),
                    **{"Set-Cookie": self.signin.clear_cookie()})
