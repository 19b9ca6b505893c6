"""Real receivers for the alert tests: an HTTP(S) server in a thread that records every POST (the
generic webhook, with its HMAC signature checked here; Microsoft Teams' Workflows endpoint), and
aiosmtpd's SMTP server with STARTTLS and AUTH LOGIN/PLAIN on a self-signed certificate."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Records each POST: path, headers, body, whether its signature held, the answer given.

    ``mode``: "ok" (204), "fail" (500), or "ack_first_then_hang": the first message id gets 200,
    any other id is held ``hang_s`` before its answer (a receiver slow mid-delivery)."""

    def __init__(self, secret: str = "", tls: tuple[Any, Any] | None = None, hang_s: float = 8.0,
                 ok_status: int = 204) -> None:
        self.secret = secret.encode()
        self.ok_status = ok_status
        self.mode = "ok"
        self.hang_s = hang_s
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = self.headers.get("X-Readiness-Signature", "")
                want = "sha256=" + hmac.new(owner.secret, body, hashlib.sha256).hexdigest()
                try:
                    data = json.loads(body)
                except ValueError:
                    data = None
                post = {"path": self.path, "headers": dict(self.headers), "body": body, "json": data,
                        "signed": bool(owner.secret) and hmac.compare_digest(got, want), "status": None,
                        "at": time.monotonic()}
                with owner.lock:
                    owner.posts.append(post)
                    mode = owner.mode
                    acked = {p["json"].get("id") for p in owner.posts if p["status"] == 200 and isinstance(p["json"], dict)}
                status = owner.ok_status if mode == "ok" else 500 if mode == "fail" else 200
                if mode == "ack_first_then_hang":
                    mine = data.get("id") if isinstance(data, dict) else None
                    if acked and mine not in acked:
                        post["status"] = "held"
                        time.sleep(owner.hang_s)
                        status = 200
                post["status"] = status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def messages(self, status: Any = None) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.posts if status is None or p["status"] == status]

    def wait(self, count: int, timeout: float = 60.0, status: Any = None) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.messages(status)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{count} posts expected within {timeout:g} s, got {len(self.messages(status))}: "
                             f"{[p['json'] and p['json'].get('title') for p in self.messages()]}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smtp:
    """aiosmtpd on a loopback port: STARTTLS required, then AUTH with one user; mail kept in ``mails``."""

    def __init__(self, cert: Any, key: Any, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[Any] = []
        self.logins: list[tuple[str, bool]] = []
        owner = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.content, policy=default_policy)
                owner.mails.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "msg": msg,
                                    "tls": session.ssl is not None, "auth": session.authenticated})
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
            login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
            pw = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
            ok = login == user and pw == password
            owner.logins.append((login, ok))
            return AuthResult(success=ok)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                     require_starttls=True, auth_required=True, auth_require_tls=True,
                                     authenticator=authenticator)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
