"""How this computer reaches a web address: which proxy the OS says to use, and which
certificates it trusts.

Used by the network checks and by anything that uploads. Order, as the OS applies it:

1. the run's ``proxy`` setting (a URL, or ``direct``), for machines whose scheduled account
   (SYSTEM, a LaunchDaemon) has no proxy settings of its own;
2. the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``), the convention on Linux;
3. a PAC file: the run's ``pac_url`` setting, else the one the OS names (Windows: the current
   user's or the machine's "automatic configuration script" in the registry, which is
   per-user unless policy says per-machine; macOS: the network settings), else WPAD on Windows,
   where "Automatically detect settings" is on by default. Read (at most 1 MB) and evaluated by
   pypac in a child process with a time limit; a PAC file that cannot be used is skipped;
4. the OS's fixed proxy (Windows registry, macOS settings) through urllib;
5. direct.

Proxy credentials are used to connect but never recorded: :func:`redact` is applied to every
proxy or PAC URL that goes into a result.

TLS: :func:`tls_context` validates with the OS trust store (truststore), so HTTPS works where an
organisation's inspecting proxy re-signs traffic with a root installed on its computers;
:func:`public_tls_context` validates with the public web PKI only (Mozilla's list via certifi).
A chain that the OS trusts and the public list does not ends at a non-public root: TLS is
intercepted (or the server uses a private CA).
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import sys
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from readiness.redact import redact_url

DIRECT = "DIRECT"


def redact(url: str) -> str:
    """A proxy or PAC URL fit to be recorded: no user name, password or query."""
    return redact_url(url)


@dataclass(frozen=True)
class Route:
    """How to reach one URL: proxies in order (or DIRECT) and where that rule came from."""

    proxy: str | None  # http://host:port (may hold credentials: never record it unredacted)
    source: str  # "setting", "environment", "pac", "os", "direct"
    pac_url: str | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"via": redact(self.proxy) if self.proxy else DIRECT, "source": self.source}
        if self.pac_url:
            out["pac_url"] = redact(self.pac_url)
        return out


class ProxyResolver:
    """Answers "which proxy for this URL?" for one run; the PAC file is fetched once."""

    def __init__(self, proxy: str | None = None, pac_url: str | None = None, timeout_s: float = 2.0,
                 env: dict[str, str] | None = None) -> None:
        self.setting = proxy
        self.pac_url = pac_url
        self.timeout_s = timeout_s
        self._env = env
        self._pac: Any = None
        self._pac_loaded = False
        self._pac_source: str | None = None
        self.pac_error: str | None = None
        self._lock = threading.Lock()

    # -- sources -------------------------------------------------------------------------------

    def _env_proxies(self) -> dict[str, str]:
        if self._env is not None:
            return {k[:-6].lower(): v for k, v in self._env.items() if k.lower().endswith("_proxy") and v}
        return urllib.request.getproxies_environment()

    def _load_pac(self) -> "_PacWorker | None":
        with self._lock:
            if self._pac_loaded:
                return self._pac
            self._pac_loaded = True
            urls = [self.pac_url] if self.pac_url else []
            if not urls:
                try:
                    from pypac import api as pacapi

                    urls = pacapi.collect_pac_urls(from_os_settings=True, from_dns=sys.platform == "win32")
                except Exception as exc:  # noqa: BLE001 - registry/preferences unreadable: no PAC
                    self.pac_error = f"{type(exc).__name__}: {exc}"
                    urls = []
            if not urls:
                return None
            worker = _PacWorker(urls, self.timeout_s)
            self._pac_source, error = worker.load()
            if self._pac_source is None:
                worker.close()
                self.pac_error = error or f"{redact(urls[-1])}: no PAC file could be fetched"
                return None
            self._pac = worker
            return worker

    def _pac_answer(self, pac: "_PacWorker", url: str, host: str) -> str | None:
        """What the PAC says for ``url``; None when it failed for good (it is then dropped for the
        rest of the run, and ``pac_error`` says why)."""
        with self._lock:
            if self._pac is not pac:
                return None
            try:
                return pac.ask(url, host)
            except PacFailed as exc:
                self.pac_error = f"{redact(self._pac_source or '')}: {exc}; not used"
                self._pac, self._pac_source = None, None
                pac.close()
                return None

    # -- answer --------------------------------------------------------------------------------

    def route(self, url: str) -> Route:
        parts = urlsplit(url)
        host = parts.hostname or ""
        scheme = parts.scheme or "https"
        if self.setting:
            if self.setting.lower() == "direct":
                return Route(None, "setting")
            return Route(self.setting, "setting")
        env = self._env_proxies()
        if env:
            if self._bypassed(host, env.get("no", "")):
                return Route(None, "environment")
            proxy = env.get(scheme) or env.get("all")
            if proxy:
                return Route(with_scheme(proxy), "environment")
        pac = self._load_pac()
        source = self._pac_source
        answer = self._pac_answer(pac, url, host) if pac is not None else None
        if answer is not None:
            from pypac.parser import parse_pac_value

            # "" is what a PAC function that throws answers: "direct" to browsers
            choices = parse_pac_value(answer) if answer else [DIRECT]
            first = next((c for c in choices if c == DIRECT or c.startswith(("http://", "https://"))), DIRECT)
            return Route(None if first == DIRECT else first, "pac", source)
        if self._env is None:
            try:
                os_proxies = urllib.request.getproxies()
            except Exception:  # noqa: BLE001 - registry / SystemConfiguration unreadable
                os_proxies = {}
            proxy = os_proxies.get(scheme) or os_proxies.get("all")
            if proxy and not _os_bypass(host):
                return Route(with_scheme(proxy), "os")
        return Route(None, "direct")

    @staticmethod
    def _bypassed(host: str, no_proxy: str) -> bool:
        for item in (p.strip().lower() for p in no_proxy.split(",")):
            if not item:
                continue
            if item == "*" or host == item.lstrip(".") or host.endswith("." + item.lstrip(".")):
                return True
        return False

    def facts(self) -> dict[str, Any]:
        """What is configured, credentials removed, for a result's details."""
        out: dict[str, Any] = {}
        if self.setting:
            out["setting"] = redact(self.setting)
        env = {k: redact(v) for k, v in self._env_proxies().items() if k in ("http", "https", "all", "no")}
        if env:
            out["environment"] = env
        if self._pac_loaded:
            out["pac_url"] = redact(self._pac_source) if self._pac_source else None
            if self.pac_error and not self._pac_source:
                out["pac_error"] = self.pac_error
        return out


# --- the PAC file, in a child process with limits ---------------------------------------------
# A PAC file is a program from the network (WPAD: from anyone on the LAN who answers first).
# pypac runs it with dukpy's JavaScript engine, in C, holding the GIL: a ``while(true){}``
# would stop every thread of the run, and nothing in the process can interrupt it. So the file is
# fetched and run in a spawned child that is killed when it is late, and read only up to
# MAX_PAC_BYTES. Any failure means the PAC is not used (the next source: the OS's proxy, else
# direct) and ``pac_error`` says why.

MAX_PAC_BYTES = 1024 * 1024  # real PAC files are a few kB; the largest seen in the wild ~100 kB
PAC_EVAL_S = 2.0  # one evaluation: loading the file, or one FindProxyForURL call
_PAC_START_S = 30.0  # a spawned Python importing pypac and dukpy, on a machine busy measuring
_PAC_TYPES = ("application/x-ns-proxy-autoconfig", "application/x-javascript-config")


class PacFailed(Exception):
    """The PAC file cannot be used; the message says why in plain words."""


def fetch_pac(url: str, timeout_s: float, limit: int = MAX_PAC_BYTES) -> str:
    """The text of the PAC file at ``url``: at most ``limit`` bytes, within about 2 x ``timeout_s``
    (connection, and the whole body). Raises PacFailed."""
    import time

    import requests

    deadline = time.monotonic() + 2 * timeout_s
    sess = requests.Session()
    sess.trust_env = False  # as pypac: a PAC file is fetched directly, never through a proxy
    try:
        with sess.get(url, timeout=timeout_s, stream=True) as resp:
            kind = resp.headers.get("content-type", "").lower()
            if not resp.ok or (kind and not any(t in kind for t in _PAC_TYPES)):
                raise PacFailed("no PAC file could be fetched")
            length = resp.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise PacFailed(f"the PAC file is larger than {limit // 1024} kB")
            body = b""
            for chunk in resp.iter_content(16384):
                body += chunk
                if len(body) > limit:
                    raise PacFailed(f"the PAC file is larger than {limit // 1024} kB")
                if time.monotonic() > deadline:
                    raise PacFailed("the PAC file took too long to arrive")
            return body.decode(resp.encoding or "utf-8", "replace")
    except requests.RequestException:
        raise PacFailed("no PAC file could be fetched") from None
    finally:
        sess.close()


def _pac_child(conn: Any, urls: list[str], timeout_s: float) -> None:
    """The child: fetch the first PAC file that loads, say which, then answer (url, host) pairs."""
    try:
        from pypac.parser import PACFile
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        conn.send(("loaded", None, f"pypac is not available: {exc}"))
        return
    conn.send(("ready",))
    pac, source, error = None, None, None
    for url in urls:
        try:
            text = fetch_pac(url, timeout_s)
            pac, source = PACFile(text), url
            break
        except PacFailed as exc:
            error = f"{redact(url)}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a broken PAC file is a fact to report
            error = f"{redact(url)}: the PAC file does not parse ({type(exc).__name__})"
    conn.send(("loaded", source, error))
    while pac is not None:
        try:
            url, host = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("answer", str(pac.find_proxy_for_url(url, host) or "")))
        except Exception:  # noqa: BLE001 - a PAC function that throws means "direct" to browsers
            conn.send(("answer", ""))


class _PacWorker:
    """The parent's side of :func:`_pac_child`: every wait bounded, the child killed when late."""

    def __init__(self, urls: list[str], timeout_s: float) -> None:
        import multiprocessing

        self.urls, self.timeout_s = urls, timeout_s
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded run
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=_pac_child, args=(theirs, urls, timeout_s), daemon=True,
                                name="readiness-pac")
        self.proc.start()
        theirs.close()

    def _receive(self, wait_s: float, late: str) -> tuple[Any, ...]:
        try:
            if self.conn.poll(wait_s):
                return self.conn.recv()
        except (EOFError, OSError):
            raise PacFailed("the PAC file stopped its evaluator") from None
        self.close()
        raise PacFailed(late)

    def load(self) -> tuple[str | None, str | None]:
        """(the URL whose PAC file loaded, or None; why none did)."""
        try:
            first = self._receive(_PAC_START_S, "the PAC evaluator did not start")
            if first[0] == "ready":
                wait = len(self.urls) * (2 * self.timeout_s + PAC_EVAL_S) + 1
                first = self._receive(wait, f"the PAC file did not load within {wait:g} s")
        except PacFailed as exc:
            return None, f"{redact(self.urls[0])}: {exc}"
        return first[1], first[2]

    def ask(self, url: str, host: str) -> str:
        try:
            self.conn.send((url, host))
        except OSError:
            raise PacFailed("the PAC file stopped its evaluator") from None
        return self._receive(PAC_EVAL_S, f"the PAC file did not answer within {PAC_EVAL_S:g} s")[1]

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def os_pac_url() -> str | None:
    """The PAC file the OS settings name (Windows registry, per user unless policy says per
    machine; macOS network settings), credentials removed; None elsewhere or when unset.
    No WPAD lookup: this is only what is configured."""
    if sys.platform not in ("win32", "darwin"):
        return None
    try:
        from pypac import api as pacapi

        urls = pacapi.collect_pac_urls(from_os_settings=True, from_dns=False)
    except Exception:  # noqa: BLE001 - unreadable settings: nothing configured that we can see
        return None
    return redact(urls[0]) if urls else None


def with_scheme(proxy: str) -> str:
    return proxy if "://" in proxy else f"http://{proxy}"


def _os_bypass(host: str) -> bool:
    try:
        return bool(urllib.request.proxy_bypass(host))
    except Exception:  # noqa: BLE001
        return False


# --- connecting -------------------------------------------------------------------------------


def read_head(sock: Any, limit: int, who: str = "the server") -> tuple[bytes, bytes]:
    """One HTTP response head read from ``sock`` (a socket or TLS socket), bounded by ``limit``
    bytes: (head, the body bytes that came with it). ConnectionError when closed before the
    head ends, OSError when the head is longer than ``limit``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"{who} closed the connection")
        data += chunk
        if len(data) > limit:
            raise OSError(f"{who}'s answer is too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def open_tunnel(proxy: str, host: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection to host:port through an HTTP proxy (CONNECT), ready for TLS."""
    p = urlsplit(with_scheme(proxy))
    if not p.hostname:
        raise OSError(f"proxy {redact(proxy)} has no host")
    sock = socket.create_connection((p.hostname, p.port or 8080), timeout=timeout_s)
    try:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if p.username is not None:
            token = base64.b64encode(f"{unquote(p.username)}:{unquote(p.password or '')}".encode()).decode()
            head += f"Proxy-Authorization: Basic {token}\r\n"
        sock.sendall((head + "\r\n").encode("ascii"))
        reply, _ = read_head(sock, 16384, "the proxy")
        status = reply.split(b"\r\n", 1)[0].decode("latin-1")
        m = re.match(r"HTTP/\d(?:\.\d)?\s+(\d{3})", status)
        if not m or m.group(1) != "200":
            raise OSError(f"the proxy refused the tunnel ({status.strip()[:80]})")
        return sock
    except BaseException:
        sock.close()
        raise


def tls_context() -> ssl.SSLContext:
    """Client TLS context that trusts what the OS trusts (truststore), else OpenSSL's defaults."""
    try:
        import truststore

        return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    except ImportError:  # pragma: no cover - a dependency of the package
        return ssl.create_default_context()


def public_tls_context() -> ssl.SSLContext:
    """Client TLS context that trusts only the public web PKI (Mozilla's roots, via certifi)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class _NoCredentialRedirect(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, except for a request that carries credentials: its 3xx is raised as
    an HTTPError (urllib would copy ``Authorization`` to wherever the redirect points: a captive
    portal, another host)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if req.has_header("Authorization") or req.has_header("Proxy-authorization"):
            return None  # urllib then raises the 3xx itself
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def urlopen(url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout_s: float = 30.0,
            resolver: ProxyResolver | None = None, method: str | None = None) -> Any:
    """urllib's urlopen through the OS's proxy for ``url`` and with the OS trust store. A request
    carrying ``Authorization`` follows no redirect. Uploads use :func:`send` instead (one
    request, no redirect ever, the body only when the server invites it)."""
    route = (resolver or ProxyResolver()).route(url)
    proxies = {"http": route.proxy, "https": route.proxy} if route.proxy else {}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies), _NoCredentialRedirect(),
                                         urllib.request.HTTPSHandler(context=tls_context()))
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    return opener.open(req, timeout=timeout_s)
