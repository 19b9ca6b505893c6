"""``--server URL``: the organisation's own ``readiness serve``, as one typed value.

Parsed once, at the configuration's border (``readiness.run.config``), into a
:class:`SiteServer`; checked once before anything is measured (``readiness.run.target`` asks
``GET /__info`` and fills in the STUN port the server advertises); then carried, whole, in the
run's choices (``RunChoices.server``) to every check. Nothing else parses the URL or asks
``/__info`` again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from readiness.i18n.format import Refused

DEFAULT_STUN_PORT = 3478  # readiness serve's documented default; /__info tells the real one


@dataclass(frozen=True)
class SiteServer:
    """scheme://host[:port] of a ``readiness serve`` (a path in the URL is ignored), and the STUN
    port it advertised (None until :func:`readiness.run.target.check_server` has asked)."""

    scheme: str
    host: str
    port: int
    hostheader: str  # host[:port] as typed: never credentials (refused at parse time)
    stun_port: int | None = None
    given: str = field(default="", compare=False)  # as typed, for `readiness config show`

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.hostheader}"

    def __str__(self) -> str:
        return self.url

    def with_stun_port(self, port: int) -> "SiteServer":
        return replace(self, stun_port=port)

    @classmethod
    def parse(cls, text: str) -> "SiteServer":
        """A URL as typed (a bare ``host[:port]`` means http); ValueError with a sentence that
        starts "must ..." for anything else. The text is never echoed when it holds credentials."""
        text = text.strip()
        if "@" in text:  # user:password@host, whatever the rest looks like
            raise Refused("config.must_no_credentials")
        try:
            parts = urlsplit(text if "://" in text else f"http://{text}")
            port = parts.port  # raises on a port that is not a number or out of range
        except ValueError:
            parts, port = None, None
        if parts is not None and parts.scheme not in ("http", "https"):
            raise Refused("config.must_http_url", value=repr(text))
        if parts is None or not parts.hostname:
            raise Refused("config.must_url", value=repr(text))
        return cls(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), parts.netloc,
                   given=text)
