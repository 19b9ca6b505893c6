"""The alerts' messages: a closed group's facts (``message_facts``) and their words
(``render``: a title, plain text and HTML from templates in the list's language, HTML escaped),
and the test message ``readiness serve alerts test`` sends. The engine is ``alerts``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

from readiness.collector.alertconfig import AlertConfig
from readiness.collector.engine import utcnow
from readiness.i18n.format import word
from readiness.measure.inventory import CLIENTS

SEP = "\x1f"
OPEN, RESOLVED = "open", "resolved"


@dataclass
class Message:
    """One message: the words in the list's language and the facts a webhook receives."""

    id: str
    title: str
    text: str
    html: str
    facts: dict[str, Any]


@lru_cache(maxsize=1)
def _templates() -> Any:
    import jinja2  # lazy: only a collector with alerts renders messages

    def load(name: str) -> str:
        return resources.files("readiness.templates").joinpath(name).read_text(encoding="utf-8")

    # HTML escaped (room and site names are the agents' labels); plain text as it is
    return jinja2.Environment(loader=jinja2.FunctionLoader(load), autoescape=lambda name: (name or "").endswith(".html"),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def cause_words(lang: str, kind: str, subject: str) -> str:
    title = CLIENTS.get(subject, {}).get("title", subject)
    return word(lang, f"step5.action.{kind}", subject=title)


def render(cfg: AlertConfig, facts: dict[str, Any]) -> Message:
    """The message for a closed group (``facts``: as :meth:`Alerts._message_facts` makes them)."""
    lang = cfg.language
    n, event, state = len(facts["rooms"]), facts["event"], facts["state"]
    args = {"site": facts["site"] or word(lang, "alert.no_site"), "n": n, "cause": facts.get("cause_text", ""),
            "room": facts["rooms"][0]["room"] if n else ""}
    if event == "regression":
        key = "alert.title_regression" if state == OPEN else "alert.title_regression_cleared"
        args["n"] = len(facts["items"])
    elif event == "test":
        key = "alert.test_title"
    else:
        base = {"not_ready": "not_ready", "site_cause": "not_ready", "not_reporting": "not_reporting"}[event]
        key = f"alert.title_{base}{'_back' if state == RESOLVED else ''}{'_one' if n == 1 else ''}"
        if n == 0:  # a site-wide cause cleared while its rooms still fail something else
            key = "alert.title_site_cleared"
    title = word(lang, key, **args)
    env = _templates()
    ctx = {"f": facts, "title": title, "lang": lang, "w": lambda k, **a: word(lang, f"alert.{k}", **a)}
    text = env.get_template("alert.txt.j2").render(ctx)
    html = env.get_template("alert.html").render(ctx)
    return Message(facts["id"], title, text, html, facts)


def sample_message(cfg: AlertConfig) -> Message:
    """The message ``readiness serve alerts test`` sends on every channel."""
    facts = {"id": uuid.uuid4().hex, "event": "test", "state": OPEN, "site": "", "rooms": [], "items": [],
             "sent": utcnow().isoformat(timespec="seconds"), "fleet_link": f"{cfg.base_url}/fleet" if cfg.base_url else ""}
    return render(cfg, facts)


def _age(lang: str, seconds: float) -> str:
    if seconds < 7200:
        return word(lang, "alert.age_minutes", n=round(seconds / 60))
    if seconds < 2 * 86400:
        return word(lang, "alert.age_hours", n=round(seconds / 3600, 1))
    return word(lang, "alert.age_days", n=round(seconds / 86400, 1))



def message_facts(cfg: AlertConfig, group: str, events: list[tuple[str, dict[str, Any]]], now: datetime,
                  not_reporting_after: timedelta) -> dict[str, Any]:
    """What a closed group's message says (``render``'s facts): its rooms with their links, the
    fix and source of its cause, the regressions' items."""
    site, kind, subject, state = group.split(SEP)
    base = cfg.base_url
    names = [e for e, _ in events]
    event = "regression" if "regression" in names else "not_reporting" if "not_reporting" in names else (
        "not_ready" if "not_ready" in names else "site_cause")
    rooms, seen, fix, source, label = [], set(), "", "", ""
    for e, d in events:
        if e in ("not_ready", "not_reporting") and d.get("room") not in seen:
            seen.add(d.get("room"))
            rooms.append({"room": d.get("room", ""), "run_id": d.get("run_id", ""), "started": d.get("started", ""),
                          "link": f"{base}/runs/{d['run_id']}" if base and d.get("run_id") else ""})
        for m in d.get("members", ()):  # a site-wide cause names its rooms, whatever their own first cause
            if m["room"] not in seen:
                seen.add(m["room"])
                rooms.append({"room": m["room"], "run_id": m["run_id"], "started": "",
                              "link": f"{base}/runs/{m['run_id']}" if base else ""})
        for c in d.get("causes", ()):
            if c["kind"] == kind and c["subject"] == subject and not fix:
                fix, source, label = c["fix"], c["source"], c["label"]
                break
    return {
        "id": uuid.uuid4().hex, "event": event, "state": state, "site": site, "kind": kind, "subject": subject,
        "cause_text": cause_words(cfg.language, kind, subject) if event in ("not_ready", "site_cause") else "",
        "site_wide": "site_cause" in names, "rooms": rooms, "fix": fix, "source": source, "label": label,
        "items": [{"key": d["key"], "text": d["text"]} for e, d in events if e == "regression"],
        "age": _age(cfg.language, not_reporting_after.total_seconds()),
        "fleet_link": f"{base}/fleet" if base else "", "sent": now.isoformat(timespec="seconds"),
    }
