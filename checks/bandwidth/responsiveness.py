"""Responsiveness under working conditions (RPM), after draft-ietf-ippm-responsiveness.

Round trips per minute while the link is loaded: 60 000 / round-trip time in ms, so higher is
better. What is followed from the draft, and what is not:

Followed
- Foreign probes (§ "Measuring Responsiveness"): on a *new* connection beside the loaded ones,
  the TCP handshake (``tcp_f``), the TLS handshake normalised to its round trips (``tls_f``,
  one for TLS 1.3, two before it; https only) and an HTTP GET of a 1-byte object until its
  whole response has arrived (``http_f``), all in ms.
- Self probes (``http_l``): the draft allows "the TCP stack estimated round-trip-time" of the
  load-generating connections where GETs cannot be multiplexed on them, as with our HTTP/1.1
  streams; that is what is used (Linux ``tcp_info``; elsewhere the self part is left out and
  the details say so).
- Aggregation: single-sided trimmed mean keeping the lowest 95 % (TMP = 95 %) of each set;
  ``Foreign = 60000 / mean(TM(tcp_f), [TM(tls_f)], TM(http_f))``, ``Loaded = 60000 / TM(http_l)``,
  ``RPM = (Foreign + Loaded) / 2``; the TCP-only formula without ``tls_f`` for http.
- Probe budget: a foreign probe starts every 100 ms whether or not the last one has finished
  (on a loaded link each takes a loaded round trip or two); about 1.5 kB each, so within the
  draft's 5 % of capacity (PTC) down to about 2.5 Mbit/s.
- The bands of the draft's introduction: poor below 300 RPM (200 ms), fair to 1000 (60 ms),
  good to 6000 (10 ms), excellent above.

Not followed (and why)
- Working conditions come from our own load (4 HTTP/1.1 streams, one direction at a time),
  not from adding a connection per second up to 16 (INC/MNP) over HTTP/2: a call's bandwidth
  check must finish in seconds. The draft itself asks tools to offer sequential directions.
- Stability of the RPM over MAD = 4 one-second intervals is not awaited; the probes of the
  direction's loaded part (from the end of the ramp, as the latency under load) are
  aggregated instead. The load stops once the
  rate is steady and the queue grows by less than 10 ms per round trip, which on a very deep
  buffer can be before TCP has filled it (seen on a 300 ms tbf queue: 50-150 ms of it in use),
  so the figure can read higher than the draft's tool, which keeps adding connections, would.
- Confidence (low/medium/high) is not reported; the number of probes behind each figure is.

A fact, not a verdict: the band is the draft's name for the range the figure falls in; only a
requirement in a profile judges it.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from readiness.measure.proxies import read_head

TRIM_KEEP = 0.95
FOREIGN_INTERVAL_S = 0.1
MAX_IN_FLIGHT = 8  # probes still waiting on a very slow link: no more are started
BANDS = ((300.0, "poor"), (1000.0, "fair"), (6000.0, "good"))


def trimmed_mean(values: list[float], keep: float = TRIM_KEEP) -> float | None:
    """Mean of the lowest ``keep`` share of the values (the draft's single-sided trim)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    n = max(1, int(len(vals) * keep + 1e-9))
    return sum(vals[:n]) / n


def band(rpm: float) -> str:
    """The draft's name for the range ``rpm`` falls in."""
    for upper, name in BANDS:
        if rpm < upper:
            return name
    return "excellent"


def rpm(tcp_f: list[float], tls_f: list[float], http_f: list[float], http_l: list[float]) -> dict:
    """Responsiveness from probe times in ms; the parts that had no samples are left out."""
    foreign_parts = [trimmed_mean(x) for x in (tcp_f, tls_f, http_f) if x]
    foreign_parts = [p for p in foreign_parts if p]
    loaded = trimmed_mean(http_l) if http_l else None
    out: dict = {"probes": {"tcp_f": len(tcp_f), "tls_f": len(tls_f), "http_f": len(http_f), "http_l": len(http_l)}}
    parts = []
    if foreign_parts:
        foreign_ms = sum(foreign_parts) / len(foreign_parts)
        out["foreign_rtt_ms"] = round(foreign_ms, 2)
        out["foreign_rpm"] = round(60000 / foreign_ms, 1)
        parts.append(60000 / foreign_ms)
    if loaded:
        out["self_rtt_ms"] = round(loaded, 2)
        out["self_rpm"] = round(60000 / loaded, 1)
        parts.append(60000 / loaded)
    if parts:
        out["rpm"] = round(sum(parts) / len(parts), 1)
        out["band"] = band(out["rpm"])
    return out


@dataclass
class ForeignSample:
    sent_at: float
    tcp_ms: float | None = None
    tls_ms: float | None = None
    http_ms: float | None = None
    error: str | None = None


@dataclass
class ForeignProber:
    """A foreign probe every 100 ms, each on a fresh connection in its own thread, until stopped."""

    scheme: str
    host: str
    hostheader: str
    base: str
    addr: tuple
    interval_s: float = FOREIGN_INTERVAL_S
    samples: list[ForeignSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._running: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rpm-foreign")

    def start(self) -> "ForeignProber":
        self._thread.start()
        return self

    def finish(self) -> list[ForeignSample]:
        self._stop.set()
        self._thread.join(1.0)
        deadline = time.monotonic() + 3.5
        for t in list(self._running):
            t.join(max(0.0, deadline - time.monotonic()))
        return [s for s in self.samples if s.tcp_ms is not None or s.error]

    def _loop(self) -> None:
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            self._running = [t for t in self._running if t.is_alive()]
            if len(self._running) < MAX_IN_FLIGHT:
                sample = ForeignSample(sent_at=time.monotonic())
                self.samples.append(sample)
                t = threading.Thread(target=self._one, args=(sample,), daemon=True, name="rpm-probe")
                t.start()
                self._running.append(t)
            n += 1
            wait = start + n * self.interval_s - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)

    def _one(self, s: ForeignSample) -> None:
        fam, _, _, _, sa = self.addr
        sock = socket.socket(fam, socket.SOCK_STREAM)
        sock.settimeout(3.0)
        try:
            t = time.monotonic()
            sock.connect(sa)
            s.tcp_ms = (time.monotonic() - t) * 1000
            conn = sock
            if self.scheme == "https":
                t = time.monotonic()
                from readiness.measure.proxies import tls_context  # the OS trust store, as the load streams use

                conn = tls_context().wrap_socket(sock, server_hostname=self.host)
                round_trips = 1 if conn.version() == "TLSv1.3" else 2
                s.tls_ms = (time.monotonic() - t) * 1000 / round_trips
            t = time.monotonic()
            conn.sendall((f"GET {self.base}/__down?bytes=1 HTTP/1.1\r\nHost: {self.hostheader}\r\n"
                          "User-Agent: readiness\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n").encode())
            _read_response(conn)
            s.http_ms = (time.monotonic() - t) * 1000
            conn.close()
        except (OSError, ValueError) as e:
            s.error = type(e).__name__
        finally:
            sock.close()


def _read_response(conn) -> None:
    """Read one small HTTP response to its end (Content-Length, else until close)."""
    head, body = read_head(conn, 65536)
    length = None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    while length is None or len(body) < length:
        chunk = conn.recv(4096)
        if not chunk:
            if length is None:
                return
            raise ConnectionError("closed mid-response")
        body += chunk


def for_window(foreign: list[ForeignSample], tcp_rtt: list[tuple[float, float]], t_from: float, t_to: float) -> dict:
    """The RPM facts of one loaded direction from the probes inside its steady window."""
    inside = [s for s in foreign if t_from <= s.sent_at <= t_to]
    out = rpm([s.tcp_ms for s in inside if s.tcp_ms is not None],
              [s.tls_ms for s in inside if s.tls_ms is not None],
              [s.http_ms for s in inside if s.http_ms is not None and s.tcp_ms is not None],
              [r * 1000 for t, r in tcp_rtt if t_from <= t <= t_to])
    failed = sum(1 for s in inside if s.error)
    if failed:
        out["foreign_probes_failed"] = failed
    return out
