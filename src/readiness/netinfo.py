"""Facts about this computer's network set-up that more than one check reports: the kind of
each interface, the interface of the default route, VPN tunnels and proxy settings.

Used by the ``system`` and ``connectivity`` checks. Platform-specific parts are small
functions guarded by ``sys.platform``; everything here is cheap and never blocks for long.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

# Interface name prefixes that mean a tunnel: WireGuard, OpenVPN/tun, PPP, IPsec, Tailscale,
# ZeroTier, macOS utun/ipsec, and the adapter names of common Windows VPN clients.
_VPN_NAME = re.compile(
    r"^(tun|tap|wg|ppp|ipsec|vti|utun|tailscale|zt|nordlynx|gpd|vpn|cscotun)|"
    r"(vpn|wireguard|anyconnect|openvpn|fortinet|globalprotect|pangp|juniper|tap-windows|wintun)",
    re.IGNORECASE,
)
_VIRTUAL_NAME = re.compile(r"^(lo|docker|br-|virbr|veth|vmnet|vboxnet|vethernet|loopback|bridge|awdl|llw|anpi|gif|stf)", re.IGNORECASE)
_WIRELESS_NAME = re.compile(r"(wi-?fi|wlan|wireless|^wl|airport)", re.IGNORECASE)



def command_output(cmd: list[str], timeout: float = 2.0) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return out.stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def interface_kind(name: str) -> str:
    """wired, wireless, vpn, virtual or loopback — by sysfs on Linux, by name elsewhere."""
    if _VPN_NAME.search(name):
        return "vpn"
    if sys.platform.startswith("linux"):
        base = f"/sys/class/net/{name}"
        if name == "lo":
            return "loopback"
        if os.path.exists(f"{base}/wireless") or os.path.exists(f"{base}/phy80211"):
            return "wireless"
        if os.path.exists(f"{base}/device"):
            return "wired"
        return "virtual"
    if name.lower().startswith(("lo", "loopback")):
        return "loopback"
    if _VIRTUAL_NAME.search(name):
        return "virtual"
    if _WIRELESS_NAME.search(name):
        return "wireless"
    return "wired"


def default_route_interface() -> str | None:
    """Name of the interface the default route leaves by, where the OS tells it cheaply."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/net/route", encoding="ascii") as fh:
                next(fh, None)
                best: tuple[int, str] | None = None
                for line in fh:
                    parts = line.split()
                    if len(parts) > 7 and parts[1] == "00000000" and parts[7] == "00000000":
                        metric = int(parts[6])
                        if best is None or metric < best[0]:
                            best = (metric, parts[0])
                return best[1] if best else None
        except (OSError, ValueError):
            return None
    if sys.platform == "darwin":
        m = re.search(r"interface:\s*(\S+)", command_output(["route", "-n", "get", "default"]))
        return m.group(1) if m else None
    return None  # Windows: no cheap, dependable answer; the VPN flag falls back to "a VPN adapter is up"


def proxy_settings() -> dict[str, str]:
    """The proxies the OS and environment configure (environment, Windows registry, macOS settings)."""
    import urllib.request

    try:
        found = urllib.request.getproxies()
    except Exception:  # registry / SystemConfiguration read failures
        found = {}
    return {k: redact_url(v) for k, v in found.items() if k in ("http", "https", "all", "no")}


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A URL or proxy address inside free text: with a scheme, or bare with user:password@ before a host.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+|[^\s'\"<>/@:]+:[^\s'\"<>]*@[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` fit to be recorded: no user name or password, no query, no fragment.

    Whatever its shape: with or without a scheme, and with a password holding ``@``, ``/``
    or ``?`` (not valid in a URL, yet typed): everything up to the last ``@`` is credentials,
    and everything from the first ``?`` or ``#`` after the host is query or fragment.
    """
    m = _SCHEME.match(url)
    scheme, rest = (url[: m.end()], url[m.end():]) if m else ("", url)
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    return scheme + rest


def redact_text(text: str) -> str:
    """Free text (an error message, a detail) with every URL in it passed through redact_url."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_secrets(value: object) -> object:
    """``value`` (details of a check: dicts, lists, strings) with every URL in every string redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value




def vpn_interfaces() -> list[str]:
    """Names of the VPN tunnels that are up. macOS keeps several ``utun`` interfaces for its own
    use, so there a utun counts only when it has an IPv4 address."""
    try:
        import psutil

        stats = psutil.net_if_stats()
        addrs = psutil.net_if_addrs()
    except Exception:  # noqa: BLE001 - no interface list is no VPN we can name
        return []
    found = []
    for name, st in stats.items():
        if not st.isup or interface_kind(name) != "vpn":
            continue
        if name.startswith("utun") and not any(a.family == socket.AF_INET for a in addrs.get(name, [])):
            continue
        found.append(name)
    return sorted(found)
