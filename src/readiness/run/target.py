"""``--server URL``: checked once, before anything is measured.

The URL was parsed at the configuration's border into a ``SiteServer`` (a malformed URL or a
scheme other than http/https is a usage error there). Here the server is asked ``GET /__info``
once: one that does not answer as a ``readiness serve`` does is a usage error (exit 2) in one
plain sentence — not five UNKNOWN items a minute later — and the STUN port it advertises travels
on in the ``SiteServer``, so no check asks again.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request

from readiness.measure.proxies import tls_context
from readiness.siteserver import SiteServer


class ServerError(ValueError):
    """``--server`` cannot be used; ``str()`` is one plain sentence."""


def check_server(server: SiteServer, timeout_s: float = 5.0) -> SiteServer:
    """``server`` with the STUN port it advertises, once it answered ``/__info``; raises
    ``ServerError`` otherwise."""
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
    port = info.get("stun_port") if isinstance(info, dict) else None
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ServerError(f"{where} answers, but not as a readiness serve (no STUN port in /__info)")
    return server.with_stun_port(port)

