"""STUN Binding (RFC 5389): the wire format and a paced client probe stream.

Sits under the network checks: ``connectivity`` asks "does a STUN server answer on the media
ports?", ``latency`` and ``bandwidth`` send a Binding request every 20 ms (paced like an audio
stream) and turn the answers into RTT samples (``netstats.py`` summarises them). The same
wire format is answered by ``readiness.server.stun.Responder`` inside ``readiness serve`` and,
with artificial delay, jitter and seeded drops, in the tests, where its parameters are the
ground truth.

Only the standard library is used, so importing this module is cheap.
"""

from __future__ import annotations

import os
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


def read_message(sock: socket.socket) -> tuple[Message | None, tuple, float] | None:
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
                got_one = read_message(sock)  # ICMP unreachable and the like end the batch: probe lost
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
