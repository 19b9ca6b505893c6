"""Fair shares of what the server holds: connections, transfer slots, results per minute.

Clients count by network (:func:`client_key`: an IPv6 client is its /64), so a few networks,
however many addresses each, cannot lock out the rest. When every slot is taken, a newcomer
takes its own network's idle keep-alive connection, else one from the network holding the most
(the one :class:`Hold` ranks first is cut); :class:`FairRate` caps what is stored per minute and
hour overall with a fair share per network.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
from typing import Any

IPV6_PREFIX = 64  # an IPv6 client counts as its /64 (see client_key)


def client_key(addr: str) -> str:
    """The network a client address counts as for every per-client limit.

    IPv6: its /64. A site is given at least a /64 and a host picks addresses in it at will
    (privacy addresses), so per address would be no limit at all. IPv4: the address itself (a
    /32). One IPv4 address is already a whole home or office behind NAT, and on a LAN every
    workstation has its own address in the same /24: a /24 would make a whole office one client.
    An IPv4-mapped IPv6 address counts as its IPv4 address. Anything else counts as itself.
    """
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


class Hold:
    """One connection or transfer slot held by a client network, and how to take it back."""

    __slots__ = ("ip", "key", "sock", "state", "since", "moved", "cut")

    def __init__(self, ip: str, sock: Any, state: str = "waiting") -> None:
        self.ip, self.key, self.sock = ip, client_key(ip), sock
        self.state = state  # "waiting" (for a request), "headers" (being read), "busy", "transfer"
        self.since = time.monotonic()
        self.moved = 0  # bytes a transfer has moved so far
        self.cut: str | None = None  # why the slot was taken back, once it was

    def set(self, state: str) -> None:
        self.state, self.since = state, time.monotonic()

    def rank(self, now: float) -> tuple[float, float] | None:
        """Which of a network's holds to take back first (the highest), or None: not this one."""
        if self.state == "headers":  # a request trickling in: the slowest kind of client
            return (2.0, now - self.since)
        if self.state == "waiting":  # an idle keep-alive connection: the client reconnects at will
            return (1.0, now - self.since)
        if self.state == "transfer":  # the slowest transfer
            return (0.0, -self.moved / max(now - self.since, 1e-3))
        return None


class Slots:
    """Slots held in total and per client network, each with its own cap, shared fairly.

    When all ``total`` are held, a newcomer takes its own network's idle keep-alive connection,
    or else a slot from the network holding the most (when it holds more than the newcomer's
    network): the one :meth:`Hold.rank` puts first is cut. Many networks holding one slot each
    then take turns with the newcomer; none is shut out.
    """

    def __init__(self, total: int, per_client: int) -> None:
        self.total, self.per_client = total, per_client
        self.lock = threading.Lock()
        self.held: set[Hold] = set()
        self.by_client: dict[str, int] = {}

    def take(self, hold: Hold, why: str, capped: bool = True) -> Hold | bool:
        """True when ``hold`` got a slot, False when refused; the hold cut to make room (it got
        a slot then too; the caller logs the cut one). ``why`` is what the cut one is told.
        ``capped`` False: no per-network cap (a trusted proxy's connections carry many clients)."""
        with self.lock:
            mine = self.by_client.get(hold.key, 0)
            if capped and mine >= self.per_client:
                return False
            victim = None
            if len(self.held) >= self.total:
                now = time.monotonic()
                best = None
                for h in self.held:
                    r = h.rank(now)
                    if r is None:
                        continue
                    if h.key == hold.key:  # its own network's idle keep-alive first: no one else loses
                        theirs = math.inf if h.state == "waiting" else -1
                    else:
                        theirs = self.by_client.get(h.key, 0)
                    if theirs > mine and (best is None or (theirs, r) > best):
                        best, victim = (theirs, r), h
                if victim is None:
                    return False
                self._drop(victim)
                victim.cut = why
            self.held.add(hold)
            self.by_client[hold.key] = self.by_client.get(hold.key, 0) + 1  # the victim may have been its own
        if victim is None:
            return True
        try:
            victim.sock.shutdown(socket.SHUT_RDWR)  # its thread sees the end and leaves
        except (OSError, AttributeError):
            pass
        return victim

    def _drop(self, hold: Hold) -> None:
        self.held.discard(hold)
        left = self.by_client.get(hold.key, 1) - 1
        if left > 0:
            self.by_client[hold.key] = left
        else:
            self.by_client.pop(hold.key, None)

    def give(self, hold: Hold) -> None:
        with self.lock:
            if hold in self.held:
                self._drop(hold)


class FairRate:
    """At most ``total`` events per ``window_s`` from all clients together, and ``per_client``
    from one client network (:func:`client_key`), with a fair share kept for newcomers.

    Once the total is reached, a network that has had fewer than its fair share (``total`` over
    the networks seen in the window) still gets in, up to twice the total: so many networks
    filling the window do not shut out one that comes later, and the bound stays hard.
    """

    def __init__(self, total: int, per_client: int, window_s: float = 60.0) -> None:
        self.total, self.per_client, self.window_s = total, per_client, window_s
        self.lock = threading.Lock()
        self.events: list[tuple[float, str]] = []  # (time, network), oldest first
        self.by_client: dict[str, int] = {}

    def allow(self, client: str, now: float | None = None, count: bool = True) -> float:
        """0 when the event may happen now (and it is counted, unless ``count`` is false), else
        the seconds to wait."""
        now = time.monotonic() if now is None else now
        key = client_key(client)
        with self.lock:
            cutoff = now - self.window_s
            gone = 0
            for t, k in self.events:
                if t > cutoff:
                    break
                gone += 1
                left = self.by_client[k] - 1
                if left:
                    self.by_client[k] = left
                else:
                    del self.by_client[k]
            del self.events[:gone]
            mine = self.by_client.get(key, 0)
            held = len(self.events)
            if mine >= self.per_client:
                first = next(t for t, k in self.events if k == key)
                return max(first + self.window_s - now, 0.001)
            fair = self.total / (len(self.by_client) + (0 if mine else 1))
            if held >= 2 * self.total or (held >= self.total and mine >= fair):
                return max(self.events[0][0] + self.window_s - now, 0.001)
            if count:
                self.events.append((now, key))
                self.by_client[key] = mine + 1
            return 0.0
