"""Helpers shared by the network checks: name resolution with a deadline, "is there any
network at all?", host:port parsing and the ``--server`` URL of a ``readiness serve``.

Standard library only (plugin modules import this when the checks are listed).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

from readiness.check import CheckError
from readiness.measure.stun import Sample
from readiness.siteserver import DEFAULT_STUN_PORT, SiteServer


# An address from the documentation range (RFC 5737): a UDP connect() to it only asks the
# kernel for a route and sends nothing, so it tells "no route at all" without any traffic.
_ROUTE_PROBE = ("198.51.100.1", 9)


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def hostport_problem(item: object) -> str | None:
    """What is wrong with a ``host[:port]`` list item (a Setting's item validator); None if fine."""
    if not isinstance(item, str) or not item.strip():
        return f"{item!r} is not a \"host:port\" text"
    try:
        host, port = split_hostport(item, 1)
    except ValueError:
        return f"{item!r}: the port is not a number"
    if not host or any(c.isspace() for c in host):
        return f"{item!r} has no host name"
    if not 0 < port < 65536:
        return f"{item!r}: port {port} is outside 1-65535"
    return None


def resolve(host: str, port: int, timeout_s: float = 2.0,
            kind: int = socket.SOCK_STREAM) -> tuple[list, float]:
    """getaddrinfo with a deadline (it has none of its own). Returns (addrinfos, ms).

    Raises socket.gaierror on failure and TimeoutError past the deadline; the lookup thread
    is left to finish on its own (daemon), the caller does not wait for it.
    """
    if time.monotonic() - _dns_failed_at[0] < 60:
        # an earlier network check just saw every lookup fail: do not wait the full timeout
        # again, so the whole network part stays within a few seconds when DNS is down
        timeout_s = min(timeout_s, 0.5)
    box: dict = {}

    def work() -> None:
        try:
            box["ok"] = socket.getaddrinfo(host, port, 0, kind)
        except Exception as e:  # noqa: BLE001 - handed back to the caller
            box["err"] = e

    start = time.monotonic()
    t = threading.Thread(target=work, daemon=True, name=f"dns-{host}")
    t.start()
    t.join(timeout_s)
    ms = (time.monotonic() - start) * 1000
    if "ok" in box:
        # IPv4 first: media relays and most test servers answer there, and it keeps one
        # address family for the whole stream
        infos = sorted(box["ok"], key=lambda ai: ai[0] != socket.AF_INET)
        _dns_failed_at[0] = -1e9
        return infos, ms
    if "err" in box:
        raise box["err"]
    raise TimeoutError(f"DNS lookup of {host} took longer than {timeout_s:g} s")


_dns_failed_at = [-1e9]  # monotonic time when all lookups of a check last failed


def has_route() -> bool:
    """True when the kernel has a route towards the internet (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(_ROUTE_PROBE)
        return True
    except OSError:
        return False
    finally:
        s.close()


def offline_error(hosts: list[str]) -> CheckError:
    """The plain message for "none of these names resolved"."""
    _dns_failed_at[0] = time.monotonic()
    if not has_route():
        return CheckError("no internet connection: this computer has no network route "
                          "(cable unplugged, Wi-Fi off, or no network configured)", code="no_network_route")
    return CheckError(f"DNS lookups fail: none of {', '.join(hosts[:4])} could be resolved "
                      "(no internet connection, or the DNS server does not answer)", code="dns_fails")


def resolve_all(hostports: list[tuple[str, int]], timeout_s: float = 2.0,
                kind: int = socket.SOCK_STREAM) -> dict:
    """Resolve many names at once; returns {(host, port): (infos, ms) or Exception}."""
    out: dict = {}
    lock = threading.Lock()

    def one(hp):
        try:
            r = resolve(hp[0], hp[1], timeout_s, kind)
        except Exception as e:  # noqa: BLE001
            r = e
        with lock:
            out[hp] = r

    threads = [threading.Thread(target=one, args=(hp,), daemon=True) for hp in dict.fromkeys(hostports)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s + 0.2
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        for hp in hostports:
            out.setdefault(hp, TimeoutError(f"DNS lookup of {hp[0]} timed out"))
        return dict(out)


class HttpUrl:
    """An http(s) URL split once (a bare host means http): scheme, host, port, path base.

    ``url`` is scheme://host[:port] plus the path base; ``problem`` starts the error message
    for anything else, e.g. "bandwidth url must be http(s)://host[:port]".
    """

    def __init__(self, url: str, problem: str) -> None:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CheckError(f"{problem}, not {url!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.hostheader = parts.netloc.rpartition("@")[2]  # never credentials in a Host header or a record
        self.base = parts.path.rstrip("/")
        self.url = f"{parts.scheme}://{self.hostheader}{self.base}"


def server_option(options: Mapping[str, Any]) -> SiteServer | None:
    """The run's ``--server`` with its STUN port. A real run carries it parsed and checked (one
    ``/__info`` per run, asked by ``readiness.run.target``); a caller that hands a plain URL or
    an unchecked server (a library user, a test) gets it parsed and asked here."""
    server = options.get("server")
    if not server:
        return None
    if not isinstance(server, SiteServer):
        try:
            server = SiteServer.parse(str(server))
        except ValueError as exc:
            raise CheckError(f"--server {exc}") from None
    if server.stun_port is None:
        server = server.with_stun_port(advertised_stun_port(server.url) or DEFAULT_STUN_PORT)
    return server


def advertised_stun_port(url: str, timeout_s: float = 1.5) -> int | None:
    """The STUN port a ``readiness serve`` at ``url`` advertises on /__info; None for others."""
    import urllib.request

    try:
        # direct, not through a proxy: the STUN port is on this very host
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{url}/__info", timeout=timeout_s) as r:
            return int(json.loads(r.read(4096))["stun_port"])
    except Exception:  # noqa: BLE001 - an older or foreign server
        return None


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def tcp_connect_s(addr: tuple, family: int, timeout_s: float = 2.0) -> float:
    """Seconds for one TCP handshake (SYN -> SYN/ACK), the connection closed right after."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout_s)
    try:
        start = time.monotonic()
        s.connect(addr)
        return time.monotonic() - start
    finally:
        s.close()


def tcp_probe_stream(addr: tuple, family: int, *, interval_s: float = 0.1, count: int | None = None,
                     stop: threading.Event | None = None, timeout_s: float = 1.0, on_sample=None) -> list:
    """RTT samples from TCP handshakes: the fallback where UDP gets no answer.

    Returns ``stun.Sample`` objects so ``netstats.summarize`` reads them like UDP probes; a
    handshake that fails or takes longer than ``timeout_s`` counts as lost. ``on_sample`` is
    called with each answered sample as it comes (the bandwidth check watches them live).
    """
    samples: list = []
    start = time.monotonic()
    while (count is None or len(samples) < count) and not (stop is not None and stop.is_set()):
        s = Sample(seq=len(samples), sent_at=time.monotonic())
        try:
            s.rtt_s = tcp_connect_s(addr, family, timeout_s)
            s.arrival = s.seq
            if on_sample is not None:
                on_sample(s)
        except OSError:
            pass
        samples.append(s)
        wait = start + len(samples) * interval_s - time.monotonic()
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
    return samples
