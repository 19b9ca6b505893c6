"""The ``http`` bandwidth backend: parallel TCP streams against ``GET /__down`` / ``POST /__up``.

Used by the bandwidth check (``__init__.py``). The two endpoints follow Cloudflare's speed
test, so both ``readiness serve`` and https://speed.cloudflare.com are valid targets. Each
stream keeps one connection (HTTP/1.1 keep-alive) and asks for large payloads back to back,
so a stream never idles between requests. A sampler reads the byte counters every 50 ms; a
direction stops as soon as its rate is steady by ``estimator.is_steady`` (which waits for a
deep queue to fill) or at the time limit; the rate is ``estimator.steady_rate`` over the
steady part, ramp cut off.

Raw sockets instead of http.client: one fewer copy per chunk and exact byte accounting; this
must not be the bottleneck below 1 Gbit/s.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

from readiness.check import CheckContext, CheckError, Measurement
from readiness.checks.bandwidth import responsiveness
from readiness.measure import estimator, loaded, netcommon as net
from readiness.measure.loaded import Probe
from readiness.measure.netcommon import HttpUrl
from readiness.siteserver import SiteServer


_UP_CHUNK = memoryview(bytes(32 * 1024))  # small: a send blocks until all of it is queued
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


def _rtt_reader():
    """A function giving a TCP socket's own round-trip estimate in seconds, or None.

    Linux's struct tcp_info: tcpi_rtt (smoothed, sender side) at byte 68 and tcpi_rcv_rtt
    (the receiver's estimate, what a download sees) at byte 92, both in microseconds.
    """
    import struct
    import sys

    if sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO"):
        def linux(s: socket.socket, receiving: bool) -> float | None:
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            us = struct.unpack_from("=I", info, 92 if receiving else 68)[0]
            return us / 1e6 if us else None
        return linux
    return None


def _hole_reader():
    """A function telling whether a TCP connection has a loss hole, or None where unknown.

    Linux's struct tcp_info: receiving, tcpi_rcv_ooopack (u32 at byte 224, kernel 5.4+) counts
    packets that arrived out of order, which keep arriving for as long as a hole is open;
    sending, tcpi_sacked (u32 at byte 28) is the data the receiver holds beyond a hole now.
    """
    import struct
    import sys

    if sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO"):
        def linux(s: socket.socket, receiving: bool) -> int | None:
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            if receiving:
                return struct.unpack_from("=I", info, 224)[0] if len(info) >= 228 else None
            return struct.unpack_from("=I", info, 28)[0]
        return linux
    return None


_OUTQ = _outq_reader()
_RTT = _rtt_reader()
_HOLES = _hole_reader()
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
        self._last_holes: int | None = 0

    def _connect(self) -> socket.socket:
        fam, _, _, _, sa = self.addr
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(5.0)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.connect(sa)
        if self.t.scheme == "https":
            from readiness.measure.proxies import tls_context  # the OS trust store: works behind TLS inspection

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

    def hole_count(self) -> int | None:
        """Down: out-of-order packets so far (cumulative); up: packets held beyond a hole now."""
        s = self.sock
        if _HOLES is None:
            return None
        if s is None:
            return self._last_holes
        try:
            self._last_holes = _HOLES(s, self.direction == "down")
        except OSError:
            pass
        return self._last_holes

    def tcp_rtt_s(self) -> float | None:
        """The connection's own RTT estimate (seconds), where the platform tells it."""
        s = self.sock
        if s is None or _RTT is None:
            return None
        try:
            return _RTT(s, self.direction == "down")
        except OSError:
            return None

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


def transfer(target: Target, addr: tuple, direction: str, *, streams: int = 4, min_s: float = 1.5,
             max_s: float = 4.0, request_bytes: int = 25_000_000, rtts: list | None = None) -> dict:
    """Load one direction and return its numbers (Mbit/s over the steady part, timeline).

    ``rtts`` is the running latency probes' list of ``(sent at, rtt seconds)``, read while it
    grows: it tells the estimator how long a loaded round trip is and whether the queue is
    still filling. ``tcp_rtt`` samples the streams' own RTT estimate (the draft's stand-in for
    self probes on HTTP/1.1, see ``responsiveness.py``).
    """
    stop = threading.Event()
    workers = [_Stream(target, addr, direction, request_bytes, stop) for _ in range(max(1, streams))]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    ticks: list[tuple] = [(t0, 0, False)]
    holes_before: int | None = 0
    tcp_rtt: list[tuple[float, float]] = []
    seen: list = []
    steady = False
    try:
        while True:
            time.sleep(TICK_S)
            now = time.monotonic()
            delivered = sum(w.delivered() for w in workers)
            counts = [w.hole_count() for w in workers]
            if any(c is None for c in counts):
                open_hole = None  # unknown here: the rate rule alone decides
            elif direction == "down":
                open_hole = holes_before is not None and sum(counts) > holes_before
                holes_before = sum(counts)
            else:
                open_hole = sum(counts) > 0
            ticks.append((now, delivered, open_hole))
            if len(ticks) % 4 == 0:  # every 200 ms is plenty for a smoothed estimate
                tcp_rtt.extend((now, r) for r in (w.tcp_rtt_s() for w in workers) if r)
            elapsed = now - t0
            seen = list(rtts or ())  # a snapshot: the estimate below must see what the rule saw
            if elapsed >= min_s and estimator.is_steady(ticks, seen):
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
    est = estimator.steady_rate(ticks, seen)
    timeline = []
    for i in range(1, len(ticks)):
        if ticks[i][0] - t0 >= (len(timeline) + 1) * estimator.SLICE_S or i == len(ticks) - 1:
            timeline.append(round(ticks[i][1] * 8 / 1e6, 3))
    out = {"mbps": est.bps / 1e6, "bytes": total, "seconds": ticks[-1][0] - t0, "ramp_s": est.ramp_s,
           "steady": steady, "streams": len(workers), "errors": errors, "slice_mbps": list(est.slice_mbps),
           "cumulative_mbit_every_250ms": timeline, "t_load_start": t0, "t_steady_start": t0 + est.ramp_s, "t_loaded_from": t0 + est.loaded_from_s,
           "t_load_end": ticks[-1][0], "tcp_rtt": tcp_rtt}
    if total == 0 or all(w.error for w in workers):
        # every stream failed: whatever bytes moved (into a server that then refused them) are
        # no measure of the link
        out["mbps"] = None
    return out


def run(ctx: CheckContext, server: SiteServer | None) -> Measurement:
    """The whole http-backend measurement: idle RTT, then each direction loaded in turn."""

    s = ctx.settings
    target = Target(server.url if server is not None else str(s["url"]))
    try:
        infos, _ = net.resolve(target.host, target.port, 2.0)
    except Exception as e:  # noqa: BLE001
        if isinstance(e, (socket.gaierror, TimeoutError)):
            raise net.offline_error([target.host]) from None
        raise CheckError(f"cannot look up {target.host}: {e}", code="speed_server_unresolved",
                         host=target.host, error=str(e)) from None
    addr = infos[0]
    probe = _probe_target(target, str(s["stun"]), server)
    details: dict = {"backend": "http", "url": target.url, "address": addr[4][0], "probe": probe.describe(),
                     "estimator": "upper hull of the in-order byte counts; steady over slices of one loaded "
                                  "round trip once the queue stops growing"}

    ctx.say("measuring idle latency", step="bandwidth_idle")
    idle = probe.idle()
    if idle is None and probe.kind == "stun":
        probe = loaded.Probe("tcp", (target.host, target.port))  # the STUN port does not answer
        details["probe"] = probe.describe() + " (STUN got no answer)"
        idle = probe.idle()
    if idle is None:
        raise CheckError(f"the speed-test server {target.host}:{target.port} does not answer",
                         code="speed_server_silent", server=f"{target.host}:{target.port}")
    details["idle_rtt_ms"] = round(idle, 2)
    metrics: dict = {"idle_rtt_ms": round(idle, 2)}
    for direction, metric in (("down", "download_mbps"), ("up", "upload_mbps")):
        ctx.say(f"measuring {'download' if direction == 'down' else 'upload'}",
                step="bandwidth_download" if direction == "down" else "bandwidth_upload")
        running = probe.start()
        foreign = (responsiveness.ForeignProber(target.scheme, target.host, target.hostheader, target.base, addr).start()
                   if s.get("responsiveness", True) else None)
        r = transfer(target, addr, direction, streams=int(s["streams"]),
                     min_s=float(s["min_duration_s"]), max_s=float(s["max_duration_s"]),
                     request_bytes=max(100_000, int(float(s["request_mb"]) * 1e6)), rtts=running.rtts)
        samples = running.finish()
        foreign_samples = foreign.finish() if foreign is not None else []
        entry = {k: v for k, v in r.items() if not k.startswith("t_") and k != "tcp_rtt"}
        if r["mbps"] is not None:
            entry["mbps"] = round(r["mbps"], 3)
            metrics[metric] = round(r["mbps"], 3)
        entry["ramp_s"] = round(r["ramp_s"], 3)
        entry["seconds"] = round(r["seconds"], 3)
        # latency under load from the end of the ramp (the queue as a call would meet it, the
        # slow-start overshoot included), not only over the rate's steady window
        entry.update(loaded.summarize(samples, idle, r["t_loaded_from"], r["t_load_end"]))
        if foreign is not None:
            entry["responsiveness"] = responsiveness.for_window(foreign_samples, r["tcp_rtt"],
                                                                r["t_loaded_from"], r["t_load_end"])
        details[direction] = entry
    loaded.add_loaded_facts(metrics, details)
    # the figure's spread within this run: its steady window's slices (one loaded round trip each)
    spread = {metric: estimator.spread(details[d].get("slice_mbps", []))
              for d, metric in (("down", "download_mbps"), ("up", "upload_mbps")) if metric in metrics}
    spread = {k: v for k, v in spread.items() if v}
    if spread:
        details["spread"] = spread
    details["responsiveness_method"] = "draft-ietf-ippm-responsiveness, see checks/bandwidth/responsiveness.py"
    if "download_mbps" not in metrics and "upload_mbps" not in metrics:
        errs = details["down"]["errors"] + details["up"]["errors"]
        why = "; ".join(sorted(set(errs))) or "no data moved"
        raise CheckError("the speed test failed: " + why, code="speed_test_failed", errors=why)
    return Measurement(metrics=metrics, details=details)


def _probe_target(target: Target, stun_setting: str, server):
    if stun_setting.lower() == "none":
        return Probe("tcp", (target.host, target.port))
    if stun_setting.lower() != "auto":
        return Probe("stun", net.split_hostport(stun_setting, 3478))
    if server is None and target.host == "speed.cloudflare.com":
        return Probe("stun", ("stun.cloudflare.com", 3478))
    # the site's server told its STUN port once, at the start of the run; another URL is asked here
    port = server.stun_port if server is not None else net.advertised_stun_port(target.url)
    if port is None:
        return Probe("tcp", (target.host, target.port))
    return Probe("stun", (target.host, port))
