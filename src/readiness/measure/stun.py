"""STUN Binding (RFC 5389): the wire format, a paced client probe stream, and a responder.

Sits under the network checks: ``connectivity`` asks "does a STUN server answer on the media
ports?", ``latency`` and ``bandwidth`` send a Binding request every 20 ms (paced like an audio
stream) and turn the answers into RTT samples (``netstats.py`` summarises them). The same
:class:`Responder` answers inside ``readiness serve`` and, with artificial delay, jitter and
seeded drops, in the tests, where its parameters are the ground truth.

Only the standard library is used, so importing this module is cheap.
"""

from __future__ import annotations

import heapq
import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_SOFTWARE = 0x8022
HEADER = struct.Struct("!HHI12s")
DEFAULT_PORT = 3478


class StunError(ValueError):
    """A datagram that is not a well-formed STUN message."""


@dataclass
class Message:
    type: int
    txid: bytes
    attrs: list[tuple[int, bytes]] = field(default_factory=list)

    def attr(self, kind: int) -> bytes | None:
        for t, v in self.attrs:
            if t == kind:
                return v
        return None


def new_txid() -> bytes:
    return os.urandom(12)


def encode(msg: Message) -> bytes:
    body = b""
    for t, v in msg.attrs:
        pad = (-len(v)) % 4  # attributes are padded to 32-bit boundaries (RFC 5389 §15)
        body += struct.pack("!HH", t, len(v)) + v + b"\0" * pad
    return HEADER.pack(msg.type, len(body), MAGIC_COOKIE, msg.txid) + body


def encode_binding_request(txid: bytes) -> bytes:
    return encode(Message(BINDING_REQUEST, txid))


def decode(data: bytes) -> Message:
    if len(data) < HEADER.size:
        raise StunError("shorter than a STUN header")
    mtype, length, cookie, txid = HEADER.unpack_from(data)
    if mtype & 0xC000 or cookie != MAGIC_COOKIE:
        raise StunError("not a STUN message (top bits or magic cookie)")
    if length % 4 or HEADER.size + length > len(data):
        raise StunError("bad STUN message length")
    attrs: list[tuple[int, bytes]] = []
    pos, end = HEADER.size, HEADER.size + length
    while pos + 4 <= end:
        t, alen = struct.unpack_from("!HH", data, pos)
        pos += 4
        if pos + alen > end:
            raise StunError("attribute runs past the message")
        attrs.append((t, bytes(data[pos:pos + alen])))
        pos += alen + ((-alen) % 4)
    return Message(mtype, txid, attrs)


def xor_address(ip: str, port: int, txid: bytes) -> bytes:
    """XOR-MAPPED-ADDRESS value (RFC 5389 §15.2) for ``ip:port``."""
    xport = port ^ (MAGIC_COOKIE >> 16)
    if ":" in ip:
        raw = socket.inet_pton(socket.AF_INET6, ip)
        key = struct.pack("!I", MAGIC_COOKIE) + txid
        return struct.pack("!BBH", 0, 2, xport) + bytes(a ^ b for a, b in zip(raw, key))
    raw = socket.inet_aton(ip)
    key = struct.pack("!I", MAGIC_COOKIE)
    return struct.pack("!BBH", 0, 1, xport) + bytes(a ^ b for a, b in zip(raw, key))


def parse_xor_address(value: bytes, txid: bytes) -> tuple[str, int]:
    if len(value) < 8:
        raise StunError("short XOR-MAPPED-ADDRESS")
    _, family, xport = struct.unpack_from("!BBH", value)
    port = xport ^ (MAGIC_COOKIE >> 16)
    if family == 1:
        key = struct.pack("!I", MAGIC_COOKIE)
        return socket.inet_ntoa(bytes(a ^ b for a, b in zip(value[4:8], key))), port
    if family == 2 and len(value) >= 20:
        key = struct.pack("!I", MAGIC_COOKIE) + txid
        return socket.inet_ntop(socket.AF_INET6, bytes(a ^ b for a, b in zip(value[4:20], key))), port
    raise StunError("unknown address family")


def binding_response(request: Message, addr: tuple) -> bytes:
    return encode(Message(BINDING_SUCCESS, request.txid,
                          [(ATTR_XOR_MAPPED_ADDRESS, xor_address(addr[0], addr[1], request.txid))]))


def mapped_address(msg: Message) -> tuple[str, int] | None:
    value = msg.attr(ATTR_XOR_MAPPED_ADDRESS)
    try:
        return parse_xor_address(value, msg.txid) if value else None
    except (StunError, OSError):
        return None


# --------------------------------------------------------------------------- client side


@dataclass
class Sample:
    """One probe: ``rtt_s`` is None when no answer came back (lost)."""

    seq: int
    sent_at: float
    rtt_s: float | None = None
    arrival: int | None = None  # order in which answers arrived, 0-based


def _read(sock: socket.socket) -> tuple[Message | None, tuple, float] | None:
    """One datagram from a non-blocking socket: (message or None if not STUN, sender, time).

    None when there is nothing (more) to read, or the socket reports an error (on a connected
    UDP socket that is an ICMP "unreachable" from an earlier send).
    """
    try:
        data, addr = sock.recvfrom(2048)
    except OSError:  # BlockingIOError (nothing to read) is an OSError too
        return None
    got = time.monotonic()
    try:
        return decode(data), addr, got
    except StunError:
        return None, addr, got


def _udp_socket(addr: tuple, family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(addr)
    return sock


def probe_stream(addr: tuple, family: int = socket.AF_INET, *, count: int | None = None,
                 interval_s: float = 0.020, linger_s: float = 1.0,
                 stop: threading.Event | None = None,
                 on_sample: Callable[[Sample], None] | None = None) -> list[Sample]:
    """Send a Binding request every ``interval_s`` to ``addr`` and time each answer.

    Runs for ``count`` probes, or until ``stop`` is set. Requests follow an absolute schedule
    (start + i·interval), so a slow loop does not stretch the stream. After the last request it
    waits ``linger_s`` for late answers; whatever is still missing then is lost. ICMP "port
    unreachable" surfaces as ConnectionRefusedError on a connected socket; it is swallowed
    here, and those probes simply count as lost.
    """
    if count is None and stop is None:
        raise ValueError("probe_stream needs count or stop")
    sock = _udp_socket(addr, family)
    samples: list[Sample] = []
    pending: dict[bytes, Sample] = {}
    arrivals = 0
    start = time.monotonic()
    next_send = start
    done_sending_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            sending = done_sending_at is None
            if sending and ((count is not None and len(samples) >= count) or (stop is not None and stop.is_set())):
                done_sending_at = now
                sending = False
            if sending and now >= next_send:
                txid = new_txid()
                s = Sample(seq=len(samples), sent_at=now)
                samples.append(s)
                pending[txid] = s
                try:
                    sock.send(encode_binding_request(txid))
                except (BlockingIOError, ConnectionRefusedError, OSError):
                    pass
                next_send = start + len(samples) * interval_s
                continue
            if not sending:
                # late answers come within a few RTTs; past that a probe is lost, and waiting
                # the whole linger for it would only slow every stream that saw one loss
                slowest = max((s.rtt_s for s in samples if s.rtt_s is not None), default=linger_s)
                linger = min(linger_s, max(0.25, 3 * slowest))
                if not pending or now - done_sending_at >= linger:
                    break
                wait = done_sending_at + linger - now
            else:
                wait = next_send - now
            try:
                ready, _, _ = select.select([sock], [], [], max(0.0, min(wait, 0.05)))
            except (OSError, ValueError):
                break
            if not ready:
                continue
            while True:
                got_one = _read(sock)  # ICMP unreachable and the like end the batch: probe lost
                if got_one is None:
                    break
                msg, _, got = got_one
                if msg is None:
                    continue
                s = pending.pop(msg.txid, None)
                if s is None or msg.type != BINDING_SUCCESS:
                    continue
                s.rtt_s = got - s.sent_at
                s.arrival = arrivals
                arrivals += 1
                if on_sample is not None:
                    on_sample(s)
    finally:
        sock.close()
    return samples


def binding(addr: tuple, family: int = socket.AF_INET, *, timeout_s: float = 1.5,
            tries: int = 3) -> tuple[float | None, tuple[str, int] | None]:
    """One Binding transaction with retransmits: (rtt seconds or None, mapped address)."""
    sock = _udp_socket(addr, family)
    try:
        txid = new_txid()
        request = encode_binding_request(txid)
        deadline = time.monotonic() + timeout_s
        gap = timeout_s / max(1, tries)
        sent_at = time.monotonic()
        first_sent = sent_at
        for i in range(tries):
            try:
                sock.send(request)
            except OSError:
                pass
            sent_at = time.monotonic()
            until = min(deadline, sent_at + gap) if i < tries - 1 else deadline
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([sock], [], [], left)
                if not ready:
                    break
                try:
                    data = sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    # port unreachable: wait out the gap, a retransmit may still get through
                    time.sleep(max(0.0, min(left, 0.05)))
                    continue
                try:
                    msg = decode(data)
                except StunError:
                    continue
                if msg.txid == txid and msg.type == BINDING_SUCCESS:
                    # time from the latest send: a retransmit's answer is not a 1.5 s RTT
                    rtt = time.monotonic() - (sent_at if i else first_sent)
                    return rtt, mapped_address(msg)
        return None, None
    finally:
        sock.close()


# --------------------------------------------------------------------------- server side


class Responder:
    """Answers STUN Binding requests on a UDP socket, in a background thread.

    ``delay_s`` ± uniform ``jitter_s`` is added before each answer and a seeded ``drop`` fraction
    is never answered, so tests know the true median RTT, jitter and loss. ``readiness serve``
    uses it with no delay. ``max_rate`` bounds answers per second per client address, so the
    responder cannot be turned into a traffic source; ``on_idle`` is called with
    (client, answered, dropped) once a client has been quiet for ``idle_s`` (one log line per
    test, not one per packet).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, delay_s: float = 0.0,
                 jitter_s: float = 0.0, drop: float = 0.0, seed: int | None = None,
                 max_rate: float = 500.0, idle_s: float = 2.0,
                 on_idle: Callable[[str, int, int], None] | None = None) -> None:
        if jitter_s > delay_s:
            raise ValueError("jitter must not exceed delay (answers cannot come before requests)")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()[:2]
        self.delay_s, self.jitter_s, self.drop = delay_s, jitter_s, drop
        self.rng = random.Random(seed)
        self.max_rate, self.idle_s, self.on_idle = max_rate, idle_s, on_idle
        self._queue: list[tuple[float, int, bytes, tuple]] = []
        self._n = 0
        self._clients: dict[str, list] = {}  # ip -> [tokens, last_refill, answered, dropped, last_seen]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stun-responder", daemon=True)

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> "Responder":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._flush_idle(force=True)
        self.sock.close()

    def __enter__(self) -> "Responder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _allow(self, ip: str, now: float) -> list:
        c = self._clients.get(ip)
        if c is None:
            c = self._clients[ip] = [self.max_rate, now, 0, 0, now]
        c[0] = min(self.max_rate, c[0] + (now - c[1]) * self.max_rate)
        c[1] = now
        c[4] = now
        return c

    def _flush_idle(self, force: bool = False) -> None:
        now = time.monotonic()
        for ip in [ip for ip, c in self._clients.items() if force or now - c[4] > self.idle_s]:
            c = self._clients.pop(ip)
            if self.on_idle is not None and (c[2] or c[3]):
                try:
                    self.on_idle(ip, c[2], c[3])
                except Exception:
                    pass

    def _loop(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            while self._queue and self._queue[0][0] <= now:
                _, _, data, addr = heapq.heappop(self._queue)
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass
            wait = 0.1 if not self._queue else max(0.0, self._queue[0][0] - now)
            try:
                ready, _, _ = select.select([self.sock], [], [], min(wait, 0.1))
            except (OSError, ValueError):
                return
            if now - last_flush > 0.5:
                self._flush_idle()
                last_flush = now
            if not ready:
                continue
            for _ in range(64):
                got_one = _read(self.sock)
                if got_one is None:
                    break
                msg, addr, got = got_one
                if msg is None or msg.type != BINDING_REQUEST:
                    continue
                client = self._allow(addr[0], got)
                if client[0] < 1:
                    client[3] += 1
                    continue
                client[0] -= 1
                if self.drop and self.rng.random() < self.drop:
                    client[3] += 1
                    continue
                client[2] += 1
                answer = binding_response(msg, addr)
                delay = self.delay_s + (self.rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0)
                if delay <= 0:
                    try:
                        self.sock.sendto(answer, addr)
                    except OSError:
                        pass
                else:
                    self._n += 1
                    heapq.heappush(self._queue, (got + delay, self._n, answer, addr))


def main(argv: list[str] | None = None) -> int:
    """``python -m readiness.measure.stun``: a standalone responder (the tests' late-answering far end)."""
    import argparse
    import signal
    import sys

    ap = argparse.ArgumentParser(prog="python -m readiness.measure.stun", description="STUN Binding responder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="fixed delay before each answer")
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="uniform ± spread around the delay")
    ap.add_argument("--drop", type=float, default=0.0, help="fraction of requests never answered")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    r = Responder(a.host, a.port, delay_s=a.delay_ms / 1000, jitter_s=a.jitter_ms / 1000,
                  drop=a.drop, seed=a.seed, max_rate=1000.0)
    with r:
        print(f"ready udp {r.address[0]}:{r.port}", file=sys.stderr, flush=True)
        while not done.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
