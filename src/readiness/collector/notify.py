"""Sending one alert message on one channel: email, Microsoft Teams and Slack through apprise
(a well-kept library that speaks each service's protocol), and the generic webhook here.

The webhook is JSON, signed with HMAC-SHA256 over the exact body bytes with the channel's
secret, in the header ``X-Readiness-Signature: sha256=<hex>`` (apprise's json:// cannot sign).
The body carries the message's ``id`` (the same on every retry: a receiver drops one it has
seen) and its ``sent`` time. Every send is bounded by the alert file's ``delivery_timeout``.

Sits below ``collector.alerts`` (which calls :func:`send` from its delivery thread) and the
``serve alerts test`` command (:func:`send_test`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import quote, urlsplit

from readiness.collector.alertconfig import AlertConfig, Channel
from readiness.collector.alertmessages import Message, sample_message

SIGNATURE_HEADER = "X-Readiness-Signature"


class SendError(Exception):
    """Not sent; ``str()`` is why, in one line."""


def signature(secret: str, body: bytes) -> str:
    """The header's value for ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(message: Message) -> bytes:
    facts = {k: v for k, v in message.facts.items() if k not in ("cause_text",)}
    return json.dumps({"id": message.id, "title": message.title, "text": message.text, **{"facts": facts}},
                      ensure_ascii=False, sort_keys=True).encode("utf-8")


def _webhook(ch: Channel, message: Message, timeout: float) -> None:
    import requests  # lazy: the server extra (Authlib's HTTP client already)

    body = webhook_body(message)
    headers = {"Content-Type": "application/json; charset=utf-8", SIGNATURE_HEADER: signature(ch.secret, body),
               "User-Agent": "readiness-alerts"}
    deadline = time.monotonic() + timeout
    try:
        # (connect, read) timeouts, and the whole answer read within the deadline
        with requests.post(ch.url, data=body, headers=headers, timeout=(timeout, timeout), stream=True,
                           allow_redirects=False) as resp:
            for _ in resp.iter_content(65536):
                if time.monotonic() > deadline:
                    raise SendError(f"no whole answer within {timeout:g} s")
            status = resp.status_code
    except requests.RequestException as exc:
        raise SendError(f"{urlsplit(ch.url).hostname}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not 200 <= status < 300:
        raise SendError(f"{urlsplit(ch.url).hostname} answered {status}")


def apprise_url(ch: Channel) -> str:
    """The channel as apprise takes it: mailto(s)://, or the service's own webhook URL."""
    if ch.kind != "email":
        return ch.url
    scheme = "mailto" if ch.starttls else "mailtos"
    login = f"{quote(ch.user, safe='')}:{quote(ch.password, safe='')}@" if ch.user else ""
    to = ",".join(quote(t, safe="@") for t in ch.to)
    mode = "starttls" if ch.starttls else "ssl"
    return (f"{scheme}://{login}{ch.host}:{ch.port}/?mode={mode}&from={quote(ch.sender, safe='@')}&to={to}"
            "&smtp=" + quote(ch.host, safe=""))


def _apprise(ch: Channel, message: Message, timeout: float) -> None:
    import apprise  # lazy: the server extra, only with an alert file

    asset = apprise.AppriseAsset(async_mode=False)
    sender = apprise.Apprise(asset=asset)
    url = apprise_url(ch)
    if not sender.add(url):
        raise SendError(f"apprise does not take the {ch.kind} address of channel {ch.name}")
    for service in sender:  # bounded: connect and read timeouts of the service's own requests
        service.socket_connect_timeout = timeout
        service.socket_read_timeout = timeout
    html = ch.kind == "email"
    with apprise.LogCapture(level=apprise.logging.WARNING, fmt="%(message)s") as logs:
        ok = sender.notify(title=message.title, body=message.html if html else message.text,
                           body_format=apprise.NotifyFormat.HTML if html else apprise.NotifyFormat.MARKDOWN)
        said = logs.getvalue() if hasattr(logs, "getvalue") else ""
    if not ok:
        reason = " ".join(line.strip() for line in said.splitlines() if line.strip())[-300:]
        raise SendError(reason or f"apprise could not send on channel {ch.name}")


def send(cfg: AlertConfig, channel: str, message: Message) -> None:
    """Send ``message`` on the named channel; ``SendError`` (one line) when it did not go."""
    ch = cfg.channels[channel]
    if ch.kind == "webhook":
        _webhook(ch, message, cfg.delivery_timeout_s)
    else:
        _apprise(ch, message, cfg.delivery_timeout_s)


def send_test(cfg: AlertConfig) -> list[tuple[str, str | None]]:
    """A test message on every channel: (channel, None when sent, else why not)."""
    message = sample_message(cfg)
    out: list[tuple[str, str | None]] = []
    for name in cfg.channels:
        try:
            send(cfg, name, message)
        except Exception as exc:  # noqa: BLE001 - each channel's outcome is reported, one line each
            out.append((name, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
        else:
            out.append((name, None))
    return out
