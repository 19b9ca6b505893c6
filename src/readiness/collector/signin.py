"""Sign-in for people with OpenID Connect: the authorization code flow with PKCE (Authlib's
OAuth 2 client), the provider found by discovery from its issuer URL, the ID token checked
(signature against the provider's published keys, issuer, audience, expiry, nonce) with
joserfc, Authlib's JOSE library. Works with any provider that follows the standard (Entra ID,
Google, Keycloak): only ``[sign_in]`` in the access file differs.

Sessions live in the database (``sessions``: the SHA-256 of their secret), so signing out ends
one everywhere, for every replica, and a copied cookie stops working with it. The cookie holds
the secret and its HMAC under a key kept in the database (``settings``): a cookie signed with
any other key is refused before the database is asked. ``HttpOnly``, ``SameSite=Lax``, and
``Secure`` when people reach the collector over HTTPS (``base_url``). Each session has a CSRF
token that every state-changing form carries.

Sits between ``collector.access`` (roles from claims) and ``collector.http`` (the routes).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlencode

from readiness.collector.access import AccessConfig, Caller, caller_from_claims, caller_of
from readiness.collector.engine import utcnow
from readiness.collector.store import Store

COOKIE = "readiness_session"
PENDING_S = 600  # a sign-in must come back from the provider within ten minutes
LEEWAY_S = 60  # clock difference allowed between the provider and this server
HTTP_TIMEOUT_S = 10
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


class SignInError(Exception):
    """A sign-in that did not work; ``str()`` says why (logged; the person sees a plain page)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Provider:
    """The OpenID provider as its discovery document describes it, and its signing keys
    (fetched again when a token names a key not seen yet: the provider rotated them)."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.meta: dict[str, Any] | None = None
        self.keys: Any = None
        self.lock = threading.RLock()  # the keys' fetch reads the metadata under the same lock
        self.fetched = 0.0

    def _get(self, url: str) -> Any:
        import requests  # the server extra (Authlib's HTTP client)

        try:
            resp = requests.get(url, timeout=HTTP_TIMEOUT_S, headers={"Accept": "application/json"})
            resp.raise_for_status()
            return resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise SignInError(f"the OpenID provider did not answer {url}: {exc}") from None

    def metadata(self) -> dict[str, Any]:
        with self.lock:
            if self.meta is None:
                meta = self._get(self.issuer + "/.well-known/openid-configuration")
                if not isinstance(meta, dict) or meta.get("issuer", "").rstrip("/") != self.issuer.rstrip("/"):
                    raise SignInError(f"the discovery document of {self.issuer} names another issuer "
                                      f"({meta.get('issuer') if isinstance(meta, dict) else '?'})")
                for k in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(meta.get(k), str):
                        raise SignInError(f"the discovery document of {self.issuer} has no {k}")
                self.meta = meta
            return self.meta

    def key_set(self, refresh: bool = False) -> Any:
        from joserfc.jwk import KeySet  # the server extra

        with self.lock:
            # a token naming an unknown key fetches again, at most once a minute (no flood of fetches)
            if self.keys is None or refresh and time.monotonic() - self.fetched > 60:
                jwks_uri = self.meta["jwks_uri"] if self.meta else self.metadata()["jwks_uri"]
                self.keys = KeySet.import_key_set(self._get(jwks_uri))
                self.fetched = time.monotonic()
            return self.keys


def validate_id_token(id_token: str, provider: Provider, client_id: str, nonce: str) -> dict[str, Any]:
    """The ID token's claims when its signature is the provider's, and issuer, audience,
    expiry and nonce are right; else :class:`SignInError` saying which."""
    from joserfc import jwt  # the server extra
    from joserfc.errors import JoseError

    def decode(keys: Any) -> Any:
        return jwt.decode(id_token, keys, algorithms=ALGORITHMS)

    try:
        try:
            token = decode(provider.key_set())
        except (JoseError, ValueError):
            token = decode(provider.key_set(refresh=True))  # keys rotated since we fetched them
    except (JoseError, ValueError) as exc:
        raise SignInError(f"the ID token's signature is not the provider's ({type(exc).__name__})") from None
    claims = token.claims
    registry = jwt.JWTClaimsRegistry(leeway=LEEWAY_S, iss={"essential": True, "value": provider.issuer},
                                     aud={"essential": True, "value": client_id},
                                     exp={"essential": True}, sub={"essential": True},
                                     nonce={"essential": True, "value": nonce})
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise SignInError(f"the ID token was refused: {exc.error}: {exc.description or ''}".strip()) from None
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise SignInError("the ID token is for several audiences and not issued to this collector (azp)")
    return claims


class SignIn:
    """The sign-in flow and the sessions over one store."""

    def __init__(self, store: Store, config: AccessConfig) -> None:
        if config.sign_in is None:
            raise ValueError("no [sign_in]")
        self.store = store
        self.config = config
        self.settings = config.sign_in
        self.provider = Provider(self.settings.issuer)
        self.secure = self.settings.base_url.startswith("https://")
        self._key: bytes | None = None

    @property
    def redirect_uri(self) -> str:
        return self.settings.base_url + "/auth/callback"

    def key(self) -> bytes:
        if self._key is None:
            self._key = self.store.setting("session_key", lambda: secrets.token_urlsafe(48)).encode("ascii")
        return self._key

    # --- cookies ----------------------------------------------------------------------------

    def _sign(self, secret: str) -> str:
        return secret + "." + _b64(hmac.new(self.key(), secret.encode("ascii"), hashlib.sha256).digest())

    def _unsign(self, value: str) -> str | None:
        secret, _, sig = value.rpartition(".")
        if not secret or not hmac.compare_digest(self._sign(secret), value):
            return None
        return secret

    def cookie(self, secret: str, max_age: int) -> str:
        parts = [f"{COOKIE}={self._sign(secret) if secret else ''}", "Path=/", "HttpOnly", "SameSite=Lax",
                 f"Max-Age={max_age}"]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    def clear_cookie(self) -> str:
        return self.cookie("", 0)

    def secret_of(self, cookie_header: str | None) -> str | None:
        """The session secret of a request's cookie, when its signature is this collector's."""
        if not cookie_header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            return None
        morsel = jar.get(COOKIE)
        return self._unsign(morsel.value) if morsel is not None and morsel.value else None

    # --- the flow ---------------------------------------------------------------------------

    def begin(self, next_path: str) -> tuple[str, str]:
        """A pending sign-in: (the provider's authorization URL to send the browser to, the
        cookie that ties the answer to this browser)."""
        from authlib.common.security import generate_token  # the server extra
        from authlib.integrations.requests_client import OAuth2Session

        meta = self.provider.metadata()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        client = OAuth2Session(self.settings.client_id, self.settings.client_secret, scope=" ".join(self.settings.scopes),
                               redirect_uri=self.redirect_uri, code_challenge_method="S256")
        url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, nonce=nonce,
                                                 code_verifier=verifier)
        secret = secrets.token_urlsafe(32)
        self.store.put_session(secret, subject="", name="", role="", sites="", csrf="",
                               pending=json.dumps({"state": state, "nonce": nonce, "verifier": verifier, "next": next_path}),
                               expires=utcnow() + timedelta(seconds=PENDING_S))
        return url, self.cookie(secret, PENDING_S)

    def finish(self, cookie_header: str | None, query: dict[str, list[str]]) -> tuple[Caller | None, str, str, str]:
        """The provider sent the browser back: (the caller signed in, or None when no grant
        matches; the cookie of the new session; where to go; who, for the log). The pending
        sign-in is used up either way. Raises :class:`SignInError`."""
        from authlib.integrations.base_client.errors import OAuthError  # the server extra
        from authlib.integrations.requests_client import OAuth2Session
        from requests import RequestException

        pending_secret = self.secret_of(cookie_header)
        row = self.store.get_session(pending_secret) if pending_secret else None
        if row is None or row["role"] or not row["pending"]:
            raise SignInError("no sign-in was started from this browser (or it took longer than ten minutes)")
        self.store.end_session(pending_secret)  # one use only
        pending = json.loads(row["pending"])
        if "error" in query:
            raise SignInError(f"the provider refused: {(query.get('error') or [''])[0][:100]}")
        state = (query.get("state") or [""])[0]
        code = (query.get("code") or [""])[0]
        if not code or not hmac.compare_digest(state.encode(), pending["state"].encode()):
            raise SignInError("the answer's state is not the one this browser was sent with")
        meta = self.provider.metadata()
        client = OAuth2Session(self.settings.client_id, self.settings.client_secret, scope=" ".join(self.settings.scopes),
                               redirect_uri=self.redirect_uri, code_challenge_method="S256")
        try:
            token = client.fetch_token(meta["token_endpoint"], code=code, code_verifier=pending["verifier"],
                                       timeout=HTTP_TIMEOUT_S)
        except (OAuthError, RequestException, ValueError) as exc:
            raise SignInError(f"the provider did not exchange the code: {exc}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError("the provider's answer holds no ID token")
        claims = validate_id_token(id_token, self.provider, self.settings.client_id, pending["nonce"])
        name = str(claims.get("email") or claims.get("preferred_username") or claims.get("name") or claims["sub"])[:300]
        who = caller_from_claims(self.config, name, claims)
        if who is None:
            return None, self.clear_cookie(), "/", name
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        hours = self.settings.session_hours
        self.store.put_session(secret, subject=str(claims["sub"])[:300], name=name, role=who.role, csrf=csrf, pending="",
                               sites=json.dumps({"sites": None if who.sites is None else sorted(who.sites),
                                                 "lead": sorted(who.lead_sites)}),
                               expires=utcnow() + timedelta(hours=hours))
        signed = caller_of(name, who.role, who.sites, who.lead_sites, csrf=csrf, session=secret)
        return signed, self.cookie(secret, int(hours * 3600)), _local_path(pending.get("next")), name

    def caller(self, cookie_header: str | None) -> Caller | None:
        """The signed-in person of a request, or None."""
        secret = self.secret_of(cookie_header)
        if secret is None:
            return None
        row = self.store.get_session(secret)
        if row is None or not row["role"]:
            return None
        scope = json.loads(row["sites"])
        return caller_of(row["name"], row["role"], scope["sites"], scope["lead"], csrf=row["csrf"], session=secret)

    def end(self, who: Caller) -> bool:
        return self.store.end_session(who.session)

    def login_url(self, next_path: str) -> str:
        return "/auth/login?" + urlencode({"next": _local_path(next_path)})


def _local_path(path: Any) -> str:
    """Only a path on this server (never ``//host`` or a scheme: no open redirect)."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/fleet"
    return path[:500]
