"""``readiness serve`` as a real subprocess on loopback: endpoints, limits, STUN, logging, shutdown."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from readiness import stun

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from netns import wait_line  # noqa: E402


def _serve(*extra: str):
    exe = shutil.which("readiness")
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "readiness.cli", "serve"]
    p = subprocess.Popen(cmd + ["--host", "127.0.0.1", "--http-port", "0", "--stun-port", "0", *extra],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = wait_line(p, "listening on")
    http_port = int(re.search(r"http://127\.0\.0\.1:(\d+)", line).group(1))
    stun_port = int(re.search(r"udp 127\.0\.0\.1:(\d+)", line).group(1))
    return p, http_port, stun_port


@pytest.fixture
def server():
    p, http_port, stun_port = _serve("--max-mb", "8", "--max-transfers", "2", "--timeout", "2")
    yield p, http_port, stun_port
    if p.poll() is None:
        p.kill()
        p.wait(5)


def _get(port, path, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def _stop(p) -> tuple[int, str]:
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=5)
    return p.returncode, err


def test_down_sends_exactly_the_bytes_asked_and_up_counts_the_body(server):
    p, port, _ = server
    status, data = _get(port, "/__down?bytes=1234567")
    assert status == 200 and len(data) == 1234567
    status, data = _get(port, "/__up", "POST", b"x" * 3_000_000)
    assert status == 200 and json.loads(data) == {"bytes": 3_000_000}
    status, data = _get(port, "/__info")
    assert status == 200 and json.loads(data)["max_bytes"] == 8_000_000
    code, err = _stop(p)
    assert code == 0
    tests = [line for line in err.splitlines() if " test: " in line]
    assert len(tests) == 1  # one log line per test served, however many requests it made
    assert "127.0.0.1 test: down 1234567 B in 1 requests" in tests[0] and "up 3000000 B in 1 requests" in tests[0]
    assert err.rstrip().endswith("stopped")


@pytest.mark.parametrize("path,method,body_bytes,code", [
    ("/__down?bytes=9000000", "GET", 0, 413),  # more than --max-mb
    ("/__down?bytes=lots", "GET", 0, 400),
    ("/__down?bytes=-5", "GET", 0, 400),
    ("/elsewhere", "GET", 0, 404),
    ("/__up", "POST", 9_000_000, 413),
], ids=["too-big-down", "bad-bytes", "negative", "unknown-path", "too-big-up"])
def test_requests_beyond_the_limits_are_refused(server, path, method, body_bytes, code):
    _, port, _ = server
    if method == "POST":
        # announce the body only: the server must refuse it from the header, before reading it
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {body_bytes}\r\n\r\n".encode())
            status = int(s.recv(100).split()[1])
    else:
        status = _get(port, path)[0]
    assert status == code


def test_concurrent_transfers_are_capped(server):
    _, port, _ = server
    held = []
    for _ in range(2):  # two downloads that the client never reads: both slots stay taken
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /__down?bytes=8000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        held.append(s)
    time.sleep(0.5)
    status, _ = _get(port, "/__down?bytes=10")
    for s in held:
        s.close()
    assert status == 503
    time.sleep(0.3)
    assert _get(port, "/__down?bytes=10")[0] == 200  # slots come back once clients leave


def test_silent_client_is_dropped_after_the_timeout(server):
    _, port, _ = server
    s = socket.create_connection(("127.0.0.1", port), timeout=6)
    s.sendall(b"POST /__up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nonly a little")
    start = time.monotonic()
    assert s.recv(100) == b""  # the server hangs up on us
    assert time.monotonic() - start < 5
    s.close()


def test_stun_answers_with_the_clients_address(server):
    p, _, stun_port = server
    rtt, mapped = stun.binding(("127.0.0.1", stun_port), timeout_s=2)
    assert rtt is not None and mapped[0] == "127.0.0.1"
    code, err = _stop(p)
    assert code == 0 and "127.0.0.1 test: stun 1 answered" in err


def test_sigint_stops_it_cleanly_during_a_transfer(server):
    p, port, _ = server
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /__down?bytes=8000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(1000)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=5)
    s.close()
    assert p.returncode == 0 and "stopping (SIGINT)" in err and "Traceback" not in err


def test_a_port_in_use_is_a_plain_error():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    exe = shutil.which("readiness")
    cmd = [exe, "serve"] if exe else [sys.executable, "-m", "readiness.cli", "serve"]
    r = subprocess.run(cmd + ["--host", "127.0.0.1", "--http-port", str(port), "--stun-port", "0"],
                       capture_output=True, text=True, timeout=10)
    blocker.close()
    assert r.returncode == 2 and "cannot listen for HTTP" in r.stderr and "Traceback" not in r.stderr
