"""Debian's headless Firefox ESR driven over Marionette, its own remote protocol, for page tests.

No geckodriver (Debian does not package it): Marionette speaks length-prefixed JSON over TCP
on a port Firefox picks itself (``marionette.port = 0``) and writes into the profile folder.
The profile turns on Firefox's fake camera and microphone (``media.navigator.streams.fake``)
and answers the permission prompt (``media.navigator.permission.disabled``); a proxy on a
closed loopback port stops every request but those to loopback, which Firefox never proxies.
The browser is killed on the way out; every wait has a deadline.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from support import end_process

PREFS = {
    "marionette.port": 0,
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1", "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": 9,
    "network.proxy.allow_hijacking_localhost": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.enabled": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "media.peerconnection.ice.obfuscate_host_addresses": False,
}


def firefox_path() -> str | None:
    return shutil.which("firefox-esr") or shutil.which("firefox")


class Firefox:
    def __init__(self, prefs: dict[str, Any] | None = None, timeout: float = 40.0) -> None:
        exe = firefox_path()
        if exe is None:
            raise FileNotFoundError("firefox-esr is not installed (tests/run.sh installs it)")
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="readiness-firefox-")
        folder = Path(self._profile.name)
        lines = [f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in (PREFS | (prefs or {})).items()]
        (folder / "user.js").write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([exe, "-headless", "-marionette", "-no-remote", "-profile", str(folder), "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.sock: socket.socket | None = None
        self._id = 0
        try:
            port_file = folder / "MarionetteActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("firefox did not start Marionette")
                time.sleep(0.1)
            self.sock = socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=timeout)
            self._read()  # the greeting
            self.command("WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": False}}})
        except BaseException:
            self.close()
            raise

    def _read(self) -> Any:
        buf = b""
        while b":" not in buf:
            buf += self.sock.recv(1)
        size, _, rest = buf.partition(b":")
        data = rest
        while len(data) < int(size):
            chunk = self.sock.recv(int(size) - len(data))
            if not chunk:
                raise RuntimeError("firefox closed Marionette")
            data += chunk
        return json.loads(data)

    def command(self, name: str, params: dict[str, Any] | None = None) -> Any:
        self._id += 1
        msg = json.dumps([0, self._id, name, params or {}]).encode()
        self.sock.sendall(str(len(msg)).encode() + b":" + msg)
        while True:
            reply = self._read()
            if reply[0] == 1 and reply[1] == self._id:
                if reply[2]:
                    raise RuntimeError(f"{name}: {reply[2]}")
                return reply[3]

    def navigate(self, url: str) -> None:
        self.command("WebDriver:Navigate", {"url": url})

    def evaluate(self, expr: str) -> Any:
        return self.command("WebDriver:ExecuteScript", {"script": f"return ({expr});", "args": []}).get("value")

    def click(self, selector: str) -> None:
        el = self.command("WebDriver:FindElement", {"using": "css selector", "value": selector})["value"]
        self.command("WebDriver:ElementClick", {"id": next(iter(el.values()))})

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.command("Marionette:Quit", {"flags": ["eForceQuit"]})
            except (OSError, RuntimeError, ValueError):
                pass
            self.sock.close()
        end_process(self.proc)
        self._profile.cleanup()

    def __enter__(self) -> "Firefox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
