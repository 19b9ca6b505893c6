"""The STUN Binding responder: answers inside ``readiness serve`` (no delay) and, started as
``python -m readiness.server.stun`` with a delay, jitter and seeded drops, as the tests'
late-answering far end whose parameters are the ground truth. The wire format is
``readiness.measure.stun``'s."""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from typing import Callable

from readiness.measure.stun import BINDING_REQUEST, binding_response, read_message

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
                got_one = read_message(self.sock)
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
    """``python -m readiness.server.stun``: a standalone responder (the tests' late-answering far end)."""
    import argparse
    import signal
    import sys

    ap = argparse.ArgumentParser(prog="python -m readiness.server.stun", description="STUN Binding responder")
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
