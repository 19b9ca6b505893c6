"""Sign-in with OpenID Connect (``readiness.collector.signin``) against a real OpenID provider
started here (``oidc-provider-mock`` from PyPI: discovery, JWKS, authorization code flow, ID
tokens signed with its own RSA key), a real ``readiness serve --db URL --access FILE`` and a
real Chromium.

Proved here: each role sees what it may on every read endpoint (SQLite and PostgreSQL); a
person without a grant gets nothing; sign-out ends the session everywhere (a copied cookie
stops working); a cookie signed with another key never works; a form without the session's
CSRF token is refused; forged, expired, wrong-audience, wrong-issuer and wrong-nonce ID tokens
are refused; Chromium signs in, sees its sites only, signs out and is sent to sign in again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from browser import Chromium, chromium_path
from postgres import postgres  # noqa: F401 - the session fixture
from readiness.collector.signin import COOKIE, Provider, SignInError, validate_id_token
from test_collector_access import NOT_LOCAL, _fill
from test_collector_serve import Collector

USERS = {
    "ada": ["fleet-admins"],
    "lena": ["gbg-leads"],
    "sven": ["sthlm-readers"],
    "otto": ["auditors"],
    "nils": ["someone-else"],
}
SEES = {"ada": {"Stockholm", "Göteborg"}, "otto": {"Stockholm", "Göteborg"}, "lena": {"Göteborg"}, "sven": {"Stockholm"}}
SECRET = "provider-client-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def provider():
    """``oidc-provider-mock`` on a loopback port; the issuer is http://127.0.0.1:PORT."""
    exe = shutil.which("oidc-provider-mock")
    if exe is None:
        pytest.skip("oidc-provider-mock is not installed (pip install 'readiness[test]')")
    port = free_port()
    users = [json.dumps({"sub": sub, "email": f"{sub}@example.org", "groups": groups}) for sub, groups in USERS.items()]
    proc = subprocess.Popen([exe, "--port", str(port), "--require-nonce", "true", "--token-max-age", "3",
                             *[x for u in users for x in ("--user-claims", u)]],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(issuer + "/.well-known/openid-configuration", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the OpenID provider did not start"
        time.sleep(0.2)
    yield issuer
    proc.kill()
    proc.wait(10)


def access_file(tmp_path: Path, issuer: str, port: int, client_id: str = "readiness") -> Path:
    path = tmp_path / "access.toml"
    path.write_text(f'''
[sign_in]
issuer = "{issuer}"
client_id = "{client_id}"
client_secret_env = "READINESS_TEST_OIDC_SECRET"
base_url = "http://127.0.0.1:{port}"
claim = "groups"
local_read = false

[[grant]]
value = "fleet-admins"
role = "admin"

[[grant]]
value = "gbg-leads"
role = "site_lead"
sites = ["Göteborg"]

[[grant]]
value = "sthlm-readers"
role = "reader"
sites = ["Stockholm"]

[[grant]]
value = "auditors"
role = "auditor"
''', encoding="utf-8")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readiness.db'}"
    return request.getfixturevalue("postgres").fresh_url()


@pytest.fixture
def served(provider, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("READINESS_TEST_OIDC_SECRET", SECRET)
    runs = _fill(db_url)
    port = free_port()
    c = Collector(db_url, "--http-port", str(port), "--access", str(access_file(tmp_path, provider, port)))
    yield c, runs
    c.kill()


def sign_in(c: Collector, sub: str) -> tuple[requests.Session, requests.Response]:
    """The whole code flow by HTTP, as a browser follows it: the collector, the provider's form, back."""
    s = requests.Session()
    start = s.get(c.url + "/auth/login?next=/fleet", allow_redirects=False, timeout=30)
    assert start.status_code == 302, start.text
    asked = parse_qs(urlparse(start.headers["Location"]).query)
    assert asked["code_challenge_method"] == ["S256"] and len(asked["code_challenge"][0]) >= 43
    assert asked["nonce"][0] and asked["state"][0] and asked["response_type"] == ["code"]
    given = s.post(start.headers["Location"], data={"sub": sub}, allow_redirects=False, timeout=30)
    assert given.status_code == 302 and given.headers["Location"].startswith(c.url + "/auth/callback?")
    back = s.get(given.headers["Location"], allow_redirects=False, timeout=30)
    return s, back


def _sites_in(c: Collector, s: requests.Session) -> dict[str, object]:
    out = {}
    figs = s.get(c.url + "/api/v1/fleet", timeout=30)
    out["api"] = figs.status_code if figs.status_code != 200 else {r["site"] for r in figs.json()["sites"]}
    page = s.get(c.url + "/fleet", allow_redirects=False, timeout=30)
    shown = re.sub(r"<style>.*?</style>", "", page.text, flags=re.S)  # the style sheet's comments name a city
    out["fleet"] = page.status_code if page.status_code != 200 else {
        x for x in ("Stockholm", "Göteborg") if x in shown}
    scraped = s.get(c.url + "/metrics", timeout=30)
    out["metrics"] = scraped.status_code if scraped.status_code != 200 else set(
        re.findall(r'readiness_fleet_computers\{site="([^"]+)"', scraped.text))
    table = s.get(c.url + "/fleet.csv", timeout=30)
    out["csv"] = table.status_code if table.status_code != 200 else {
        x for x in ("Stockholm", "Göteborg") if x in table.content.decode("utf-8-sig")}
    out["audit"] = s.get(c.url + "/admin/audit", allow_redirects=False, timeout=30).status_code
    return out


def test_each_role_sees_its_sites_on_every_read_endpoint(served):
    c, runs = served
    for sub, sites in SEES.items():
        s, back = sign_in(c, sub)
        assert back.status_code == 302 and back.headers["Location"] == "/fleet", (sub, back.text)
        cookie = back.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # served over http here
        seen = _sites_in(c, s)
        assert seen["api"] == seen["fleet"] == seen["metrics"] == seen["csv"] == sites, (sub, seen)
        assert seen["audit"] == (200 if sub in ("ada", "otto") else 403), sub
        for host, run in runs.items():
            site = "Göteborg" if host.startswith("gbg") else "Stockholm"
            status = s.get(f"{c.url}/runs/{run}", timeout=30).status_code
            assert status == (200 if site in sites else 404), (sub, host)
    s, back = sign_in(c, "nils")  # a good account, no grant: nothing
    assert back.status_code == 403 and "no role" in back.text
    assert _sites_in(c, s)["api"] == 401
    assert s.get(c.url + "/fleet", allow_redirects=False, timeout=30).headers["Location"].startswith("/auth/login")
    s, _ = sign_in(c, "ada")
    log = s.get(c.url + "/admin/audit", timeout=30).text
    for sub in SEES:
        assert f"{sub}@example.org" in log
    assert "sign_in_refused" in log and "nils@example.org" in log


def _cookie_value(s: requests.Session) -> str:
    return s.cookies.get(COOKIE)


def test_logout_needs_the_csrf_token_and_ends_every_copy_of_the_session(served):
    c, _ = served
    s, back = sign_in(c, "lena")
    stolen = _cookie_value(s)
    page = s.get(c.url + "/fleet", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert "lena@example.org" in page and 'action="/auth/logout"' in page

    def with_cookie(value: str, path: str = "/api/v1/fleet") -> int:
        return requests.get(c.url + path, cookies={COOKIE: value}, allow_redirects=False, timeout=30).status_code

    for form in ({}, {"csrf": ""}, {"csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}):
        refused = s.post(c.url + "/auth/logout", data=form, timeout=30)
        assert refused.status_code == 403 and refused.json()["error"] == "csrf", form
    assert with_cookie(stolen) == 200  # refused forms changed nothing
    # another key: the same session secret, signed by someone else
    secret = stolen.rpartition(".")[0]
    other = secret + "." + base64.urlsafe_b64encode(hmac.new(b"another key", secret.encode(), hashlib.sha256)
                                                    .digest()).rstrip(b"=").decode()
    assert with_cookie(other) == 401 and with_cookie(secret) == 401 and with_cookie("x." + stolen) == 401
    done = s.post(c.url + "/auth/logout", data={"csrf": csrf}, timeout=30)
    assert done.status_code == 200 and "signed out" in done.text
    assert with_cookie(stolen) == 401 and with_cookie(stolen, "/fleet") == 302
    assert s.post(c.url + "/auth/logout", data={"csrf": csrf}, cookies={COOKIE: stolen}, timeout=30).status_code == 401


def test_a_callback_without_its_browsers_start_or_with_another_state_is_refused(served):
    c, _ = served
    s = requests.Session()
    start = s.get(c.url + "/auth/login", allow_redirects=False, timeout=30)
    given = s.post(start.headers["Location"], data={"sub": "ada"}, allow_redirects=False, timeout=30)
    callback = given.headers["Location"]
    # another browser (no pending cookie) brings the code: login CSRF, refused
    assert requests.get(callback, allow_redirects=False, timeout=30).status_code == 403
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    assert s.get(tampered, allow_redirects=False, timeout=30).status_code == 403
    # the pending sign-in was used up by the refused try: the right answer after it is refused too
    assert s.get(callback, allow_redirects=False, timeout=30).status_code == 403
    assert requests.get(c.url + "/auth/login?next=//evil.example/", allow_redirects=False,
                        timeout=30).status_code == 302  # the next= is kept to this server (checked below)
    from readiness.collector.signin import _local_path
    assert _local_path("//evil.example/") == "/fleet" and _local_path("https://evil.example/") == "/fleet"
    assert _local_path("/runs/ab") == "/runs/ab"


# --- ID tokens -------------------------------------------------------------------------------


def _id_token(issuer: str, client_id: str, nonce: str, sub: str = "ada") -> str:
    """A real ID token from the provider for ``client_id``."""
    s = requests.Session()
    redirect = "http://127.0.0.1:9/cb"
    auth = (f"{issuer}/oauth2/authorize?client_id={client_id}&redirect_uri={redirect}&response_type=code"
            f"&scope=openid+email&state=s&nonce={nonce}")
    given = s.post(auth, data={"sub": sub}, allow_redirects=False, timeout=30)
    code = parse_qs(urlparse(given.headers["Location"]).query)["code"][0]
    token = s.post(f"{issuer}/oauth2/token", data={"grant_type": "authorization_code", "code": code,
                                                    "redirect_uri": redirect},
                   auth=(client_id, SECRET), timeout=30)
    return token.json()["id_token"]


def test_forged_expired_wrong_audience_wrong_issuer_and_wrong_nonce_id_tokens_are_refused(provider):
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    good = _id_token(provider, "readiness", "n1")
    claims = validate_id_token(good, Provider(provider), "readiness", "n1")
    assert claims["sub"] == "ada" and claims["aud"] in ("readiness", ["readiness"])

    def refused(token: str, provider_obj: Provider, client_id: str = "readiness", nonce: str = "n1") -> str:
        with pytest.raises(SignInError) as caught:
            validate_id_token(token, provider_obj, client_id, nonce)
        return str(caught.value)

    assert "aud" in refused(_id_token(provider, "another-app", "n1"), Provider(provider))
    assert "nonce" in refused(good, Provider(provider), nonce="n2")
    elsewhere = Provider(provider + "/realms/other")  # the same keys, another issuer expected
    elsewhere.meta = Provider(provider).metadata()
    assert "iss" in refused(good, elsewhere)
    # forged: the provider's claims, signed by a key of our own under the provider's key id
    header = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))
    payload = json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))
    mine = RSAKey.generate_key(2048, parameters={"kid": header.get("kid", "k")})
    forged = jwt.encode({"alg": "RS256", "kid": header.get("kid", "k")}, {**payload, "sub": "mallory"}, mine)
    assert "signature" in refused(forged, Provider(provider))
    unsigned = ".".join([base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode(),
                         good.split(".")[1], ""])
    assert refused(unsigned, Provider(provider))
    time.sleep(3 + 60 + 1)  # the provider's tokens live 3 s; past the 60 s leeway allowed for clocks
    assert "expired" in refused(good, Provider(provider)).lower()


# --- a real browser --------------------------------------------------------------------------


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")
def test_chromium_signs_in_sees_its_sites_signs_out_and_is_refused_after(served, provider, tmp_path):
    c, runs = served
    provider_origin = provider
    with Chromium(allow=["127.0.0.1"]) as b:
        b.navigate(c.url + "/fleet")  # not signed in: to the provider's form
        assert b.wait_for("document.querySelector('input[name=sub]') !== null", 30)
        b.evaluate("document.querySelector('input[name=sub]').value = 'lena'")
        b.click("form button[type=submit]")
        assert b.wait_for("location.pathname === '/fleet' && document.readyState === 'complete'", 30)
        text = b.evaluate("document.body.innerText")
        assert "Göteborg" in text and "Stockholm" not in text and "sthlm" not in text
        assert "lena@example.org" in text
        shot = b.call("Page.captureScreenshot", {"format": "png"})["data"]
        (tmp_path / "site-lead.png").write_bytes(base64.b64decode(shot))
        assert b.evaluate("document.cookie") == ""  # HttpOnly: no script reads the session
        b.click("#signed-in button[type=submit]")
        assert b.wait_for("document.body && document.body.innerText.includes('signed out')", 30)
        b.navigate(c.url + "/fleet")
        assert b.wait_for("document.querySelector('input[name=sub]') !== null", 30)  # sent to sign in again
        assert b.evaluate("location.origin") == provider_origin
        b.navigate(c.url + "/api/v1/fleet")
        assert "read_token_required" in b.evaluate("document.body.innerText")


def test_a_site_lead_makes_and_withdraws_share_links_of_its_own_sites_only_with_the_csrf_token(served):
    c, _ = served
    lead, _ = sign_in(c, "lena")
    page = lead.get(c.url + "/admin/links", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert "<option>Göteborg</option>" in page and "Stockholm" not in page
    assert lead.post(c.url + "/admin/links", data={"action": "add", "site": "Göteborg", "days": "7"},
                     timeout=30).json()["error"] == "csrf"
    refused = lead.post(c.url + "/admin/links", data={"csrf": csrf, "action": "add", "site": "Stockholm", "days": "7"},
                        timeout=30)
    assert refused.status_code == 403
    made = lead.post(c.url + "/admin/links", data={"csrf": csrf, "action": "add", "site": "Göteborg", "days": "7"},
                     timeout=30)
    assert made.status_code == 200, made.text
    link = re.search(r'<code>([^<]+/share/rdy_[^<]+)</code>', made.text).group(1)
    assert link.startswith(c.url + "/share/")
    shared = requests.get(link, timeout=30)
    assert shared.status_code == 200 and "Ljuset" in shared.text and "gbg-mr1" not in shared.text
    token_id = re.search(r'name="id" value="(\d+)"', made.text).group(1)
    reader, _ = sign_in(c, "sven")  # a reader manages nothing
    assert reader.get(c.url + "/admin/links", timeout=30).status_code == 403
    assert reader.post(c.url + "/admin/links", data={"action": "revoke", "id": token_id}, timeout=30).status_code == 403
    assert lead.post(c.url + "/admin/links", data={"action": "revoke", "id": token_id}, timeout=30).status_code == 403
    assert requests.get(link, timeout=30).status_code == 200  # the refused forms changed nothing
    assert lead.post(c.url + "/admin/links", data={"csrf": csrf, "action": "revoke", "id": token_id},
                     timeout=30).status_code == 200
    assert requests.get(link, timeout=30).status_code == 404
    admin, _ = sign_in(c, "ada")
    log = admin.get(c.url + "/admin/audit", timeout=30).text
    assert log.count("csrf_refused") == 2 and f"share token {token_id}" in log


def test_the_session_cookie_is_secure_when_people_reach_the_collector_over_https(tmp_path):
    from readiness.collector.access import AccessConfig, SignIn as Settings
    from readiness.collector.signin import SignIn
    from readiness.collector.store import Store

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    try:
        def cookie(base: str) -> str:
            config = AccessConfig(Settings("https://id.example.org", "r", "s", base))
            return SignIn(store, config).cookie("secret", 60)

        tls, plain = cookie("https://fleet.example.org"), cookie("http://127.0.0.1:8080")
        assert tls.split("; ")[1:] == ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=60", "Secure"]
        assert "Secure" not in plain and "HttpOnly" in plain and "SameSite=Lax" in plain
        # one key per database: another SignIn on the same store reads the same cookie, another store's does not
        config = AccessConfig(Settings("https://id.example.org", "r", "s", "https://f.example.org"))
        value = tls.split(";")[0].split("=", 1)[1]
        assert SignIn(store, config).secret_of(f"{COOKIE}={value}") == "secret"
        other = Store(f"sqlite:///{tmp_path / 'other.db'}")
        other.migrate()
        try:
            assert SignIn(other, config).secret_of(f"{COOKIE}={value}") is None
        finally:
            other.close()
    finally:
        store.close()
