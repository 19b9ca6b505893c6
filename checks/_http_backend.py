"""The ``http`` bandwidth backend: parallel TCP streams against ``GET /__down`` / ``POST /__up``.

Used by ``bandwidth.py``. The two endpoints follow Cloudflare's speed test, so both
``readiness serve`` and https://speed.cloudflare.com are valid targets. Each stream keeps one
connection (HTTP/1.1 keep-alive) and asks for large payloads back to back, so a stream never
idles between requests. A sampler reads the byte counters every 100 ms; a direction stops as
soon as its rate has been steady (four 250 ms slices within ±10 %) or at the time limit. The
reported rate covers the steady part only: the ramp (TCP slow start, a shaper's initial
burst) is cut off.

Raw sockets instead of http.client: one fewer copy per chunk and exact byte accounting; this
must not be the bottleneck below 1 Gbit/s.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

from readiness.check import CheckError

from ._netcommon import HttpUrl

_UP_CHUNK = memoryview(bytes(32 * 1024))  # small: a send blocks until all of it is queued
SLICE_S = 0.25
TICK_S = 0.05


class Target(HttpUrl):
    """The server a transfer runs against: any server with the /__down and /__up endpoints."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "bandwidth url must be http(s)://host[:port]")


def _outq_reader():
    """A function giving the bytes still in a TCP socket's send queue, or None where unknown."""
    import sys

    if sys.platform.startswith("linux"):
        import fcntl
        import struct
        import termios

        def linux(s: socket.socket) -> int:  # SIOCOUTQ: unsent + unacknowledged bytes
            return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        return linux
    if sys.platform == "darwin":
        def darwin(s: socket.socket) -> int:  # SO_NWRITE: bytes not yet acknowledged
            return s.getsockopt(socket.SOL_SOCKET, 0x1024)
        return darwin
    return None


def _received_reader():
    """A function giving the bytes a TCP socket's kernel has received, read by us or not."""
    import struct
    import sys

    if sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO"):
        def linux(s: socket.socket) -> int:  # struct tcp_info: u64 tcpi_bytes_received at 128
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            if len(info) < 136:
                raise OSError("old kernel: no tcpi_bytes_received")
            return struct.unpack_from("=Q", info, 128)[0]
        return linux
    return None


_OUTQ = _outq_reader()
_HAS_OUTQ = _OUTQ is not None
_RECEIVED = _received_reader()


def unsent(s: socket.socket) -> int:
    if _OUTQ is None:
        return 0
    try:
        return _OUTQ(s)
    except OSError:
        return 0


class _Stream(threading.Thread):
    def __init__(self, target: Target, addr: tuple, direction: str, request_bytes: int,
                 stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"bw-{direction}")
        self.t, self.addr, self.direction = target, addr, direction
        self.request_bytes, self.stop = request_bytes, stop
        self.counted = 0  # what delivered() last saw
        self.bytes = 0  # received (down)
        self.sent = 0  # handed to the kernel (up)
        self.error: str | None = None
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        fam, _, _, _, sa = self.addr
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5.0)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect(sa)
        if self.t.scheme == "https":
            from readiness.proxies import tls_context  # the OS trust store: works behind TLS inspection

            s = tls_context().wrap_socket(s, server_hostname=self.t.host)
        self.sock = s
        return s

    def _headers(self, s: socket.socket, buf: bytearray) -> tuple[int, int, bytes]:
        """Read a response head; returns (status, content-length, body bytes already read)."""
        data = b""
        while b"\r\n\r\n" not in data:
            n = s.recv_into(buf)
            if not n:
                raise ConnectionError("the server closed the connection")
            data += bytes(buf[:n])
            if len(data) > 65536 and b"\r\n\r\n" not in data:
                raise ConnectionError("response headers too long")
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        length = -1
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        return status, length, rest

    def run(self) -> None:
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        try:
            s = self._connect()
            if self.direction == "up" and not _HAS_OUTQ:
                # no way to read the send queue here: keep it small so it cannot inflate the count
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
            while not self.stop.is_set():
                if self.direction == "down":
                    s.sendall((f"GET {self.t.base}/__down?bytes={self.request_bytes} HTTP/1.1\r\n"
                               f"Host: {self.t.hostheader}\r\nUser-Agent: readiness\r\n"
                               "Accept-Encoding: identity\r\n\r\n").encode())
                    status, length, rest = self._headers(s, buf)
                    if status != 200:
                        raise ConnectionError(_status_text(status, f"{self.t.url}/__down"))
                    self.bytes += len(rest)
                    left = length - len(rest) if length >= 0 else 1 << 62
                    while left > 0 and not self.stop.is_set():
                        n = s.recv_into(view[:min(len(buf), left)])
                        if not n:
                            if length < 0:
                                return
                            raise ConnectionError("the server closed the connection mid-transfer")
                        self.bytes += n
                        left -= n
                else:
                    s.sendall((f"POST {self.t.base}/__up HTTP/1.1\r\nHost: {self.t.hostheader}\r\n"
                               "User-Agent: readiness\r\nContent-Type: application/octet-stream\r\n"
                               f"Content-Length: {self.request_bytes}\r\n\r\n").encode())
                    left = self.request_bytes
                    while left > 0 and not self.stop.is_set():
                        n = s.send(_UP_CHUNK[:min(len(_UP_CHUNK), left)])
                        self.sent += n
                        left -= n
                    if left > 0:
                        return
                    status, length, rest = self._headers(s, buf)
                    if status != 200:
                        raise ConnectionError(_status_text(status, f"{self.t.url}/__up"))
                    left = max(0, length - len(rest))
                    while left > 0:
                        n = s.recv_into(view[:min(len(buf), left)])
                        if not n:
                            break
                        left -= n
        except (OSError, ValueError) as e:
            if not self.stop.is_set():
                self.error = _plain(e, self.t)
        finally:
            self.close()

    def delivered(self) -> int:
        """Bytes that crossed the link, as the kernel counts them.

        Down: what the kernel received, where it tells (Linux), else what we read; a process
        starved of CPU for a moment reads late and then in a burst, which would skew any
        window. Up: what we sent minus what still sits in the send queue (the queue grows to
        megabytes, and counting it would overstate the rate).
        """
        s = self.sock
        if s is None:
            return self.counted
        try:
            if self.direction == "down":
                now = _RECEIVED(s) if _RECEIVED is not None else self.bytes
            else:
                now = self.sent - unsent(s)
        except OSError:
            now = self.bytes if self.direction == "down" else self.sent - unsent(s)
        self.counted = max(self.counted, now)
        return self.counted

    def close(self) -> None:
        self.delivered()
        s, self.sock = self.sock, None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def _status_text(status: int, url: str) -> str:
    if status == 503:
        return f"the speed-test server is busy (HTTP 503 from {url}); try again in a minute"
    if status == 404:
        return f"there is no speed-test endpoint at {url} (HTTP 404)"
    if status in (401, 403):
        return f"the speed-test server refused the test (HTTP {status} from {url})"
    return f"the speed-test server answered HTTP {status} ({url})"


def _plain(e: BaseException, t: Target) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"the certificate of {t.host} is not trusted ({e.verify_message})"
    if isinstance(e, ConnectionRefusedError):
        return f"{t.host}:{t.port} refused the connection (no speed-test server there?)"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return f"{t.host}:{t.port} stopped answering (timed out)"
    if isinstance(e, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
        return f"{t.host}:{t.port} closed the connection during the transfer"
    if type(e) is ConnectionError and e.args:  # our own messages
        return str(e.args[0])
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def steady_rate(ticks: list[tuple[float, int]]) -> tuple[float, float, bool]:
    """(bits/s over the steady part, seconds of ramp cut off, steady?) from (t, total bytes) ticks.

    The last second's rate is the reference; the ramp ends at the first 250 ms slice that
    carries at least 85 % of it, and the rate is taken from there to the end. Searching
    forward (not back from the end) keeps a reader stall and its catch-up burst together
    inside the window: bytes are counted when read, so a busy CPU delays them without losing them.
    """
    if len(ticks) < 2:
        return 0.0, 0.0, False
    t_end, b_end = ticks[-1]
    t0 = ticks[0][0]

    def at(t: float) -> tuple[float, int]:
        best = ticks[0]
        for tk in ticks:
            if tk[0] <= t + 1e-9:
                best = tk
            else:
                break
        return best

    ref_t, ref_b = at(t_end - 1.0)
    if t_end - ref_t <= 0:
        return 0.0, 0.0, False
    ref_rate = (b_end - ref_b) / (t_end - ref_t)
    start_t, start_b = ref_t, ref_b
    t = t0
    while t + SLICE_S <= ref_t + 1e-9:
        a_t, a_b = at(t)
        b_t, b_b = at(t + SLICE_S)
        if b_t > a_t and (b_b - a_b) / (b_t - a_t) >= 0.85 * ref_rate:
            start_t, start_b = a_t, a_b
            break
        t += SLICE_S
    rate = (b_end - start_b) / (t_end - start_t) * 8
    return rate, start_t - t0, _is_steady(ticks)


def _is_steady(ticks: list[tuple[float, int]]) -> bool:
    """True when the last four 250 ms slices are within ±10 % of their mean."""
    t_end = ticks[-1][0]
    if t_end - ticks[0][0] < 4 * SLICE_S:
        return False
    edges = [t_end - k * SLICE_S for k in range(4, -1, -1)]
    vals = []
    j = 0
    for e in edges:
        while j + 1 < len(ticks) and ticks[j + 1][0] <= e + 1e-9:
            j += 1
        vals.append(ticks[j])
    rates = [(vals[i + 1][1] - vals[i][1]) / max(1e-6, vals[i + 1][0] - vals[i][0]) for i in range(4)]
    mean = sum(rates) / 4
    return mean > 0 and max(abs(r - mean) for r in rates) <= 0.10 * mean


def transfer(target: Target, addr: tuple, direction: str, *, streams: int = 4, min_s: float = 1.5,
             max_s: float = 4.0, request_bytes: int = 25_000_000) -> dict:
    """Load one direction and return its numbers (Mbit/s over the steady part, timeline)."""
    stop = threading.Event()
    workers = [_Stream(target, addr, direction, request_bytes, stop) for _ in range(max(1, streams))]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    ticks = [(t0, 0)]
    steady = False
    try:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            ticks.append((now, sum(w.delivered() for w in workers)))
            elapsed = now - t0
            if elapsed >= min_s and _is_steady(ticks):
                steady = True
                break
            if elapsed >= max_s or not any(w.is_alive() for w in workers):
                break
    finally:
        stop.set()
        for w in workers:
            w.close()  # unblocks a recv/send in flight
        for w in workers:
            w.join(2.0)
    errors = sorted({w.error for w in workers if w.error})
    total = ticks[-1][1]
    rate, ramp_s, _ = steady_rate(ticks)
    timeline = []
    for i in range(1, len(ticks)):
        if ticks[i][0] - t0 >= (len(timeline) + 1) * SLICE_S or i == len(ticks) - 1:
            timeline.append(round(ticks[i][1] * 8 / 1e6, 3))
    out = {"mbps": rate / 1e6, "bytes": total, "seconds": ticks[-1][0] - t0, "ramp_s": ramp_s,
           "steady": steady, "streams": len(workers), "errors": errors,
           "cumulative_mbit_every_250ms": timeline, "t_load_start": t0, "t_steady_start": t0 + ramp_s,
           "t_load_end": ticks[-1][0]}
    if total == 0 or all(w.error for w in workers):
        # every stream failed: whatever bytes moved (into a server that then refused them) are
        # no measure of the link
        out["mbps"] = None
    return out
