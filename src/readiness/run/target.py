"""``--server URL``: checked once, before anything is measured.

A malformed URL, a scheme other than http/https, or a server that does not answer
``GET /__info`` as a ``readiness serve`` does is a usage error (exit 2) in one plain sentence —
not five UNKNOWN items a minute later. The URL's shape is parsed by the network checks' own
parser (``checks._netcommon.Server``), so both read it the same way.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl


class ServerError(ValueError):
    """``--server`` cannot be used; ``str()`` is one plain sentence."""


def check_server(url: str, timeout_s: float = 5.0) -> str:
    """The server's base URL, once it answered ``/__info``; raises ``ServerError`` otherwise."""
    import urllib.error
    import urllib.request

    from readiness.check import CheckError
    from readiness.measure.netcommon import Server

    text = url.strip()
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme and scheme not in ("http", "https"):
        raise ServerError(f"--server must be an http:// or https:// URL (like http://host:8080), not {url!r}")
    try:
        server = Server(text)
    except (CheckError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ServerError(f"--server must be a URL like http://host:8080, not {url!r}") from exc
    from readiness.measure.proxies import tls_context

    # the site's server: direct; an https one may carry a certificate from the organisation's own CA
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=tls_context()))
    where = f"your server {server.url}"
    try:
        with opener.open(f"{server.url}/__info", timeout=timeout_s) as r:
            info = json.loads(r.read(65536))
    except urllib.error.HTTPError as exc:
        raise ServerError(f"{where} answers, but not as a readiness serve (GET /__info: HTTP {exc.code})") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(reason):
            raise ServerError(f"{where} speaks plain http, not https: use "
                              f"http://{server.hostheader}") from None
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise ServerError(f"{where} has a certificate this computer does not trust "
                              f"({reason.verify_message})") from None
        if isinstance(reason, socket.gaierror):
            raise ServerError(f"{where} cannot be found: the name {server.host} does not resolve") from None
        if isinstance(reason, ConnectionRefusedError):
            raise ServerError(f"{where} does not answer: nothing listens on port {server.port} "
                              f"of {server.host}") from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise ServerError(f"{where} does not answer within {timeout_s:g} s") from None
        raise ServerError(f"{where} does not answer ({getattr(reason, 'strerror', None) or reason})") from None
    except (TimeoutError, socket.timeout):
        raise ServerError(f"{where} does not answer within {timeout_s:g} s") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise ServerError(f"{where} answers, but not as a readiness serve ({type(exc).__name__})") from None
    if not isinstance(info, dict) or "stun_port" not in info:
        raise ServerError(f"{where} answers, but not as a readiness serve (no STUN port in /__info)")
    return server.url

