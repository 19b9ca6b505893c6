"""The alert rules (``readiness serve --alerts FILE``, TOML), checked whole before the server
starts: every mistake is one line naming the file, the line and the key (unknown keys, a bad
URL, a bad time span, a secret that is not there).

Sits below ``collector.alerts`` (which evaluates and delivers) and ``collector.notify`` (which
sends); ``service`` loads the file. The file::

    language = "en"                  # or "sv": the messages' language
    base_url = "https://fleet.example.org"   # optional: links to /fleet and /runs/<id>
    group_within = "2m"              # events of one site and cause this close go in one message
    delivery_timeout = "10s"         # one attempt to send at most this long

    [channel.it-mail]
    type = "email"
    host = "smtp.example.org"
    port = 587
    starttls = true                  # false: SMTP over TLS from the start (port 465)
    user = "alerts@example.org"
    password_env = "SMTP_PASSWORD"   # secrets: from the environment (or password = "...")
    from = "alerts@example.org"
    to = ["it@example.org"]

    [channel.hook]
    type = "webhook"                 # JSON, signed: X-Readiness-Signature: sha256=<hex>
    url = "https://hooks.example.org/readiness"
    secret_env = "READINESS_HOOK_SECRET"

    [channel.teams]
    type = "teams"                   # the URL Teams gives (Workflows or an incoming webhook),
    url_env = "TEAMS_WEBHOOK_URL"    # or apprise's form: workflows://HOST/WORKFLOW/SIGNATURE

    [channel.slack]
    type = "slack"
    url_env = "SLACK_WEBHOOK_URL"    # https://hooks.slack.com/services/...

    [[rule]]
    events = ["not_ready", "not_reporting", "site_cause", "regression"]   # default: all
    channels = ["it-mail", "teams"]
    sites = ["Göteborg"]             # optional: only these sites (default: every site)

    [[silence]]                      # maintenance: nothing sent for the site (or the room)
    site = "Göteborg"
    room = "4.12"                    # optional
    start = 2026-12-05T08:00:00Z     # a one-off window ...
    end = 2026-12-05T17:00:00Z

    [[silence]]
    site = "Stockholm"
    days = ["sat", "sun"]            # ... or a weekly one, in UTC
    from = "00:00"
    to = "24:00"
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from readiness.i18n import languages
from readiness.collector.access import parse_span
from readiness.collector.tomlfile import read_toml

EVENTS = ("not_ready", "not_reporting", "site_cause", "regression")
KINDS = ("email", "webhook", "teams", "slack")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class AlertConfigError(Exception):
    """The alert file cannot be used; ``str()`` is one line: file:line: what is wrong."""


@dataclass(frozen=True)
class Channel:
    name: str
    kind: str  # one of KINDS
    url: str = ""  # webhook, teams, slack
    secret: str = ""  # webhook: the HMAC key
    host: str = ""  # email
    port: int = 587
    starttls: bool = True
    user: str = ""
    password: str = ""
    sender: str = ""
    to: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    events: tuple[str, ...]
    channels: tuple[str, ...]
    sites: tuple[str, ...] = ()  # empty: every site

    def matches(self, event: str, site: str) -> bool:
        return event in self.events and (not self.sites or site in self.sites)


@dataclass(frozen=True)
class Silence:
    site: str
    room: str = ""  # empty: the whole site
    start: datetime | None = None  # a one-off window
    end: datetime | None = None
    days: tuple[int, ...] = ()  # a weekly window: weekdays (Monday 0), UTC
    since: time | None = None
    until_minutes: int = 0  # minutes after midnight the weekly window ends (24:00 = 1440)

    def covers(self, site: str, room: str, at: datetime) -> bool:
        if site != self.site or (self.room and room != self.room):
            return False
        if self.start is not None and self.end is not None:
            return self.start <= at < self.end
        at = at.astimezone(timezone.utc)
        minute = at.hour * 60 + at.minute
        begin = self.since.hour * 60 + self.since.minute if self.since else 0
        if begin < self.until_minutes:  # within one day
            return at.weekday() in self.days and begin <= minute < self.until_minutes
        # across midnight: from the day's ``from`` to the next day's ``to``
        return (at.weekday() in self.days and minute >= begin) or (
            (at.weekday() - 1) % 7 in self.days and minute < self.until_minutes)


@dataclass(frozen=True)
class AlertConfig:
    path: str
    language: str = "en"
    base_url: str = ""
    group_within_s: float = 120.0
    delivery_timeout_s: float = 10.0
    channels: dict[str, Channel] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    silences: tuple[Silence, ...] = ()

    def channels_for(self, event: str, site: str) -> list[str]:
        """The channels a rule sends this event (of this site) to, each once, in file order."""
        out: list[str] = []
        for rule in self.rules:
            if rule.matches(event, site):
                out.extend(c for c in rule.channels if c not in out)
        return out

    def silenced(self, site: str, room: str, at: datetime) -> bool:
        return any(s.covers(site, room, at) for s in self.silences)


def _line(lines: list[str], pattern: str, nth: int = 0) -> int | None:
    rx = re.compile(pattern)
    hits = [i + 1 for i, line in enumerate(lines) if rx.match(line)]
    return hits[nth] if nth < len(hits) else (hits[-1] if hits else None)


def _url_ok(url: str, schemes: tuple[str, ...] = ("https", "http")) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname) and not any(c.isspace() for c in url)


def load_alerts(path: str | Path, environ: Mapping[str, str] | None = None) -> AlertConfig:
    """The alert file, checked whole (unknown keys, URLs, spans, secrets); ``AlertConfigError``."""
    env = os.environ if environ is None else environ
    origin = str(path)
    data, lines = read_toml(path, AlertConfigError)

    def err(line: int | None, message: str) -> AlertConfigError:
        return AlertConfigError(f"{origin}:{line}: {message}" if line else f"{origin}: {message}")

    def key_line(key: str, after: int | None = None) -> int | None:
        rx = re.compile(rf"\s*\"?{re.escape(key)}\"?\s*=")
        start = after or 0
        for i in range(start, len(lines)):
            if rx.match(lines[i]):
                return i + 1
        return after

    def header_line(pattern: str, nth: int = 0) -> int | None:
        return _line(lines, rf"\s*\[+\s*{pattern}\s*\]+", nth)

    def unknown(table: dict[str, Any], known: set[str], where: str, at: int | None) -> None:
        for k in table:
            if k not in known:
                raise err(key_line(k, at), f"unknown key {k!r} in {where} (known: {', '.join(sorted(known))})")

    def text_of(table: dict[str, Any], key: str, where: str, at: int | None, required: bool = True) -> str:
        value = table.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise err(key_line(key, at) or at, f"{where} needs {key} (text)")
        return value.strip()

    def secret(table: dict[str, Any], key: str, where: str, at: int | None, required: bool = True) -> str:
        """``key = "..."`` or ``key_env = "NAME"`` (the environment variable holding it)."""
        if key in table and f"{key}_env" in table:
            raise err(key_line(key, at), f"{where}: give {key} or {key}_env, not both")
        if f"{key}_env" in table:
            name = text_of(table, f"{key}_env", where, at)
            value = env.get(name, "")
            if not value:
                raise err(key_line(f"{key}_env", at), f"{where}: the environment variable {name} "
                                                       f"({key}_env) is not set or empty")
            return value
        return text_of(table, key, where, at, required)

    top = {"language", "base_url", "group_within", "delivery_timeout", "channel", "rule", "silence"}
    unknown(data, top, "the file", None)
    language = data.get("language", "en")
    if language not in languages():
        raise err(key_line("language"), f"language {language!r} is not one of {', '.join(languages())}")
    base_url = data.get("base_url", "")
    if not isinstance(base_url, str) or base_url and not _url_ok(base_url):
        raise err(key_line("base_url"), f"base_url {base_url!r} is not an http(s) address such as https://fleet.example.org")
    spans = {}
    for key, default in (("group_within", 120.0), ("delivery_timeout", 10.0)):
        try:
            spans[key] = parse_span(data[key]).total_seconds() if key in data else default
        except ValueError as exc:
            raise err(key_line(key), f"{key}: {exc}") from None
    if spans["delivery_timeout"] > 600:
        raise err(key_line("delivery_timeout"), "delivery_timeout: at most 10m")

    channels: dict[str, Channel] = {}
    raw_channels = data.get("channel", {})
    if not isinstance(raw_channels, dict):
        raise err(key_line("channel"), "channel must be tables: [channel.NAME]")
    for name, c in raw_channels.items():
        at = header_line(rf"channel\.\"?{re.escape(name)}\"?")
        where = f"[channel.{name}]"
        if not isinstance(c, dict):
            raise err(at, f"{where} must be a table")
        if not _NAME.match(name):
            raise err(at, f"channel name {name!r}: letters, digits, '.', '_' and '-' only")
        kind = c.get("type")
        if kind not in KINDS:
            raise err(key_line("type", at) or at, f"{where}: type must be one of {', '.join(KINDS)}")
        if kind == "email":
            unknown(c, {"type", "host", "port", "starttls", "user", "password", "password_env", "from", "to"}, where, at)
            host = text_of(c, "host", where, at)
            port = c.get("port", 587 if c.get("starttls", True) else 465)
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                raise err(key_line("port", at), f"{where}: port must be a number 1..65535")
            starttls = c.get("starttls", True)
            if not isinstance(starttls, bool):
                raise err(key_line("starttls", at), f"{where}: starttls must be true or false")
            user = text_of(c, "user", where, at, required=False)
            password = secret(c, "password", where, at, required=bool(user))
            sender = text_of(c, "from", where, at)
            to = c.get("to")
            if isinstance(to, str):
                to = [to]
            if not isinstance(to, list) or not to or not all(isinstance(t, str) and "@" in t for t in to):
                raise err(key_line("to", at) or at, f"{where}: to must be a list of email addresses")
            if "@" not in sender:
                raise err(key_line("from", at), f"{where}: from {sender!r} is not an email address")
            channels[name] = Channel(name, kind, host=host, port=port, starttls=starttls, user=user, password=password,
                                     sender=sender, to=tuple(t.strip() for t in to))
        else:
            known = {"type", "url", "url_env"} | ({"secret", "secret_env"} if kind == "webhook" else set())
            unknown(c, known, where, at)
            url = secret(c, "url", where, at)
            # Teams and Slack: the URL the service gives, or apprise's own form of it
            schemes = {"webhook": ("https", "http"), "teams": ("https", "workflows", "msteams"),
                       "slack": ("https", "slack")}[kind]
            if not _url_ok(url, schemes):
                raise err(key_line("url_env" if "url_env" in c else "url", at),
                          f"{where}: url is not an address such as {schemes[0]}://HOST/..."
                          + (f" (or {', '.join(s + '://' for s in schemes[1:])})" if len(schemes) > 1 and kind != "webhook" else ""))
            key = secret(c, "secret", where, at) if kind == "webhook" else ""
            if kind == "webhook" and len(key) < 16:
                raise err(key_line("secret_env" if "secret_env" in c else "secret", at),
                          f"{where}: the signing secret is at least 16 characters")
            channels[name] = Channel(name, kind, url=url, secret=key)

    rules = []
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise err(key_line("rule"), "rule must be tables: [[rule]]")
    for n, r in enumerate(raw_rules):
        at = header_line("rule", n)
        if not isinstance(r, dict):
            raise err(at, "[[rule]] must be a table")
        unknown(r, {"events", "channels", "sites"}, "[[rule]]", at)
        events = r.get("events", list(EVENTS))
        if not isinstance(events, list) or not events or any(e not in EVENTS for e in events):
            raise err(key_line("events", at) or at, f"[[rule]]: events must be a list of {', '.join(EVENTS)}")
        names = r.get("channels")
        if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
            raise err(key_line("channels", at) or at, "[[rule]] needs channels (a list of channel names)")
        for x in names:
            if x not in channels:
                raise err(key_line("channels", at) or at, f"[[rule]]: no channel {x!r} (define [channel.{x}])")
        sites = r.get("sites", [])
        if not isinstance(sites, list) or not all(isinstance(s, str) and s.strip() for s in sites):
            raise err(key_line("sites", at) or at, "[[rule]]: sites must be a list of site names")
        rules.append(Rule(tuple(events), tuple(names), tuple(s.strip() for s in sites)))

    silences = []
    raw_silences = data.get("silence", [])
    if not isinstance(raw_silences, list):
        raise err(key_line("silence"), "silence must be tables: [[silence]]")
    for n, s in enumerate(raw_silences):
        at = header_line("silence", n)
        if not isinstance(s, dict):
            raise err(at, "[[silence]] must be a table")
        unknown(s, {"site", "room", "start", "end", "days", "from", "to"}, "[[silence]]", at)
        site = text_of(s, "site", "[[silence]]", at)
        room = text_of(s, "room", "[[silence]]", at, required=False)
        if "start" in s or "end" in s:
            if any(k in s for k in ("days", "from", "to")):
                raise err(at, "[[silence]]: give start and end (one window) or days, from and to (weekly), not both")
            start, end = s.get("start"), s.get("end")
            for k, v in (("start", start), ("end", end)):
                if not isinstance(v, datetime) or v.tzinfo is None:
                    raise err(key_line(k, at) or at, f"[[silence]]: {k} must be a time with its zone, "
                                                     "such as 2026-12-05T08:00:00Z")
            if end <= start:
                raise err(key_line("end", at), "[[silence]]: end must come after start")
            silences.append(Silence(site, room, start=start, end=end))
            continue
        days = s.get("days")
        if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
            raise err(key_line("days", at) or at, f"[[silence]]: give start and end, or days (a list of "
                                                  f"{', '.join(DAYS)}) with from and to")
        clock: dict[str, tuple[int, int]] = {}
        for k in ("from", "to"):
            v = s.get(k)
            m = _CLOCK.match(v) if isinstance(v, str) else None
            if not m:
                raise err(key_line(k, at) or at, f"[[silence]]: {k} must be a time of day HH:MM (UTC), such as 22:00")
            clock[k] = (24, 0) if v == "24:00" else (int(m.group(1)), int(m.group(2)))
        if clock["from"] == clock["to"]:
            raise err(key_line("to", at), "[[silence]]: from and to are the same time")
        if clock["from"] == (24, 0):
            raise err(key_line("from", at), "[[silence]]: from must be before 24:00")
        silences.append(Silence(site, room, days=tuple(DAYS.index(d) for d in days),
                                since=time(*clock["from"]), until_minutes=clock["to"][0] * 60 + clock["to"][1]))
    return AlertConfig(origin, language, base_url.rstrip("/"), spans["group_within"], spans["delivery_timeout"],
                       channels, tuple(rules), tuple(silences))
