"""A few addresses must not take ``readiness serve`` down (issue 21, items 13-16).

Each attack runs against a real ``readiness serve --db`` subprocess, bounded in time and size,
from several source addresses: 127.0.x.y on loopback (Linux answers the whole 127/8), and for
one IPv6 /64 a scratch network namespace whose ``lo`` holds ten addresses of 2001:db8:13::/64.
While it runs, a legitimate client elsewhere must get ``GET /__down`` and ``GET /fleet``
answered with 200 within a few seconds; the attacker must be refused or cut, and the log says so.
The grouping (``client_key``) and the fair rate (``FairRate``) are also held as plain functions.
"""

from __future__ import annotations

import asyncio
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netns import wait_line  # noqa: E402
from support import end_process, need, scratch_namespace  # noqa: E402

from readiness.server.fairness import FairRate, client_key  # noqa: E402

LEGIT_WITHIN_S = 5.0  # "still answering": each legitimate request is answered within this


# --- the grouping and the fair rate, as functions --------------------------------------------


@pytest.mark.parametrize("addr,key", [
    ("2001:db8:13::a", "2001:db8:13::/64"),
    ("2001:db8:13::ffff:1:2", "2001:db8:13::/64"),
    ("2001:db8:13:1::a", "2001:db8:13:1::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("192.0.2.7", "192.0.2.7"),
    ("192.0.2.8", "192.0.2.8"),
    ("not an address", "not an address"),
])
def test_a_client_counts_as_its_ipv6_64_or_its_ipv4_address(addr, key):
    assert client_key(addr) == key


def test_the_fair_rate_bounds_everyone_and_keeps_a_share_for_a_newcomer():
    rate = FairRate(total=10, per_client=4, window_s=60.0)
    allowed = {f"192.0.2.{i}": sum(rate.allow(f"192.0.2.{i}", now=1.0) == 0 for _ in range(6)) for i in range(1, 6)}
    assert allowed["192.0.2.1"] == 4 and sum(allowed.values()) <= 2 * 10  # per network, and never past twice the total
    assert rate.allow("192.0.2.1", now=2.0) > 0  # over its share: wait
    assert rate.allow("198.51.100.1", now=2.0) == 0  # a newcomer is let in though the total is reached
    for i in range(40):  # however many newcomers come, the bound holds
        rate.allow(f"203.0.113.{i}", now=3.0)
    assert len(rate.events) <= 2 * 10
    wait = rate.allow("2001:db8::1", now=4.0)
    assert 0 < wait <= 60.0
    assert rate.allow("2001:db8::1", now=62.0) == 0  # the window moved on


def test_addresses_of_one_64_share_one_share():
    rate = FairRate(total=100, per_client=3, window_s=60.0)
    got = [rate.allow(f"2001:db8:13::{i:x}", now=1.0) == 0 for i in range(1, 11)]
    assert got == [True] * 3 + [False] * 7


# --- a real server ---------------------------------------------------------------------------


class Served:
    """``readiness serve --db`` as a subprocess; its log is drained all the time (a full pipe
    would stop the server, not the attack)."""

    def __init__(self, tmp: Path, *extra: str, host: str = "127.0.0.1", netns: str | None = None) -> None:
        exe = shutil.which("readiness")
        cmd = [exe, "serve"] if exe else [sys.executable, "-m", "readiness.cli", "serve"]
        cmd += ["--host", host, "--http-port", "0", "--stun-port", "0", "--results-dir", str(tmp / "results"),
                "--db", f"sqlite:///{tmp / 'fleet.db'}", "--ingest-workers", "0", *extra]
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        line = wait_line(self.proc, "listening on", timeout=120)
        self.port = int(re.search(r"https?://\S+:(\d+) ", line).group(1))
        self.lines: list[str] = []
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> str:
        """Stop it (SIGTERM); its log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        end_process(self.proc, 15)
        self._drain.join(5)
        return "".join(self.lines)


def _request(connect: Callable[[], socket.socket], method: str, path: str, body: bytes | None = None,
             headers: dict | None = None, timeout: float = LEGIT_WITHIN_S) -> tuple[int, dict, bytes, float]:
    """One request over a socket from ``connect``: (status, headers, body, seconds), status 0
    when the connection was refused or dropped."""
    started = time.monotonic()
    c = http.client.HTTPConnection("server", timeout=timeout)
    try:
        c.sock = connect()
        c.sock.settimeout(timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.monotonic() - started
    except OSError:
        return 0, {}, b"", time.monotonic() - started
    finally:
        c.close()


def _tcp(port: int, host: str = "127.0.0.1", source: str | None = None) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        return socket.create_connection((host, port), timeout=LEGIT_WITHIN_S,
                                        source_address=(source, 0) if source else None)
    return connect


def _legit(connect: Callable[[], socket.socket]) -> list[tuple[str, int, float]]:
    """What a legitimate client gets: (path, status, seconds) for a download and the fleet."""
    got = []
    for path in ("/__down?bytes=100000", "/fleet"):
        status, _, _, secs = _request(connect, "GET", path)
        got.append((path, status, round(secs, 2)))
    return got


def _answered(got: list[tuple[str, int, float]]) -> bool:
    return all(status == 200 and secs < LEGIT_WITHIN_S for _, status, secs in got)


class Slowloris:
    """Connections from ``sources`` (``per_source`` each) that send a request line and then one
    header line a second, reconnecting whenever the server ends one; bounded by ``seconds``."""

    def __init__(self, connect: Callable[[str], socket.socket], sources: list[str], per_source: int) -> None:
        self.connect, self.slots = connect, [(src, None) for src in sources for _ in range(per_source)]
        self.refused = self.dropped = self.opened = 0
        self.held_most = 0
        self._stop = threading.Event()

    def _tick(self) -> None:
        for i, (src, s) in enumerate(self.slots):
            if s is not None:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    try:
                        s.send(b"X-Slow: 1\r\n")
                        continue
                    except OSError:
                        data = b""
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    self.refused += 1
                else:
                    self.dropped += 1
                s.close()
                s = None
            try:
                s = self.connect(src)
                s.sendall(b"GET /__down?bytes=1 HTTP/1.1\r\n")
                s.setblocking(False)  # from now on, look without waiting
                self.opened += 1
            except OSError:
                s = None
            self.slots[i] = (src, s)
        self.held_most = max(self.held_most, sum(s is not None for _, s in self.slots))

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop.is_set():
            self._tick()
            self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        for _, s in self.slots:
            if s is not None:
                s.close()


# --- 13: connections ---------------------------------------------------------------------------


def test_many_ipv4_addresses_holding_every_connection_do_not_shut_out_a_newcomer(tmp_path):
    """48 slow-header connections from 24 addresses against 32: each address stays under its
    share (4), so only taking the oldest waiting connection of a bigger holder lets others in."""
    srv = Served(tmp_path, "--max-connections", "32")
    sources = [f"127.0.3.{i}" for i in range(1, 25)]
    attack = Slowloris(lambda src: _tcp(srv.port, source=src)(), sources, 2)
    try:
        worker = threading.Thread(target=attack.run, args=(8.0,), daemon=True)
        worker.start()
        time.sleep(2.5)  # the server is full: every attacker connection is in
        during = []
        for _ in range(6):
            during.append(_legit(_tcp(srv.port)))
            time.sleep(0.3)
        worker.join(15)
    finally:
        attack.close()
        log = srv.stop()
    assert all(_answered(got) for got in during), during
    assert attack.refused + attack.dropped >= 16, (attack.refused, attack.dropped)  # 48 wanted 32 places
    assert "dropped: waiting connection closed to make room (server full)" in log, log[-3000:]


class _Namespace:
    """Runs functions inside a network namespace (its sockets stay there): one thread that
    joined the namespace with setns(2)."""

    def __init__(self, ns: str) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, initializer=self._enter, initargs=(ns,))

    @staticmethod
    def _enter(ns: str) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def socket(self, port: int, source: str) -> socket.socket:
        def make() -> socket.socket:
            return socket.create_connection(("::1", port), timeout=LEGIT_WITHIN_S, source_address=(source, 0, 0, 0))
        return self.pool.submit(make).result(10)

    def close(self) -> None:
        self.pool.shutdown()


def test_addresses_of_one_ipv6_64_share_one_connection_share(tmp_path):
    """Ten addresses of one /64, eight connections each, against 64 (a network's share: 8):
    before, each address was a client of its own and they held all 64."""
    with scratch_namespace("rdyfair") as ns:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=20)
        sources = [f"2001:db8:13::{i:x}" for i in range(1, 11)]
        for src in sources:
            subprocess.run(["ip", "-n", ns, "-6", "addr", "add", f"{src}/64", "dev", "lo", "nodad"],
                           check=True, timeout=20)
        srv = Served(tmp_path, "--max-connections", "64", host="::", netns=ns)
        inside = _Namespace(ns)
        attack = Slowloris(lambda src: inside.socket(srv.port, src), sources, 8)
        try:
            attack._tick()  # all 80 at once
            during = [_legit(lambda: inside.socket(srv.port, "::1"))]
            attack._tick()
            during.append(_legit(lambda: inside.socket(srv.port, "::1")))
        finally:
            attack.close()
            inside.close()
            log = srv.stop()
    assert all(_answered(got) for got in during), during
    assert attack.opened >= 80 and attack.refused >= 70, (attack.opened, attack.refused)  # the /64 keeps 8 places
    assert log.count("refused: too many connections") >= 1


# --- 14: transfer slots -------------------------------------------------------------------------


def test_slow_uploads_from_three_addresses_are_cut_and_never_hold_every_transfer_slot(tmp_path):
    """Three addresses, eight uploads each at 200 B/s, against the default 16 slots and 10 s
    idle timeout: 200 B/s is far below 4 kB/s, so each is cut within seconds, and meanwhile a
    newcomer's download takes the slowest slot of the biggest holder."""
    srv = Served(tmp_path)
    uploads = []
    try:
        for src in ("127.0.5.1", "127.0.5.2", "127.0.5.3"):
            for _ in range(8):
                s = _tcp(srv.port, source=src)()
                s.sendall(b"POST /__up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
                s.setblocking(False)
                uploads.append(s)
        started = time.monotonic()
        ended: dict[int, float] = {}
        refused = 0
        during = []
        while time.monotonic() - started < 9 and len(ended) < len(uploads):
            for i, s in enumerate(uploads):
                if i in ended:
                    continue
                try:
                    data = s.recv(4096)
                    refused += data.startswith(b"HTTP/1.1 503")
                    ended[i] = time.monotonic() - started
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    ended[i] = time.monotonic() - started
                    continue
                try:
                    s.send(b"x" * 200)
                except OSError:
                    ended[i] = time.monotonic() - started
            if not during:
                during.append(_legit(_tcp(srv.port)))
            time.sleep(1.0)
    finally:
        for s in uploads:
            s.close()
        log = srv.stop()
    assert all(_answered(got) for got in during), during
    assert len(ended) == 24 and max(ended.values()) < 9, ended  # none lasts: refused, given away or cut
    assert refused >= 1 or "cut: slot given to another network" in log
    assert "cut: too slow" in log, log[-3000:]


# --- 15: self-test results ----------------------------------------------------------------------


def test_results_from_many_addresses_are_capped_overall_with_a_share_left_for_others(tmp_path):
    from test_selftest import observations

    from readiness.selftest.web import RESULTS_PER_MINUTE_ALL

    srv = Served(tmp_path)
    body = json.dumps(observations()).encode()
    sources = [f"127.0.6.{i}" for i in range(1, 21)]
    codes: list[int] = []
    retry_after: list[int] = []
    try:
        for _ in range(4):  # 20 addresses x 4 = 80 results, each address far under its own 30
            for src in sources:
                status, headers, _, _ = _request(_tcp(srv.port, source=src), "POST", "/__selftest/result", body,
                                                 {"Content-Type": "application/json"}, timeout=30)
                codes.append(status)
                if status == 429:
                    retry_after.append(int(headers["retry-after"]))
        during = _legit(_tcp(srv.port))
        mine = _request(_tcp(srv.port), "POST", "/__selftest/result", body, {"Content-Type": "application/json"},
                        timeout=30)[0]
    finally:
        log = srv.stop()
    stored = len(list((tmp_path / "results").glob("*.json")))
    assert codes.count(200) <= RESULTS_PER_MINUTE_ALL and codes.count(429) >= 80 - RESULTS_PER_MINUTE_ALL, codes
    assert retry_after and all(1 <= r <= 60 for r in retry_after), retry_after
    assert _answered(during), during
    assert mine == 200  # a network that has stored nothing yet still has its share
    assert stored == codes.count(200) + 1, (stored, codes.count(200))
    assert "Traceback" not in log


# --- 16: WebRTC peers ---------------------------------------------------------------------------


def _offer() -> str:
    from aiortc import RTCPeerConnection

    async def make() -> str:
        pc = RTCPeerConnection()
        pc.createDataChannel("probe", ordered=False, maxRetransmits=0)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


def test_offers_that_never_connect_hold_no_webrtc_peer_for_long(tmp_path):
    from test_selftest import webrtc_echo

    from readiness.selftest.peer import MAX_PEERS, MAX_PEERS_PER_NETWORK, PEER_CONNECT_S, available

    need(available(), "aiortc is not installed (tests/run.sh installs the server extra)")
    srv = Served(tmp_path)
    sdp = json.dumps({"type": "offer", "sdp": _offer()}).encode()

    def offer(source: str) -> int:
        return _request(_tcp(srv.port, source=source), "POST", "/__selftest/rtc", sdp, timeout=15)[0]

    try:
        one = [offer("127.0.7.1") for _ in range(8)]  # one address: its network's share, no more
        time.sleep(PEER_CONNECT_S + 1.5)
        again = offer("127.0.7.1")  # its peers never connected: their places were freed by now, not in a minute
        networks = [f"127.0.7.{i}" for i in range(2, 2 + MAX_PEERS // MAX_PEERS_PER_NETWORK)]
        many = [offer(src) for src in networks for _ in range(MAX_PEERS_PER_NETWORK)]  # every peer taken
        during = _legit(_tcp(srv.port))
        # every peer taken, none connected: this network still gets in, and each peer that
        # closes frees its place at once (one more in a row than the network's share)
        echoed = []
        for _ in range(MAX_PEERS_PER_NETWORK + 1):
            status, echoes = webrtc_echo(srv.port, 5, "127.0.0.1")
            echoed.append((status, sorted(echoes)))
            time.sleep(0.5)
    finally:
        log = srv.stop()
    assert one == [200] * MAX_PEERS_PER_NETWORK + [503] * (8 - MAX_PEERS_PER_NETWORK), one
    assert MAX_PEERS_PER_NETWORK < 8 <= MAX_PEERS  # eight offers from one address hold no more than its share
    assert again == 200
    assert many.count(200) >= MAX_PEERS - MAX_PEERS_PER_NETWORK, many
    assert _answered(during), during
    assert echoed == [(200, [f"{i} probe" for i in range(5)])] * (MAX_PEERS_PER_NETWORK + 1), echoed
    assert "Traceback" not in log


def test_a_full_table_gives_a_newcomer_the_oldest_waiting_place_of_the_biggest_holder():
    from readiness.server.fairness import Hold as _Hold, Slots as _Counted

    pairs = [socket.socketpair() for _ in range(6)]
    try:
        table = _Counted(total=4, per_client=3)
        big = [_Hold("192.0.2.1", pairs[i][0]) for i in range(3)]
        busy = _Hold("192.0.2.2", pairs[3][0], "busy")
        for h in [*big, busy]:
            assert table.take(h, "made room") is True
        big[1].set("headers")  # trickling its headers: taken back before the idle ones
        newcomer = _Hold("198.51.100.1", pairs[4][0])
        assert table.take(newcomer, "made room") is big[1] and big[1].cut == "made room"
        assert pairs[1][1].recv(1) == b""  # its connection was ended
        newcomer.set("busy")
        second = _Hold("198.51.100.1", pairs[5][0])
        assert table.take(second, "made room") is big[0]  # still the biggest holder
        for h in (second, big[2]):
            h.set("busy")
        assert table.take(_Hold("192.0.2.2", pairs[5][0]), "made room") is False  # none holds more, none idle
        busy.set("waiting")  # an idle keep-alive of its own: that one goes, no one else loses
        again = _Hold("192.0.2.2", pairs[5][0])
        assert table.take(again, "made room") is busy
        table.give(big[1])  # its thread leaving later changes nothing
        assert len(table.held) == 4 and table.by_client == {"192.0.2.1": 1, "192.0.2.2": 1, "198.51.100.1": 2}
    finally:
        for a, b in pairs:
            a.close()
            b.close()
