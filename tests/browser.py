"""Open a local HTML file in Debian's headless Chromium and record what happened.

Used by the report tests to prove a report renders without errors and WITHOUT ANY NETWORK
REQUEST. Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe`` (file
descriptors 3 and 4, no TCP port), so the browser's own view is recorded:

- every request the page makes (``Network.requestWillBeSent``; the page's own file: URL aside,
  any entry is a failure, whatever its scheme);
- script exceptions, console messages and browser log entries such as CSP violations;
- JavaScript dialogs (``alert(1)`` from a hostile label would open one);
- the DOM after load and the page's visible text;
- on request, a full-page screenshot (PNG) and the page printed on A4 (PDF): how many pages,
  in all and without the part a reader may leave out (``hide`` CSS selector).

As a belt over those braces the browser runs with a host resolver that resolves nothing and
a proxy on a closed loopback port, so even a request that slipped through could not leave the
machine. Every wait has a deadline; the browser is killed on the way out.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import end_process

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-default-browser-check",
    "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-pipe",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    url: str
    title: str = ""
    text: str = ""
    dom: str = ""
    scripts: int = 0
    loaded: bool = False
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    pdf_pages: int | None = None  # printed on A4, everything
    pdf_pages_without: int | None = None  # printed on A4 without the ``hide`` selector's elements

    @property
    def other_requests(self) -> list[str]:
        """Every request but the page itself: for a self-contained report, none."""
        return [u for u in self.requests if u != self.url]


class _Pipe:
    """DevTools messages over two pipes: JSON, each terminated by a NUL byte."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.w, self.r = to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.on_event: Any = None

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.w, data)
            data = data[n:]
        return self.next_id

    def _read(self, deadline: float) -> dict[str, Any] | None:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.r], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        msg = json.loads(raw)
        if "method" in msg and self.on_event is not None:
            self.on_event(msg)
        return msg

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 15.0) -> dict[str, Any]:
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline)
            if msg is None:
                raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if any(e["method"] == method for e in self.events):
            return True
        while True:
            msg = self._read(deadline)
            if msg is None:
                return False
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return True

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (msg := self._read(deadline)) is not None:
            if "method" in msg:
                self.events.append(msg)


class Chromium:
    """A headless Chromium driven over the DevTools pipe, one page (target) attached.

    ``extra_flags`` are added to :data:`FLAGS` (fake media devices, a secure origin);
    ``allow`` names the hosts (IP literals of a test server) the browser may reach; everything
    else still meets the resolver that resolves nothing and the closed proxy. Use as a context
    manager; the browser is killed on exit.
    """

    def __init__(self, extra_flags: list[str] | None = None, timeout: float = 40.0, allow: list[str] = (),
                 prefix: list[str] | None = None) -> None:
        exe = chromium_path()
        if exe is None:
            raise FileNotFoundError("chromium is not installed (tests/run.sh installs it)")
        self.timeout = timeout
        flags = list(FLAGS)
        if allow:  # these hosts (IP literals) alone are reached directly; every name still fails
            flags = [f for f in flags if not f.startswith(("--host-resolver-rules", "--proxy-bypass-list"))]
            flags += ["--host-resolver-rules=MAP * ~NOTFOUND, " + ", ".join(f"EXCLUDE {h}" for h in allow),
                      "--proxy-bypass-list=" + ";".join(["<-loopback>", *allow])]
        to_r, to_w = os.pipe()  # we write commands, chromium reads them on fd 3
        from_r, from_w = os.pipe()  # chromium writes answers on fd 4, we read them

        def child_fds() -> None:
            # Move both ends above 4 first, so neither dup2 can clobber the other.
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._profile = tempfile.TemporaryDirectory(prefix="readiness-chromium-")
        self.proc = subprocess.Popen(
            [*(prefix or []), exe, *flags, *(extra_flags or []), f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4), close_fds=True, start_new_session=True,
        )
        os.close(to_r)
        os.close(from_w)
        self.pipe = _Pipe(to_w, from_r)
        try:
            target = self.pipe.call("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            self.session = self.pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Network", "Runtime", "Log"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise
        self.pipe.events.clear()
        self.pipe.on_event = self._answer_dialogs

    def _answer_dialogs(self, msg: dict[str, Any]) -> None:
        # An open alert() would hold the page (and its load event) until answered.
        if msg["method"] == "Page.javascriptDialogOpening":
            self.pipe.send("Page.handleJavaScriptDialog", {"accept": True}, session=msg.get("sessionId"))

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        return self.pipe.call(method, params, session=self.session, timeout=timeout or self.timeout)

    def navigate(self, url: str) -> bool:
        """Open ``url``; True once its load event fired."""
        self.call("Page.navigate", {"url": url})
        return self.pipe.wait_event("Page.loadEventFired", self.timeout)

    def evaluate(self, expr: str, timeout: float | None = None) -> Any:
        res = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True},
                        timeout=timeout)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr[:80]}: {json.dumps(res['exceptionDetails'])[:300]}")
        return res.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the element: a user gesture."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
                            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1})

    def press(self, key: str) -> None:
        """One key pressed and released, as the keyboard sends it ("Tab", "Enter", " ")."""
        codes = {"Tab": 9, "Enter": 13, " ": 32}
        for kind in ("keyDown", "keyUp"):
            params = {"type": kind, "key": key, "windowsVirtualKeyCode": codes[key], "code": "Space" if key == " " else key}
            if key == "Enter" and kind == "keyDown":
                params["text"] = "\r"
            self.call("Input.dispatchKeyEvent", params)

    def wait_for(self, expr: str, timeout: float) -> Any:
        """Poll ``expr`` until it is truthy; its value, or None at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expr)
            if value:
                return value
            self.pipe.drain(0.1)
        return None

    def page_events(self) -> PageLoad:
        """What the attached page did so far (requests, errors, console, dialogs)."""
        out = PageLoad(url="")
        for e in self.pipe.events:
            if e.get("sessionId") not in (None, self.session):
                continue
            m, p = e["method"], e.get("params", {})
            if m == "Network.requestWillBeSent":
                out.requests.append(p.get("request", {}).get("url", ""))
            elif m == "Runtime.exceptionThrown":
                out.errors.append(json.dumps(p.get("exceptionDetails", {}))[:500])
            elif m == "Log.entryAdded":
                entry = p.get("entry", {})
                if entry.get("level") in ("error", "warning"):
                    out.errors.append(f"{entry.get('source')}: {entry.get('text')}")
            elif m == "Runtime.consoleAPICalled":
                out.console.append(json.dumps(p.get("args", []))[:300])
            elif m == "Page.javascriptDialogOpening":
                out.dialogs.append(p.get("message", ""))
        return out

    def close(self) -> None:
        try:
            self.pipe.call("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        for fd in (self.pipe.w, self.pipe.r):
            try:
                os.close(fd)
            except OSError:
                pass
        end_process(self.proc)
        self._profile.cleanup()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pdf_pages(pdf: bytes) -> int:
    """Pages of a PDF Chromium printed (each page object says /Type /Page)."""
    import re

    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def load_page(path: str | os.PathLike[str], timeout: float = 40.0, settle_s: float = 0.5,
              screenshot: str | os.PathLike[str] | None = None, print_pdf: str | os.PathLike[str] | None = None,
              hide: str | None = None, width: int = 1000) -> PageLoad:
    """Open ``path`` in headless Chromium; return what the page did. With ``screenshot`` a
    full-page PNG is saved there; with ``print_pdf`` the page is printed on A4 (PDF saved there)
    and its pages counted, also without the elements matching ``hide``."""
    import base64

    url = Path(path).resolve().as_uri()
    with Chromium(timeout=timeout) as browser:
        loaded = browser.navigate(url)
        browser.pipe.drain(settle_s)  # late requests (lazy images, fonts) would show up here
        out = PageLoad(url=url, loaded=loaded)
        out.title = browser.evaluate("document.title") or ""
        out.text = browser.evaluate("document.body ? document.body.innerText : ''") or ""
        out.dom = browser.evaluate("document.documentElement.outerHTML") or ""
        out.scripts = int(browser.evaluate("document.scripts.length") or 0)
        if screenshot is not None:
            height = int(browser.evaluate("document.documentElement.scrollHeight") or 800)
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": min(height, 16000), "deviceScaleFactor": 1, "mobile": False})
            shot = browser.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        if print_pdf is not None:
            def printed() -> bytes:
                res = browser.call("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True,
                                                       "paperWidth": 8.27, "paperHeight": 11.69})
                return base64.b64decode(res["data"])

            pdf = printed()
            Path(print_pdf).write_bytes(pdf)
            out.pdf_pages = _pdf_pages(pdf)
            if hide:
                # DevTools, not the page: the page itself still runs no script
                browser.evaluate("for (const e of document.querySelectorAll(%s)) e.remove()" % json.dumps(hide))
                out.pdf_pages_without = _pdf_pages(printed())
        browser.pipe.drain(0.1)
        seen = browser.page_events()
        for name in ("requests", "errors", "console", "dialogs"):
            setattr(out, name, getattr(seen, name))
    return out
