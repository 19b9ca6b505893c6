"""A local stand-in for speedtest.net's legacy HTTP protocol, so speedtest-cli's real code runs offline.

speedtest-cli fetches ``www.speedtest.net/speedtest-config.php`` and the server list through
urllib (which honours ``http_proxy``), then talks to the chosen server's ``latency.txt``,
``random<N>x<N>.jpg`` and ``upload.php`` directly. This one process answers all of it: as
the HTTP proxy (requests arrive with absolute URLs) and as the one listed test server.

Run: ``python tests/speedtest_server.py --host H --port P [--testlength S]``; it prints
``ready`` on stderr once listening and stops on SIGTERM/SIGINT. ``--status 403`` makes the
configuration answer 403, like speedtest.net often does.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CHUNK = memoryview(bytes(256 * 1024))


def config_xml(testlength: int) -> bytes:
    return (f"""<?xml version="1.0" encoding="UTF-8"?>
<settings>
<client ip="10.0.0.1" lat="59.33" lon="18.06" isp="Test ISP" isprating="3.7" rating="0" ispdlavg="0" ispulavg="0" loggedin="0" country="SE"/>
<server-config threadcount="4" ignoreids="" notonmap="" forcepingid="" preferredserverid=""/>
<download testlength="{testlength}" initialtest="250K" mintestsize="250K" threadsperurl="4"/>
<upload testlength="{testlength}" ratio="5" initialtest="0" mintestsize="32K" threads="2" maxchunksize="512K" maxchunkcount="50" threadsperurl="4"/>
<times dl1="5000000" dl2="35000000" dl3="800000000" ul1="1000000" ul2="8000000" ul3="35000000"/>
</settings>
""").encode()


def servers_xml(host: str, port: int) -> bytes:
    return (f"""<?xml version="1.0" encoding="UTF-8"?>
<settings><servers>
<server url="http://{host}:{port}/speedtest/upload.php" lat="59.33" lon="18.06" name="Stockholm" country="Sweden" cc="SE" sponsor="Local test" id="4242" host="{host}:{port}"/>
</servers></settings>
""").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def _send(self, body: bytes, code: int = 200, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        srv = self.server
        try:
            if path.endswith("/speedtest-config.php"):
                if srv.status != 200:
                    self._send(b"Forbidden", srv.status)
                else:
                    self._send(config_xml(srv.testlength), ctype="text/xml")
            elif "speedtest-servers" in path:
                self._send(servers_xml(srv.public_host, srv.server_address[1]), ctype="text/xml")
            elif path.endswith("/latency.txt"):
                self._send(b"test=test\n")
            elif path.startswith("/speedtest/random") and path.endswith(".jpg"):
                side = int(path.rsplit("random", 1)[1].split("x")[0])
                size = 2 * side * side  # roughly the size of speedtest.net's JPEGs
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                sent = 0
                while sent < size:
                    n = min(len(CHUNK), size - sent)
                    self.wfile.write(CHUNK[:n])
                    sent += n
            else:
                self._send(b"not found", 404)
        except (OSError, ValueError):
            self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        got = 0
        try:
            while got < length:
                data = self.rfile.read(min(262144, length - got))
                if not data:
                    break
                got += len(data)
            self._send(f"size={got}".encode())
        except (OSError, ValueError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--testlength", type=int, default=10)
    ap.add_argument("--status", type=int, default=200)
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    srv.public_host, srv.testlength, srv.status = a.host, a.testlength, a.status
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown, daemon=True).start())
    print(f"ready http://{a.host}:{srv.server_address[1]}", file=sys.stderr, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
