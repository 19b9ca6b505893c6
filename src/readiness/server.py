"""``readiness serve``: the measurement server IT runs at a site.

Sits beside the network checks as their far end. Two HTTP endpoints with the same shape as
Cloudflare's speed test (``GET /__down?bytes=N`` sends N bytes, ``POST /__up`` swallows the
body), a ``GET /__info`` that tells clients which UDP port answers STUN, and a STUN Binding
responder on that port (``stun.Responder``). So ``readiness run --server http://host:8080``
measures bandwidth, loaded latency, UDP RTT/jitter/loss against the organisation's own box.

Bounded so it cannot be abused: bytes per request, concurrent transfers, an idle timeout and a
wall-clock cap per request, STUN answers rate-limited per client. Each test served (a client's
transfers and STUN probes, until it has been quiet for 2 s) logs one line. SIGINT/SIGTERM stop
it cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from readiness import stun

DEFAULT_HTTP_PORT = 8080
DEFAULT_STUN_PORT = stun.DEFAULT_PORT
DEFAULT_LIMITS = {
    "max_bytes": 256 * 1024 * 1024,  # per request, either direction
    "max_transfers": 16,  # concurrent /__down + /__up
    "idle_timeout_s": 10.0,  # a socket silent this long is dropped
    "max_request_s": 30.0,  # no single transfer runs longer
}
_CHUNK = memoryview(bytes(256 * 1024))


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {message}", file=sys.stderr, flush=True)


class _Tests:
    """Gathers what one client does (parallel transfers, STUN probes) into one log line per test.

    A client's test is over once it has been quiet for ``idle_s``; a speed test opens several
    connections and many requests, and a line per request would bury the log.
    """

    def __init__(self, idle_s: float = 2.0) -> None:
        self.idle_s = idle_s
        self.lock = threading.Lock()
        self.clients: dict[str, dict] = {}

    def _client(self, ip: str) -> dict:
        c = self.clients.get(ip)
        if c is None:
            c = self.clients[ip] = {"last": time.monotonic(), "stun_ok": 0, "stun_no": 0, "notes": set(),
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
        for ip, c in finished:
            parts = []
            for what in ("down", "up"):
                nbytes, requests, first, last = c[what]
                if requests:
                    secs = max((last or 0) - (first or 0), 1e-6)
                    parts.append(f"{what} {nbytes} B in {requests} requests, {secs:.2f} s, "
                                 f"{nbytes * 8 / secs / 1e6:.1f} Mbit/s")
            if c["stun_ok"] or c["stun_no"]:
                parts.append(f"stun {c['stun_ok']} answered" + (f", {c['stun_no']} refused or dropped" if c["stun_no"] else ""))
            parts.extend(sorted(c["notes"]))
            log(f"{ip} test: " + "; ".join(parts))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, limits: dict, stun_port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, handler)
        self.limits = limits
        self.stun_port = stun_port
        self.slots = threading.BoundedSemaphore(limits["max_transfers"])
        self.stopping = threading.Event()
        self.tests = _Tests()

    def handle_error(self, request, client_address) -> None:
        # a client that hangs up mid-request (every speed test does when it has seen enough)
        # is normal here, not a traceback
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            log(f"{client_address[0]} request failed: {exc!r}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection per stream
    server_version = "readiness-serve"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits["idle_timeout_s"])

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # one line per test is logged by _Tests

    def _reply(self, code: int, body: dict, close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _log_transfer(self, what: str, nbytes: int, started: float, outcome: str) -> None:
        self.server.tests.transfer(self.client_address[0], what, nbytes, started, time.monotonic(), outcome)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        if url.path == "/__info":
            lim = self.server.limits
            self._reply(200, {"service": "readiness", "stun_port": self.server.stun_port,
                              "max_bytes": lim["max_bytes"], "max_transfers": lim["max_transfers"]})
            return
        if url.path != "/__down":
            self._reply(404, {"error": "not found"})
            return
        try:
            nbytes = int(parse_qs(url.query).get("bytes", ["0"])[0])
        except ValueError:
            self._reply(400, {"error": "bytes must be a whole number"})
            return
        if nbytes < 0:
            self._reply(400, {"error": "bytes must not be negative"})
            return
        if nbytes > self.server.limits["max_bytes"]:
            self._reply(413, {"error": f"at most {self.server.limits['max_bytes']} bytes per request"})
            return
        if not self.server.slots.acquire(blocking=False):
            self._busy()
            return
        started = time.monotonic()
        sent, outcome = 0, "complete"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(nbytes))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            cap = started + self.server.limits["max_request_s"]
            while sent < nbytes:
                if self.server.stopping.is_set() or time.monotonic() > cap:
                    outcome = "cut: server stopping" if self.server.stopping.is_set() else "cut: too long"
                    self.close_connection = True
                    break
                n = min(len(_CHUNK), nbytes - sent)
                self.wfile.write(_CHUNK[:n])
                sent += n
        except (OSError, ValueError):
            outcome = "client closed"
            self.close_connection = True
        finally:
            self.server.slots.release()
        self._log_transfer("down", sent, started, outcome)

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path != "/__up":
            self._reply(404, {"error": "not found"}, close=True)
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._reply(411, {"error": "Content-Length required"}, close=True)
            return
        nbytes = int(length)
        if nbytes > self.server.limits["max_bytes"]:
            self._reply(413, {"error": f"at most {self.server.limits['max_bytes']} bytes per request"}, close=True)
            return
        if not self.server.slots.acquire(blocking=False):
            self._busy()
            return
        started = time.monotonic()
        got, outcome = 0, "complete"
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        try:
            cap = started + self.server.limits["max_request_s"]
            while got < nbytes:
                if self.server.stopping.is_set() or time.monotonic() > cap:
                    outcome = "cut: server stopping" if self.server.stopping.is_set() else "cut: too long"
                    break
                n = self.rfile.readinto(view[:min(len(buf), nbytes - got)])
                if not n:
                    outcome = "client closed"
                    break
                got += n
        except (OSError, ValueError):
            outcome = "client closed"
        finally:
            self.server.slots.release()
        self._log_transfer("up", got, started, outcome)
        if outcome == "complete":
            try:
                self._reply(200, {"bytes": got})
            except OSError:
                pass
        else:
            self.close_connection = True

    def _busy(self) -> None:
        self.send_response(503)
        self.send_header("Retry-After", "5")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.server.tests.refused(self.client_address[0],
                                  f"refused: {self.server.limits['max_transfers']} transfers already running")


def run_server(host: str = "0.0.0.0", http_port: int = DEFAULT_HTTP_PORT,
               stun_port: int = DEFAULT_STUN_PORT, **limits) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code (0 on a clean stop).

    ``limits`` override :data:`DEFAULT_LIMITS` (max_bytes, max_transfers, idle_timeout_s,
    max_request_s); ``None`` values keep the default. Port 0 picks a free port (the
    "listening" line says which).
    """
    unknown = set(limits) - set(DEFAULT_LIMITS)
    if unknown:
        raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}")
    lim = dict(DEFAULT_LIMITS)
    lim.update({k: v for k, v in limits.items() if v is not None})
    tests = _Tests()
    try:
        responder = stun.Responder(host, stun_port, idle_s=0.5, on_idle=tests.stun)
    except OSError as e:
        log(f"cannot listen for STUN on UDP {host}:{stun_port}: {e.strerror or e}")
        return 2
    try:
        httpd = _Server((host, http_port), _Handler, lim, responder.port)
    except OSError as e:
        responder.close()
        log(f"cannot listen for HTTP on {host}:{http_port}: {e.strerror or e}")
        return 2
    httpd.tests = tests
    def stop(signum, _frame) -> None:
        if not httpd.stopping.is_set():
            log(f"stopping ({signal.Signals(signum).name})")
            httpd.stopping.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    # Handlers first: a client may stop the server the moment it says it is listening.
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    responder.start()
    port = httpd.server_address[1]
    log(f"listening on http://{host}:{port} (GET /__down, POST /__up, GET /__info), "
        f"STUN on udp {host}:{responder.port}; max {lim['max_bytes']} B per request, "
        f"{lim['max_transfers']} transfers at once")

    def janitor() -> None:
        while not httpd.stopping.wait(0.5):
            tests.flush()

    threading.Thread(target=janitor, daemon=True, name="test-log").start()
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
    """``python -m readiness.server``: the same as ``readiness serve``."""
    ap = argparse.ArgumentParser(prog="readiness-serve", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT)
    ap.add_argument("--stun-port", type=int, default=DEFAULT_STUN_PORT)
    ap.add_argument("--max-bytes", type=int)
    ap.add_argument("--max-transfers", type=int)
    ap.add_argument("--timeout", type=float, dest="idle_timeout_s")
    a = ap.parse_args(argv)
    return run_server(a.host, a.port, a.stun_port, max_bytes=a.max_bytes,
                      max_transfers=a.max_transfers, idle_timeout_s=a.idle_timeout_s)


if __name__ == "__main__":
    sys.exit(main())
