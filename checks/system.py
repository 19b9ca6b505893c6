"""The system check: the machine itself (CPU, memory, disk, power, network interfaces, VPN, proxy).

A built-in check plugin (entry point ``system``). Uses psutil and the standard library; the
platform-specific parts are small functions guarded by ``sys.platform``. Measures only.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

from readiness.check import Check, CheckContext, Measurement, Metric, Setting
from readiness.measure.netinfo import (command_output, default_route_interface, interface_kind, link_facts,
                                       proxy_settings, vpn_interfaces, wifi_facts)
from readiness.measure.proxies import os_pac_url

GB = 1024**3


def cpu_model() -> str:
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
                        value = line.split(":", 1)[1].strip()
                        if value and not value.isdigit():
                            return value
        except OSError:
            pass
    elif sys.platform == "darwin":
        name = command_output(["sysctl", "-n", "machdep.cpu.brand_string"]).strip()
        if name:
            return name
    elif sys.platform == "win32":
        try:
            import winreg

            key = winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")
            return str(winreg.QueryValueEx(key, "ProcessorNameString")[0]).strip()
        except OSError:
            pass
    return platform.processor() or platform.machine()


def os_description() -> dict[str, str]:
    if sys.platform == "darwin":
        return {"os": "macOS", "os_version": platform.mac_ver()[0] or platform.release()}
    if sys.platform == "win32":
        return {"os": "Windows", "os_version": f"{platform.release()} ({platform.version()})"}
    pretty = ""
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME", "")
    except OSError:
        pass
    return {"os": platform.system(), "os_version": pretty or platform.release(), "kernel": platform.release()}


def interfaces(facts: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """Every interface with its kind as the OS tells it (``basis`` says how it was known)."""
    import psutil

    facts = link_facts() if facts is None else facts
    stats = psutil.net_if_stats()
    addrs = psutil.net_if_addrs()
    out = []
    for name, st in sorted(stats.items()):
        fact = facts.get(name, {})
        ips = [a.address for a in addrs.get(name, []) if getattr(a.family, "name", "") in ("AF_INET", "AF_INET6")]
        # whether it has an address, not the address: the result holds no network addresses (README, Privacy)
        entry = {"name": name, "kind": interface_kind(name, facts), "basis": fact.get("basis", "name"),
                 "up": bool(st.isup), "speed_mbps": int(st.speed or 0) or None, "has_address": bool(ips)}
        if fact.get("hardware_port"):
            entry["hardware_port"] = fact["hardware_port"]
        if fact.get("description"):
            entry["description"] = fact["description"]
        out.append(entry)
    return out


def battery() -> dict[str, Any] | None:
    import psutil

    try:
        b = psutil.sensors_battery()
    except (AttributeError, NotImplementedError, OSError, RuntimeError):
        return None
    if b is None:
        return None
    return {"percent": round(float(b.percent), 1), "plugged_in": b.power_plugged}


def _wifi_in_use(ifs: list[dict[str, Any]], route_if: str | None) -> dict[str, Any] | None:
    """Signal and band of the Wi-Fi interface that is up (the default route's, if it is Wi-Fi)."""
    up = [i["name"] for i in ifs if i["kind"] == "wireless" and i["up"] and i["addresses"]]
    if not up:
        return None
    facts = wifi_facts()
    for name in ([route_if] if route_if in up else []) + up:
        if name in facts:
            return {"interface": name, **facts[name]}
    if len(facts) == 1 and sys.platform == "win32":  # netsh names the connection, not always the adapter
        return dict(next(iter(facts.values())))
    return None


class SystemCheck(Check):
    name = "system"
    title = "This computer"
    description = "CPU, memory, disk, power, network interfaces, VPN and proxy."
    section = "equipment"
    fix = "computer"  # CPU and memory: a better computer
    metrics = (
        Metric("cpu_cores", "cores", "physical CPU cores"),
        Metric("cpu_threads", "threads", "logical processors"),
        Metric("cpu_freq_ghz", "GHz", "CPU base or maximum frequency"),
        Metric("cpu_load_pct", "%", "CPU load while the checks ran"),
        Metric("ram_total_gb", "GB", "installed memory, rounded to whole GB"),
        Metric("ram_available_gb", "GB", "memory available"),
        Metric("disk_free_gb", "GB", "free disk space where results are written", fix="computer_other",
               fix_subject="disk_free_gb"),
        Metric("battery_pct", "%", "battery charge", fix="power"),
        Metric("on_ac_power", "", "running on mains power (or no battery)", kind="bool", fix="power"),
        Metric("wired_network", "", "a wired network connection is up", kind="bool", section="network", fix="wired"),
        Metric("wired_link_mbps", "Mbps", "fastest wired link speed", section="network", fix="wired"),
        Metric("wifi_signal_dbm", "dBm", "Wi-Fi signal strength of the connected Wi-Fi (macOS, Linux)",
               fix="computer_other", fix_subject="wifi_signal_dbm"),
        Metric("wifi_signal_pct", "%", "Wi-Fi signal quality as Windows reports it", fix="computer_other",
               fix_subject="wifi_signal_pct"),
        Metric("wifi_band_ghz", "GHz", "Wi-Fi band in use (2.4, 5 or 6)", fix="computer_other",
               fix_subject="wifi_band_ghz"),
        Metric("vpn_active", "", "traffic goes through a VPN tunnel", kind="bool", section="security",
               security_fact=True, fix="vpn_proxy"),
        Metric("proxy_configured", "", "an HTTP proxy is configured", kind="bool", section="security",
               security_fact=True, fix="vpn_proxy"),
    )
    settings = {"sample_s": Setting(1.0, "seconds over which CPU load is sampled", (int, float))}
    budget_s = 10.0

    def run(self, ctx: CheckContext) -> Measurement:
        import psutil

        sample_s = max(0.1, float(ctx.settings.get("sample_s", 1.0)))
        psutil.cpu_percent(interval=None)
        t0 = time.monotonic()

        m: dict[str, Any] = {}
        d: dict[str, Any] = dict(os_description())
        d["cpu_model"] = cpu_model()
        d["architecture"] = platform.machine()
        d["python"] = platform.python_version()
        m["cpu_threads"] = psutil.cpu_count(logical=True)
        m["cpu_cores"] = psutil.cpu_count(logical=False) or m["cpu_threads"]
        try:
            freq = psutil.cpu_freq()
        except (AttributeError, NotImplementedError, OSError, RuntimeError):
            freq = None
        if freq is not None:
            mhz = freq.max or freq.current
            if mhz:
                m["cpu_freq_ghz"] = round(mhz / 1000.0, 2)
        vm = psutil.virtual_memory()
        # The OS keeps some memory for itself, so an "8 GB" machine reports about 7.7 GB: round
        # to whole GB to compare with the vendors' "8 GB RAM"; the exact figure is in details.
        m["ram_total_gb"] = round(vm.total / GB)
        d["ram_total_bytes"] = vm.total
        m["ram_available_gb"] = round(vm.available / GB, 2)
        disk_path = str(ctx.options.get("output_dir") or os.path.expanduser("~"))
        while disk_path and not os.path.exists(disk_path):
            parent = os.path.dirname(disk_path)
            disk_path = parent if parent != disk_path else ""
        try:
            m["disk_free_gb"] = round(psutil.disk_usage(disk_path or os.sep).free / GB, 2)
        except OSError:
            pass

        bat = battery()
        d["battery"] = bat
        if bat is None:
            m["on_ac_power"] = True
        else:
            m["battery_pct"] = bat["percent"]
            if bat["plugged_in"] is not None:
                m["on_ac_power"] = bool(bat["plugged_in"])

        facts = link_facts()
        ifs = interfaces(facts)
        d["interfaces"] = ifs
        wired = [i for i in ifs if i["kind"] == "wired" and i["up"] and i["has_address"]]
        m["wired_network"] = bool(wired)
        speeds = [i["speed_mbps"] for i in wired if i["speed_mbps"]]
        if speeds:
            m["wired_link_mbps"] = max(speeds)
        route_if = default_route_interface(facts)
        d["default_route_interface"] = route_if
        wifi = _wifi_in_use(ifs, route_if)
        if wifi:
            d["wifi"] = wifi
            for key in ("signal_dbm", "signal_pct", "band_ghz"):
                if wifi.get(key) is not None:
                    m[f"wifi_{key}"] = wifi[key]
        if route_if is not None:
            m["vpn_active"] = interface_kind(route_if, facts) == "vpn"
            d["vpn_basis"] = "default route"
        else:
            m["vpn_active"] = bool(vpn_interfaces(facts))
            d["vpn_basis"] = "a VPN adapter is up"
        proxies = proxy_settings()
        d["proxies"] = proxies

        pac = os_pac_url()  # Windows/macOS "automatic configuration script"
        if pac:
            d["proxy_auto_config"] = pac
        m["proxy_configured"] = any(k in proxies for k in ("http", "https", "all")) or bool(pac)

        # CPU load over the sample window, so a busy machine shows even on a quick run.
        left = sample_s - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        m["cpu_load_pct"] = round(psutil.cpu_percent(interval=None), 1)
        return Measurement(metrics=m, details=d)
