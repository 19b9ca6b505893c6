"""``readiness serve``'s measurement side: the endpoints the agents' network checks measure against.

Two HTTP endpoints with the same shape as Cloudflare's speed test (``GET /__down?bytes=N`` sends
N bytes, ``POST /__up`` swallows the body), a ``GET /__info`` that tells clients which UDP port
answers STUN, and a STUN Binding responder on that port (``server.stun.Responder``). So
``readiness run --server http://host:8080`` measures bandwidth, loaded latency, UDP
RTT/jitter/loss against the organisation's own box. :func:`run_server` serves them, beside the
routes other features bring (collector, self-test page), on the framework of ``server.http``.

Each test served (a client's transfers and STUN probes, until it has been quiet for 2 s) logs
one line; STUN from many addresses at once is summarised in one line a minute. SIGINT/SIGTERM
stop it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from readiness.measure.stun import DEFAULT_PORT as DEFAULT_STUN_PORT
from readiness.server.http import DEFAULT_LIMITS, check_limits, listen, log
from readiness.server.routes import BodyError, Request, Response, Route
from readiness.server.stun import Responder

DEFAULT_HTTP_PORT = 8080
_CHUNK = memoryview(bytes(256 * 1024))
_STUN_ONE_BY_ONE = 3  # more STUN-only addresses than this finishing at once are summarised
_SUMMARY_EVERY_S = 60.0


# --- the built-in speed-test endpoints -----------------------------------------------------


def _info(req: Request) -> Response:
    req.server.events.info(req.client)
    lim = req.limits
    return Response.json({"service": "readiness", "stun_port": req.server.stun_port,
                          "max_bytes": int(lim["max_bytes"]), "max_transfers": int(lim["max_transfers"])},
                         headers={"Access-Control-Allow-Origin": "*"})


def _down(req: Request) -> Response:
    try:
        nbytes = int(req.query.get("bytes", ["0"])[0])
    except ValueError:
        return Response.json({"error": "bytes must be a whole number"}, 400)
    if nbytes < 0:
        return Response.json({"error": "bytes must not be negative"}, 400)
    if nbytes > req.limits["max_bytes"]:
        return Response.json({"error": f"at most {int(req.limits['max_bytes'])} bytes per request"}, 413)

    def stream() -> Iterator[bytes]:
        started, sent, outcome = time.monotonic(), 0, "client closed"
        try:
            while sent < nbytes:
                cut = req.cut_reason()
                if cut:
                    outcome = cut
                    return
                n = min(len(_CHUNK), nbytes - sent)
                yield _CHUNK[:n]
                sent += n
            outcome = "complete"
        finally:
            if outcome != "complete":
                outcome = req.cut_reason() or outcome  # a slot given to another network says so
            req.server.events.transfer(req.client, "down", sent, started, time.monotonic(), outcome)

    return Response(200, stream(), "application/octet-stream", length=nbytes,
                    headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"})


def _up(req: Request) -> Response | None:
    started, outcome = time.monotonic(), "complete"
    got = 0
    try:
        for data in req.body.chunks():
            got += len(data)
    except BodyError as e:
        outcome = e.outcome
    req.server.events.transfer(req.client, "up", got, started, time.monotonic(), outcome)
    if outcome != "complete":
        return None
    return Response.json({"bytes": got}, headers={"Access-Control-Allow-Origin": "*"})


SPEED_ROUTES = (
    Route("GET", "/__info", _info),
    Route("GET", "/__down", _down, transfer=True),
    Route("POST", "/__up", _up, max_body=None, transfer=True),
)


# --- logging: one line per test ------------------------------------------------------------


class TestLog:
    """Gathers what one client does (parallel transfers, STUN probes) into one log line per test.

    A client's test is over once it has been quiet for ``idle_s``; a speed test opens several
    connections and many requests, and a line per request would bury the log. STUN needs no
    handshake, so its source address can be forged: when many STUN-only addresses finish at
    once, they become one summary line at most every minute instead of a line each.
    """

    def __init__(self, idle_s: float = 2.0) -> None:
        self.idle_s = idle_s
        self.lock = threading.Lock()
        self.clients: dict[str, dict] = {}
        self.stun_summary = [0, 0, 0]  # addresses, answered, refused
        self.last_summary = time.monotonic()

    def _client(self, ip: str) -> dict:
        c = self.clients.get(ip)
        if c is None:
            c = self.clients[ip] = {"last": time.monotonic(), "stun_ok": 0, "stun_no": 0, "info": 0, "notes": set(),
                                    "down": [0, 0, None, None], "up": [0, 0, None, None]}  # bytes, requests, first, last
        return c

    def transfer(self, ip: str, what: str, nbytes: int, started: float, ended: float, outcome: str) -> None:
        with self.lock:
            c = self._client(ip)
            d = c[what]
            d[0] += nbytes
            d[1] += 1
            d[2] = started if d[2] is None else min(d[2], started)
            d[3] = ended if d[3] is None else max(d[3], ended)
            c["last"] = time.monotonic()
            if outcome not in ("complete", "client closed"):
                c["notes"].add(outcome)

    def info(self, ip: str) -> None:
        with self.lock:
            c = self._client(ip)
            c["info"] += 1
            c["last"] = time.monotonic()

    def stun(self, ip: str, answered: int, refused: int) -> None:
        with self.lock:
            c = self._client(ip)
            c["stun_ok"] += answered
            c["stun_no"] += refused
            c["last"] = time.monotonic()

    def refused(self, ip: str, why: str) -> None:
        with self.lock:
            c = self._client(ip)
            c["notes"].add(why)
            c["last"] = time.monotonic()

    def flush(self, force: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            done = [ip for ip, c in self.clients.items() if force or now - c["last"] > self.idle_s]
            finished = [(ip, self.clients.pop(ip)) for ip in done]
            stun_only = [(ip, c) for ip, c in finished if not (c["down"][1] or c["up"][1] or c["notes"] or c["info"])]
            if len(stun_only) > _STUN_ONE_BY_ONE or self.stun_summary[0]:
                for _, c in stun_only:
                    self.stun_summary[0] += 1
                    self.stun_summary[1] += c["stun_ok"]
                    self.stun_summary[2] += c["stun_no"]
                finished = [f for f in finished if f not in stun_only]
            summary = None
            if self.stun_summary[0] and (force or now - self.last_summary >= _SUMMARY_EVERY_S):
                summary, self.stun_summary = self.stun_summary, [0, 0, 0]
                self.last_summary = now
        for ip, c in finished:
            log(f"{ip} test: " + "; ".join(self._parts(c)))
        if summary:
            log(f"stun from {summary[0]} addresses: {summary[1]} answered, {summary[2]} refused or dropped "
                "(many addresses at once, not logged one by one)")

    @staticmethod
    def _parts(c: dict) -> list[str]:
        parts = []
        for what in ("down", "up"):
            nbytes, requests, first, last = c[what]
            if requests:
                secs = max((last or 0) - (first or 0), 1e-6)
                parts.append(f"{what} {nbytes} B in {requests} requests, {secs:.2f} s, "
                             f"{nbytes * 8 / secs / 1e6:.1f} Mbit/s")
        if c["stun_ok"] or c["stun_no"]:
            parts.append(f"stun {c['stun_ok']} answered" + (f", {c['stun_no']} refused or dropped" if c["stun_no"] else ""))
        if c["info"]:
            parts.append(f"info {c['info']} request{'s' if c['info'] != 1 else ''}")
        parts.extend(sorted(c["notes"]))
        return parts


def run_server(host: str = "0.0.0.0", http_port: int = DEFAULT_HTTP_PORT,
               stun_port: int = DEFAULT_STUN_PORT, routes: Iterable[Route] = (), ssl_context: Any = None,
               trusted_proxies: tuple[Any, ...] = (), on_listening: Any = None, **limits) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code (0 on a clean stop).

    ``routes`` are served beside the built-in speed-test endpoints (first match wins, so a
    route can also replace one). ``ssl_context`` (an ``ssl.SSLContext`` with its certificate
    loaded, see :func:`tls_context`) serves HTTPS instead of HTTP. ``limits`` override
    :data:`DEFAULT_LIMITS`; ``None`` values keep the default. ``trusted_proxies``: reverse
    proxies whose forwarding headers name the client (``server.clients.parse_proxies``). Port 0 picks a free port (the
    "listening" line says which). ``on_listening()`` is called once the sockets listen, before
    the first request is served (for work that must not delay the start).
    """
    unknown = set(limits) - set(DEFAULT_LIMITS)
    if unknown:
        raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
    lim = dict(DEFAULT_LIMITS)
    lim.update({k: v for k, v in limits.items() if v is not None})
    check_limits(lim)
    tests = TestLog()
    try:
        responder = Responder(host, stun_port, idle_s=0.5, on_idle=tests.stun)
    except OSError as e:
        log(f"cannot listen for STUN on UDP {host}:{stun_port}: {e.strerror or e}")
        return 2
    try:
        httpd = listen(host, http_port, [*routes, *SPEED_ROUTES], lim, ssl_context, tests, tuple(trusted_proxies))
    except OSError as e:
        responder.close()
        log(f"cannot listen for HTTP on {host}:{http_port}: {e.strerror or e}")
        return 2
    httpd.stun_port = responder.port
    def stop(signum, _frame) -> None:
        if not httpd.stopping.is_set():
            log(f"stopping ({signal.Signals(signum).name})")
            httpd.stopping.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    # Handlers first: a client may stop the server the moment it says it is listening.
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    responder.start()
    port = httpd.server_address[1]
    paths = ", ".join(f"{'|'.join(r.methods())} {r.path}{'*' if r.prefix else ''}" for r in httpd.routes)
    scheme = "https" if ssl_context is not None else "http"
    log(f"listening on {scheme}://{host}:{port} ({paths}), "
        f"STUN on udp {host}:{responder.port}; max {int(lim['max_bytes'])} B per request, "
        f"{int(lim['max_transfers'])} transfers and {int(lim['max_connections'])} connections at once")

    def janitor() -> None:
        while not httpd.stopping.wait(0.5):
            tests.flush()

    threading.Thread(target=janitor, daemon=True, name="test-log").start()
    if on_listening is not None:
        on_listening()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        httpd.stopping.set()
        httpd.server_close()
        responder.close()
        tests.flush(force=True)
        log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m readiness.server.measure``: the same as ``readiness serve``."""
    ap = argparse.ArgumentParser(prog="readiness-serve", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT)
    ap.add_argument("--stun-port", type=int, default=DEFAULT_STUN_PORT)
    ap.add_argument("--max-bytes", type=int)
    ap.add_argument("--max-transfers", type=int)
    ap.add_argument("--timeout", type=float, dest="idle_timeout_s")
    a = ap.parse_args(argv)
    try:
        return run_server(a.host, a.port, a.stun_port, max_bytes=a.max_bytes,
                          max_transfers=a.max_transfers, idle_timeout_s=a.idle_timeout_s)
    except ValueError as e:
        ap.error(str(e))


if __name__ == "__main__":
    sys.exit(main())
