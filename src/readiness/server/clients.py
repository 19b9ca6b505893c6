"""Who a request comes from: the client address every route sees, and whether it is this machine.

Part of the HTTP framework (``readiness.server.http``), resolved once per request so the
collector's read gate, the rate limits and the log lines all name the same client.

The rule, with ``trusted`` the configured reverse proxies (``serve --trusted-proxy``, none by
default):

- The client is the TCP peer, unless the peer is a trusted proxy. Forwarding headers from any
  other peer are ignored: anyone can write them.
- From a trusted proxy, the client is the right-most address in ``X-Forwarded-For`` (or, without
  it, RFC 7239 ``Forwarded: for=``) that is not itself a trusted proxy: the proxy appends the
  address it saw, so everything left of that is what the client claimed.
- "This machine" (``local``): the client is a loopback address and either no proxy was involved
  or the trusted proxy says the client is loopback. A trusted proxy that names nobody (no
  header, an empty or unreadable one) is not local: a proxy's own connection says nothing about
  who is behind it. A forwarding header from a peer that is not trusted, even an empty one,
  means a proxy we do not know stood between: not local either.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded")
MAX_HOPS = 32  # addresses read from a header (a proxy chain is a few; a header may be long)
_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


def parse_proxies(values: Iterable[str]) -> tuple[Network, ...]:
    """Each ``ADDR`` or ``ADDR/PREFIX`` as a network; ValueError naming the value that is neither."""
    out = []
    for value in values:
        text = value.strip()
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or network (e.g. 127.0.0.2 or 10.0.0.0/24)") from None
    return tuple(out)


def address(text: str) -> Address | None:
    """An address as a client or a header names it ("[::1]:4711", "10.0.0.1:80", "fe80::1%eth0"),
    IPv4-mapped IPv6 as IPv4; None when it is no address ("unknown", "_hidden", "")."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    text = text.partition("%")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped or addr


def _trusted(addr: Address | None, proxies: tuple[Network, ...]) -> bool:
    return addr is not None and any(addr.version == net.version and addr in net for net in proxies)


def is_trusted(peer: str, proxies: tuple[Network, ...]) -> bool:
    """Whether the TCP peer ``peer`` is one of the trusted proxies."""
    return _trusted(address(peer), proxies)


def _hops(headers: Any, name: str) -> list[str] | None:
    """The addresses a forwarding header lists, left to right; None when the header is absent."""
    values = headers.get_all(name) if hasattr(headers, "get_all") else (
        [headers[name]] if name in headers else None)
    if values is None:
        return None
    joined = ",".join(str(v) for v in values)[-MAX_HOPS * 64:]  # the end: the hops the proxies added
    if name == "Forwarded":
        hops = []
        for element in joined.split(","):
            m = _FOR.search(element.strip())
            hops.append(m.group(1) if m else "")
        return hops[-MAX_HOPS:]
    return [h for h in joined.split(",")][-MAX_HOPS:]


@dataclass(frozen=True)
class Client:
    """The resolved client of one request."""

    address: str  # the client's address as text: the rate limits and the logs key on it
    peer: str  # the TCP peer (the proxy's address when one forwarded the request)
    proxied: bool  # a trusted proxy forwarded the request
    local: bool  # this machine itself (see the module docstring)


def _from_header(hops: list[str], proxies: tuple[Network, ...]) -> Address | None:
    """The right-most hop that is not a trusted proxy; None when that hop is unreadable or
    every hop is a trusted proxy (nobody named)."""
    for hop in reversed(hops):
        addr = address(hop)
        if addr is None:
            return None
        if not _trusted(addr, proxies):
            return addr
    return None


def resolve(peer: str, headers: Any, proxies: tuple[Network, ...] = ()) -> Client:
    """The client of a request from ``peer`` with these headers, under ``proxies`` trusted."""
    peer_addr = address(peer)
    present = {name: _hops(headers, name) for name in FORWARDING_HEADERS}
    present = {k: v for k, v in present.items() if v is not None}
    if not _trusted(peer_addr, proxies):
        loopback = peer_addr is not None and peer_addr.is_loopback
        return Client(str(peer_addr or peer), peer, False, loopback and not present)
    named = [_from_header(hops, proxies) for hops in present.values()]
    found = named[0] if named else None
    # two headers naming different clients: one of them came from the client itself
    agreed = found is not None and all(n == found for n in named)
    if found is None:
        return Client(str(peer_addr), peer, True, False)
    return Client(str(found), peer, True, agreed and found.is_loopback)
