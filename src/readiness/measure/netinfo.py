"""Facts about this computer's network set-up that more than one check reports: the kind of
each interface (wired, wireless, vpn, virtual, loopback, other) from the OS's own facts, Wi-Fi
signal and band, the interface of the default route, VPN tunnels and proxy settings.

The kind comes from what the OS knows of the adapter, never from its name where the OS can
say: Linux /sys/class/net (wireless/, device, the ARPHRD link type), macOS ``networksetup
-listallhardwareports`` (Apple's port names), Windows NetAdapter data (the IANA ifType, 71 is
Wi-Fi, and the Virtual/HardwareInterface flags). Each parser takes the command's text, so the
tests feed them recorded output.

Used by the ``system`` and ``connectivity`` checks. Platform-specific parts are small
functions guarded by ``sys.platform``; everything here is cheap and never blocks for long.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from readiness.redact import redact_url

# Interface name prefixes that mean a tunnel: WireGuard, OpenVPN/tun, PPP, IPsec, Tailscale,
# ZeroTier, macOS utun/ipsec, and the adapter names of common Windows VPN clients.
_VPN_NAME = re.compile(
    r"^(tun|tap|wg|ppp|ipsec|vti|utun|tailscale|zt|nordlynx|gpd|vpn|cscotun)|"
    r"(vpn|wireguard|anyconnect|openvpn|fortinet|globalprotect|pangp|juniper|tap-windows|wintun)",
    re.IGNORECASE,
)
_VIRTUAL_NAME = re.compile(r"^(lo\d*$|docker|br-|virbr|veth|vmnet|vboxnet|vethernet|loopback|bridge|awdl|llw|anpi|gif|stf)", re.IGNORECASE)
_WIRELESS_NAME = re.compile(r"(wi-?fi|wlan|wireless|^wl|airport)", re.IGNORECASE)



def command_output(cmd: list[str], timeout: float = 2.0) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return out.stdout
    except (OSError, subprocess.SubprocessError):
        return ""


KINDS = ("wired", "wireless", "vpn", "virtual", "loopback", "other")

# Linux ARPHRD_* link types (include/uapi/linux/if_arp.h) that are tunnels: PPP, IPIP, SIT,
# GRE, IPv6-in-IPv6, IP6GRE, and NONE (tun devices, WireGuard).
_LINUX_TUNNEL_TYPES = {512, 768, 769, 776, 778, 823, 65534}
_LINUX_LOOPBACK_TYPE = 772
# Windows IANA ifType values (ipifcons.h): 6 Ethernet, 71 IEEE 802.11, 24 software loopback,
# 131 tunnel, 23 PPP, 243/244 mobile broadband.
_WIN_ETHERNET, _WIN_WIFI, _WIN_LOOPBACK, _WIN_TUNNEL, _WIN_PPP = 6, 71, 24, 131, 23
_WIN_MOBILE = {243, 244}


def interface_kind(name: str, facts: dict[str, dict] | None = None) -> str:
    """wired, wireless, vpn, virtual, loopback or other: from the OS's own facts about the
    adapter (``link_facts()``), by name only where the OS said nothing about it."""
    facts = link_facts() if facts is None else facts
    if name in facts:
        return facts[name]["kind"]
    return kind_by_name(name)


def kind_by_name(name: str) -> str:
    """Last resort for an adapter the OS gave no facts about. Never "wired" by guess."""
    if _VPN_NAME.search(name):
        return "vpn"
    if name in ("lo", "lo0") or name.lower().startswith("loopback"):
        return "loopback"
    if _VIRTUAL_NAME.search(name):
        return "virtual"
    if _WIRELESS_NAME.search(name):
        return "wireless"
    return "other"


def link_facts() -> dict[str, dict]:
    """Per interface name: {"kind", "basis", and what else the OS says (hardware port, ifType)}."""
    try:
        if sys.platform.startswith("linux"):
            return linux_link_facts()
        if sys.platform == "darwin":
            return parse_hardware_ports(command_output(["networksetup", "-listallhardwareports"], timeout=5))
        if sys.platform == "win32":
            return parse_net_adapters(command_output(_WIN_ADAPTERS, timeout=6))
    except Exception:  # noqa: BLE001 - no facts is "by name", never a crash of the check
        return {}
    return {}


# --- Linux: /sys/class/net ------------------------------------------------------------------

SYSFS_NET = "/sys/class/net"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def linux_kind(name: str, root: str = SYSFS_NET) -> dict:
    base = f"{root}/{name}"
    devtype = ""
    for line in _read(f"{base}/uevent").splitlines():
        if line.startswith("DEVTYPE="):
            devtype = line.split("=", 1)[1]
    try:
        arphrd = int(_read(f"{base}/type") or -1)
    except ValueError:
        arphrd = -1
    has_device = os.path.exists(f"{base}/device")
    if arphrd == _LINUX_LOOPBACK_TYPE:
        kind = "loopback"
    elif os.path.exists(f"{base}/wireless") or os.path.exists(f"{base}/phy80211") or devtype == "wlan":
        kind = "wireless"
    elif arphrd in _LINUX_TUNNEL_TYPES or devtype == "wireguard" or (
            os.path.exists(f"{base}/tun_flags") and _VPN_NAME.search(name)):
        kind = "vpn"
    elif has_device and arphrd == 1 and devtype not in ("bridge", "vlan", "bond"):
        kind = "wired"
    elif arphrd == 1 or devtype in ("bridge", "vlan", "bond"):
        kind = "virtual"  # veth, bridge, dummy, tap, ifb: no hardware of their own
    else:
        kind = "other"
    return {"kind": kind, "basis": "sysfs", "arphrd": arphrd, "devtype": devtype or None, "hardware": has_device}


def linux_link_facts(root: str = SYSFS_NET) -> dict[str, dict]:
    try:
        names = os.listdir(root)
    except OSError:
        return {}
    return {n: linux_kind(n, root) for n in names}


def parse_proc_net_wireless(text: str) -> dict[str, dict]:
    """/proc/net/wireless: link quality and signal level (dBm where the driver reports dBm)."""
    out: dict[str, dict] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or len(parts) < 3:
            continue
        try:
            quality, level = float(parts[1].rstrip(".")), float(parts[2].rstrip("."))
        except ValueError:
            continue
        entry: dict = {"link_quality": quality}
        if level < 0:
            entry["signal_dbm"] = level
        out[name.strip()] = entry
    return out


def band_of(mhz: float) -> float | None:
    """Wi-Fi band in GHz from a channel's centre frequency in MHz."""
    if 2400 <= mhz < 2500:
        return 2.4
    if 4900 <= mhz < 5925:
        return 5.0
    if 5925 <= mhz <= 7125:
        return 6.0
    return None


def parse_iw_link(text: str) -> dict:
    """``iw dev NAME link``: frequency (so the band) and signal."""
    out: dict = {}
    m = re.search(r"freq:\s*(\d+(?:\.\d+)?)", text)
    if m:
        out["frequency_mhz"] = float(m.group(1))
        out["band_ghz"] = band_of(float(m.group(1)))
    m = re.search(r"signal:\s*(-?\d+)\s*dBm", text)
    if m:
        out["signal_dbm"] = float(m.group(1))
    m = re.search(r"SSID:\s*(.+)", text)
    if m:
        out["ssid"] = m.group(1).strip()
    return out


# --- macOS: networksetup -listallhardwareports ------------------------------------------------

_MAC_WIRED_PORT = re.compile(r"ethernet|\blan\b|thunderbolt ethernet", re.IGNORECASE)


def parse_hardware_ports(text: str) -> dict[str, dict]:
    """Apple's names for each device: "Wi-Fi" (once "AirPort") is wireless; a port naming
    Ethernet or LAN is wired; bridges, Bluetooth PAN, iPhone USB, Thunderbolt ports and VPNs
    are not."""
    out: dict[str, dict] = {}
    port = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Hardware Port":
            port = value
        elif key == "Device" and port is not None and value:
            low = port.lower()
            if "wi-fi" in low or "airport" in low:
                kind = "wireless"
            elif "bridge" in low:
                kind = "virtual"
            elif _VPN_NAME.search(port) or _VPN_NAME.search(value):
                kind = "vpn"
            elif _MAC_WIRED_PORT.search(port):
                kind = "wired"
            else:
                kind = "other"  # Bluetooth PAN, iPhone USB, "Thunderbolt 1" (bridge members)
            out[value] = {"kind": kind, "basis": "networksetup", "hardware_port": port}
            port = None
    out.setdefault("lo0", {"kind": "loopback", "basis": "networksetup"})
    return out


def parse_airport_profile(data: dict) -> dict[str, dict]:
    """``system_profiler SPAirPortDataType -json``: per Wi-Fi interface the current network's
    signal (dBm) and band."""
    out: dict[str, dict] = {}
    for item in data.get("SPAirPortDataType", []):
        for iface in item.get("spairport_airport_interfaces", []):
            cur = iface.get("spairport_current_network_information")
            if not isinstance(cur, dict):
                continue
            entry: dict = {}
            m = re.match(r"\s*(-?\d+)\s*dBm", str(cur.get("spairport_signal_noise", "")))
            if m:
                entry["signal_dbm"] = float(m.group(1))
            channel = str(cur.get("spairport_network_channel", ""))
            m = re.search(r"(2|5|6)\s*GHz", channel)
            if m:
                entry["band_ghz"] = 2.4 if m.group(1) == "2" else float(m.group(1))
            if cur.get("spairport_network_phymode"):
                entry["standard"] = str(cur["spairport_network_phymode"])
            out[str(iface.get("_name", ""))] = entry
    return out


# --- Windows: Get-NetAdapter and netsh --------------------------------------------------------

# NetAdapter data (MSFT_NetAdapter) as JSON: the IANA ifType, whether it is a hardware
# interface and whether it is virtual; -IncludeHidden so that no adapter is guessed by name.
# The same PowerShell start also names the interface of the best IPv4 default route.
_WIN_ADAPTERS = ["powershell", "-NoProfile", "-NonInteractive", "-Command",
                 "$a = @(Get-NetAdapter -IncludeHidden | Select-Object Name,InterfaceDescription,ifType,"
                 "HardwareInterface,Virtual,PhysicalMediaType,Status,LinkSpeed); "
                 "$r = Get-NetRoute -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue | "
                 "Sort-Object { $_.RouteMetric + $_.InterfaceMetric } | Select-Object -First 1 -ExpandProperty InterfaceAlias; "
                 "@{adapters = $a; default_route = $r} | ConvertTo-Json -Compress -Depth 3"]


def parse_net_adapters(text: str) -> dict[str, dict]:
    """Adapter kinds from NetAdapter JSON: a list of adapters, or {"adapters": [...],
    "default_route": "<alias>"} (then that adapter's facts say ``default_route: true``)."""
    import json

    try:
        doc = json.loads(text) if text.strip() else []
    except ValueError:
        return {}
    route = None
    if isinstance(doc, dict) and "adapters" in doc:
        route, doc = doc.get("default_route"), doc.get("adapters") or []
    rows = [doc] if isinstance(doc, dict) else doc  # ConvertTo-Json gives an object for one adapter
    out: dict[str, dict] = {}
    for row in rows:
        if not isinstance(row, dict) or not row.get("Name"):
            continue
        iftype = row.get("ifType")
        desc = str(row.get("InterfaceDescription") or "")
        media = str(row.get("PhysicalMediaType") or "")
        if iftype == _WIN_WIFI or "802.11" in media:
            kind = "wireless"
        elif iftype == _WIN_LOOPBACK:
            kind = "loopback"
        elif iftype in (_WIN_TUNNEL, _WIN_PPP) or _VPN_NAME.search(desc) or _VPN_NAME.search(str(row["Name"])):
            kind = "vpn"
        elif row.get("Virtual") or row.get("HardwareInterface") is False:
            kind = "virtual"  # Hyper-V vEthernet, VirtualBox Host-Only, VMware: ifType 6 but no hardware
        elif iftype == _WIN_ETHERNET:
            kind = "wired"
        else:
            kind = "other"  # mobile broadband (243/244), Bluetooth, ...
        out[str(row["Name"])] = {"kind": kind, "basis": "NetAdapter", "if_type": iftype, "description": desc}
        if route and row["Name"] == route:
            out[str(row["Name"])]["default_route"] = True
    return out


def parse_netsh_wlan(text: str) -> dict[str, dict]:
    """``netsh wlan show interfaces``: signal (percent), radio type, channel and band per
    interface name. English and Swedish key names."""
    keys = {"name": "name", "namn": "name", "signal": "signal", "radio type": "standard", "radiotyp": "standard",
            "channel": "channel", "kanal": "channel", "band": "band"}
    out: dict[str, dict] = {}
    cur: dict | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(" : ")
        if not sep:
            continue
        key = keys.get(key.strip().lower())
        value = value.strip()
        if key == "name":
            cur = out.setdefault(value, {})
        elif cur is None or key is None:
            continue
        elif key == "signal":
            m = re.match(r"(\d+)\s*%", value)
            if m:
                cur["signal_pct"] = float(m.group(1))
        elif key == "band":
            m = re.match(r"(2\.4|5|6)\s*GHz", value)
            if m:
                cur["band_ghz"] = float(m.group(1))
        elif key == "channel" and value.isdigit():
            cur["channel"] = int(value)
            cur.setdefault("band_ghz", 2.4 if int(value) <= 14 else 5.0)
        elif key == "standard":
            cur["standard"] = value
    return out


def wifi_facts() -> dict[str, dict]:
    """Signal and band of each connected Wi-Fi interface, where the OS tells them."""
    try:
        if sys.platform.startswith("linux"):
            out = parse_proc_net_wireless(_read("/proc/net/wireless") + "\n")
            for name in list(out):
                out[name].update(parse_iw_link(command_output(["iw", "dev", name, "link"])))
            return out
        if sys.platform == "darwin":
            import json

            raw = command_output(["system_profiler", "SPAirPortDataType", "-json"], timeout=5)
            return parse_airport_profile(json.loads(raw)) if raw.strip() else {}
        if sys.platform == "win32":
            return parse_netsh_wlan(command_output(["netsh", "wlan", "show", "interfaces"], timeout=5))
    except Exception:  # noqa: BLE001 - a fact we could not read is left out
        return {}
    return {}


def default_route_interface(facts: dict[str, dict] | None = None) -> str | None:
    """Name of the interface the default route leaves by, where the OS tells it cheaply
    (Windows: from the adapter facts, which ask for the route in the same PowerShell call)."""
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
    if sys.platform == "win32":
        facts = link_facts() if facts is None else facts
        return next((name for name, f in facts.items() if f.get("default_route")), None)
    return None


def proxy_settings() -> dict[str, str]:
    """The proxies the OS and environment configure (environment, Windows registry, macOS settings)."""
    import urllib.request

    try:
        found = urllib.request.getproxies()
    except Exception:  # registry / SystemConfiguration read failures
        found = {}
    return {k: redact_url(v) for k, v in found.items() if k in ("http", "https", "all", "no")}


def vpn_interfaces(facts: dict[str, dict] | None = None) -> list[str]:
    """Names of the VPN tunnels that are up. macOS keeps several ``utun`` interfaces for its own
    use, so there a utun counts only when it has an IPv4 address."""
    try:
        import psutil

        stats = psutil.net_if_stats()
        addrs = psutil.net_if_addrs()
    except Exception:  # noqa: BLE001 - no interface list is no VPN we can name
        return []
    found = []
    facts = link_facts() if facts is None else facts
    for name, st in stats.items():
        if not st.isup or interface_kind(name, facts) != "vpn":
            continue
        if name.startswith("utun") and not any(a.family == socket.AF_INET for a in addrs.get(name, [])):
            continue
        found.append(name)
    return sorted(found)
