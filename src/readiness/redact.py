"""Secrets out of what is recorded: URLs without credentials, query or fragment, in any text.

A foundation module: the proxy settings (``measure``), a run's recorded configuration and
details (``run.config``, ``run.session``) and the upload path all pass what they keep through it.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A URL or proxy address inside free text: with a scheme, or bare with user:password@ before a host.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+|[^\s'\"<>/@:]+:[^\s'\"<>]*@[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` fit to be recorded: no user name or password, no query, no fragment.

    Whatever its shape: with or without a scheme, and with a password holding ``@``, ``/``
    or ``?`` (not valid in a URL, yet typed): everything up to the last ``@`` is credentials,
    and everything from the first ``?`` or ``#`` after the host is query or fragment.
    """
    m = _SCHEME.match(url)
    scheme, rest = (url[: m.end()], url[m.end():]) if m else ("", url)
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    return scheme + rest


def redact_text(text: str) -> str:
    """Free text (an error message, a detail) with every URL in it passed through redact_url."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_secrets(value: object) -> object:
    """``value`` (details of a check: dicts, lists, strings) with every URL in every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value
