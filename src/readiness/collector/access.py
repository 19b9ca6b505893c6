"""Who may see what on the collector: the callers, their roles and sites, and the access
configuration (``readiness serve --access FILE``, TOML).

Sits beside ``collector.http`` (which asks ``Caller`` what a request may see) and below the
``serve`` command (which loads the file). Sign-in itself (OpenID Connect) is ``collector.signin``.

Roles, from the sign-in's claim through the file's ``[[grant]]`` tables:

- ``admin``: tokens, links, settings, every site, the audit log;
- ``site_lead``: read, and manage share links, for the sites listed;
- ``reader``: read the sites listed;
- ``auditor``: read every site, and the audit log; changes nothing.

Read tokens stay for scripts and Prometheus: one made with ``--site`` reads that site only.
This machine itself (loopback, not forwarded) reads everything, as before.

The file::

    [sign_in]                  # optional: without it, nobody signs in (tokens and this machine only)
    issuer = "https://login.example.org/realms/corp"   # discovery: ISSUER/.well-known/openid-configuration
    client_id = "readiness"
    client_secret_env = "READINESS_OIDC_SECRET"        # the secret stays out of the file
    base_url = "https://fleet.example.org"             # the redirect URI is BASE_URL/auth/callback
    claim = "groups"                                   # the ID token's claim the grants match
    scopes = ["openid", "profile", "email"]
    session_hours = 8
    local_read = true          # false: a browser on the server itself signs in too

    [[grant]]
    value = "fleet-admins"     # a value of the claim (a list claim matches any member)
    role = "admin"

    [[grant]]
    value = "gbg-leads"
    role = "site_lead"
    sites = ["Göteborg"]

    [audit]
    keep_days = 400            # the audit log's retention
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterable

from readiness.collector.tomlfile import read_toml

ROLES = ("admin", "site_lead", "reader", "auditor")
AUDIT_KEEP_DAYS = 400


class AccessError(Exception):
    """An access file that cannot be used; ``str()`` is "file:line: message"."""


@dataclass(frozen=True)
class Grant:
    value: str
    role: str
    sites: frozenset[str]


@dataclass(frozen=True)
class SignIn:
    issuer: str
    client_id: str
    client_secret: str
    base_url: str
    claim: str = "groups"
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    session_hours: float = 8.0
    local_read: bool = True  # this machine reads everything without signing in (scripts on the server)


@dataclass(frozen=True)
class AccessConfig:
    sign_in: SignIn | None = None
    grants: tuple[Grant, ...] = ()
    audit_keep_days: int = AUDIT_KEEP_DAYS


@dataclass(frozen=True)
class Caller:
    """Who is asking. ``sites`` None: every site; ``lead_sites``: where links may be managed."""

    name: str
    role: str  # one of ROLES, or "token" (a read token), "local" (this machine), "public" (--public-read)
    sites: frozenset[str] | None = None
    lead_sites: frozenset[str] = frozenset()
    csrf: str = ""  # a signed-in person's form token
    session: str = ""  # a signed-in person's session secret

    def sees(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    @property
    def audits(self) -> bool:
        return self.role in ("admin", "auditor", "local")

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def manages(self, site: str) -> bool:
        return self.admin or site in self.lead_sites


LOCAL = Caller("this machine", "local")
PUBLIC = Caller("anyone", "public")


def caller_from_claims(config: AccessConfig, name: str, claims: dict[str, Any]) -> Caller | None:
    """The caller the grants make of an ID token's claims, or None when no grant matches (that
    person may sign in to nothing). Several grants add up; admin and auditor see every site."""
    if config.sign_in is None:
        return None
    raw = claims.get(config.sign_in.claim)
    values = {str(v) for v in raw} if isinstance(raw, list) else {str(raw)} if raw is not None else set()
    matched = [g for g in config.grants if g.value in values]
    if not matched:
        return None
    roles = {g.role for g in matched}
    if "admin" in roles:
        return Caller(name, "admin")
    lead = frozenset().union(*(g.sites for g in matched if g.role == "site_lead"))
    if "auditor" in roles:
        return Caller(name, "auditor", None, lead)
    sites = frozenset().union(*(g.sites for g in matched))
    return Caller(name, "site_lead" if lead else "reader", sites, lead)


def caller_of(name: str, role: str, sites: Iterable[str] | None, lead_sites: Iterable[str] = (), **more: Any) -> Caller:
    return Caller(name, role, None if sites is None else frozenset(sites), frozenset(lead_sites), **more)


# --- expiry -------------------------------------------------------------------------------

_SPAN = re.compile(r"^\s*(\d{1,12})\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = timedelta(days=36500)


def parse_span(text: Any) -> timedelta:
    """``30s``, ``2m``, ``12h``, ``30d``, ``2w`` as a time span: the one reader of every span the
    CLI and the configuration files take (``--since``, ``--expires``, ``--not-reporting-after``,
    the alert file's ``group_within``). ValueError with a plain reason for anything else: not
    text, no unit, zero, negative, longer than a hundred years."""
    m = _SPAN.match(text) if isinstance(text, str) else None
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{text!r} is not a time span such as 30s, 2m, 12h, 30d or 2w")
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds > _LONGEST.total_seconds():  # compared as a number: timedelta itself overflows first
        raise ValueError(f"{text!r} is longer than a hundred years")
    return timedelta(seconds=seconds)


# --- the fleet a caller may see -------------------------------------------------------------


def scoped(fleet: Any, sites: frozenset[str], read: int, per_day: dict[Any, Any]) -> Any:
    """``fleet`` with only the runs of ``sites``, before any figure is computed from it: counts,
    action lists and names then never include another site. ``read`` and ``per_day`` are the
    database's counts over those sites; what cannot be told apart by site (rows skipped as
    unreadable, the database's address) is left out."""
    runs = [r for r in fleet.runs if r.site in sites]
    return replace(fleet, runs=runs, skipped=[], results_read=read, superseded=max(0, read - len(runs)),
                   duplicates=0, per_day=per_day, paths=[],
                   compliance=None)  # the caller computes it again from these sites' days


# --- the file -----------------------------------------------------------------------------


def _line(lines: list[str], pattern: str, nth: int = 0) -> int | None:
    rx = re.compile(pattern)
    hits = [i + 1 for i, line in enumerate(lines) if rx.match(line)]
    return hits[nth] if nth < len(hits) else (hits[-1] if hits else None)


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> AccessConfig:
    """The access file, checked whole before the server starts (unknown keys refused)."""
    import os

    env = os.environ if environ is None else environ
    origin = str(path)
    data, lines = read_toml(path, AccessError)

    def err(line: int | None, message: str) -> AccessError:
        return AccessError(f"{origin}:{line}: {message}" if line else f"{origin}: {message}")

    def key_line(key: str, header: str | None = None, nth: int = 0) -> int | None:
        return _line(lines, rf"\s*{re.escape(key)}\s*=") if header is None else (
            _line(lines, rf"\s*\[+\s*{re.escape(header)}\s*\]+", nth))

    unknown = set(data) - {"sign_in", "grant", "audit"}
    if unknown:
        name = sorted(unknown)[0]
        raise err(key_line(name) or key_line("", name), f"unknown key {name!r} (known: sign_in, grant, audit)")
    sign_in = None
    if "sign_in" in data:
        s = data["sign_in"]
        where = key_line("", "sign_in")
        if not isinstance(s, dict):
            raise err(where, "sign_in must be a table")
        known = {"issuer", "client_id", "client_secret_env", "base_url", "claim", "scopes", "session_hours", "local_read"}
        for k in s:
            if k not in known:
                raise err(key_line(k), f"unknown key {k!r} in [sign_in] (known: {', '.join(sorted(known))})")
        for k in ("issuer", "client_id", "client_secret_env", "base_url"):
            if not isinstance(s.get(k), str) or not s[k].strip():
                raise err(key_line(k) or where, f"[sign_in] needs {k} (text)")
        for k in ("issuer", "base_url"):
            if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", s[k].strip()):
                raise err(key_line(k), f"{k} must be an address such as https://login.example.org/realm")
        secret = env.get(s["client_secret_env"], "")
        if not secret:
            raise err(key_line("client_secret_env"),
                      f"the environment variable {s['client_secret_env']} (the client secret) is not set")
        scopes = s.get("scopes", ["openid", "profile", "email"])
        if not isinstance(scopes, list) or "openid" not in scopes or not all(isinstance(x, str) for x in scopes):
            raise err(key_line("scopes"), "scopes must be a list of texts that holds \"openid\"")
        hours = s.get("session_hours", 8)
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0.05 <= hours <= 24 * 30:
            raise err(key_line("session_hours"), "session_hours must be a number of hours from 0.05 to 720")
        claim = s.get("claim", "groups")
        if not isinstance(claim, str) or not claim:
            raise err(key_line("claim"), "claim must be the name of an ID token claim, e.g. groups or roles")
        local_read = s.get("local_read", True)
        if not isinstance(local_read, bool):
            raise err(key_line("local_read"), "local_read must be true or false")
        sign_in = SignIn(s["issuer"].strip().rstrip("/"), s["client_id"].strip(), secret, s["base_url"].strip().rstrip("/"),
                         claim, tuple(scopes), float(hours), local_read)
    grants = []
    raw_grants = data.get("grant", [])
    if not isinstance(raw_grants, list):
        raise err(key_line("", "grant"), "grant must be an array of tables: [[grant]]")
    for n, g in enumerate(raw_grants):
        where = key_line("", "grant", n)
        if not isinstance(g, dict):
            raise err(where, "each [[grant]] is a table")
        for k in g:
            if k not in ("value", "role", "sites"):
                raise err(where, f"unknown key {k!r} in [[grant]] (known: value, role, sites)")
        if not isinstance(g.get("value"), str) or not g["value"]:
            raise err(where, "[[grant]] needs value: the claim's value it is for")
        if g.get("role") not in ROLES:
            raise err(where, f"[[grant]] role must be one of {', '.join(ROLES)}")
        sites = g.get("sites", [])
        if not isinstance(sites, list) or not all(isinstance(x, str) and x.strip() for x in sites):
            raise err(where, "sites must be a list of site names")
        if g["role"] in ("site_lead", "reader") and not sites:
            raise err(where, f"a {g['role']} grant lists its sites: sites = [\"NAME\"]")
        if g["role"] in ("admin", "auditor") and sites:
            raise err(where, f"an {g['role']} sees every site: leave sites out")
        grants.append(Grant(g["value"], g["role"], frozenset(x.strip() for x in sites)))
    if grants and sign_in is None:
        raise err(key_line("", "grant"), "[[grant]] needs [sign_in]: roles come from the sign-in's claim")
    keep = AUDIT_KEEP_DAYS
    if "audit" in data:
        a = data["audit"]
        if not isinstance(a, dict) or set(a) - {"keep_days"}:
            raise err(key_line("", "audit"), "[audit] holds keep_days only")
        keep = a.get("keep_days", keep)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= 36500:
            raise err(key_line("keep_days"), "keep_days must be a whole number of days from 1 to 36500")
    return AccessConfig(sign_in, tuple(grants), keep)

