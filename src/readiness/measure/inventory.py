"""What is installed: meeting clients, browsers and the operating system, read the way each OS
keeps it — without administrator rights and without recording anything personal.

Used by the ``software`` and ``security`` checks (``checks/``). A :class:`Probe` says where the
file system starts and how commands are run, so tests point it at a temporary root and at
recorded command output from real machines; the parsers below are the same either way.

Sources per OS:
- Linux: dpkg's status file, ``rpm -q`` for the names looked for, Snap's ``meta/snap.yaml``,
  Flatpak's deployed metainfo, and ``.desktop`` files (presence only: they carry no version).
- Windows: the uninstall registry keys (``reg query … /s``; machine, 32-bit and per-user) and
  the Appx/MSIX package list (``Get-AppxPackage`` for the new Teams).
- macOS: each app's ``Contents/Info.plist`` (CFBundleShortVersionString).

Privacy: only the clients in :data:`CLIENTS` are ever kept — never a list of other software,
never a user or file name. Commands ask for those names only where the tool allows it.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from readiness.versions import newest, version_key

# The meeting clients and browsers looked for, and the names each OS knows them by.
CLIENTS: dict[str, dict[str, Any]] = {
    "teams": {"title": "Microsoft Teams", "kind": "client",
              "appx": ["MSTeams"], "mac": ["Microsoft Teams.app", "Microsoft Teams (work or school).app"]},
    "teams_classic": {"title": "Microsoft Teams classic", "kind": "client",
                      "dpkg": ["teams", "teams-insiders"], "rpm": ["teams", "teams-insiders"],
                      "windows": [r"Microsoft Teams", r"Microsoft Teams classic", r"Teams Machine-Wide Installer"],
                      "mac": ["Microsoft Teams classic.app"], "desktop": ["Microsoft Teams", "Microsoft Teams - Preview"]},
    "zoom": {"title": "Zoom", "kind": "client", "dpkg": ["zoom"], "rpm": ["zoom"], "snap": ["zoom-client"],
             "flatpak": ["us.zoom.Zoom"], "windows": [r"Zoom", r"Zoom Workplace", r"Zoom Workplace \(\d\d-bit\)", r"Zoom \(\d\d-bit\)"],
             "mac": ["zoom.us.app"], "desktop": ["Zoom", "Zoom Workplace"]},
    "webex": {"title": "Webex", "kind": "client", "dpkg": ["webex"], "rpm": ["webex", "Webex"],
              "windows": [r"Webex", r"Cisco Webex Meetings", r"Cisco Webex Meetings Desktop App"],
              "mac": ["Webex.app", "Cisco Webex Meetings.app"], "desktop": ["Webex"]},
    "edge": {"title": "Microsoft Edge", "kind": "browser", "dpkg": ["microsoft-edge-stable"],
             "rpm": ["microsoft-edge-stable"], "flatpak": ["com.microsoft.Edge"], "windows": [r"Microsoft Edge"],
             "mac": ["Microsoft Edge.app"], "desktop": ["Microsoft Edge"]},
    "chrome": {"title": "Google Chrome", "kind": "browser", "dpkg": ["google-chrome-stable"],
               "rpm": ["google-chrome-stable"], "flatpak": ["com.google.Chrome"], "windows": [r"Google Chrome"],
               "mac": ["Google Chrome.app"], "desktop": ["Google Chrome"]},
    "firefox": {"title": "Firefox", "kind": "browser", "dpkg": ["firefox", "firefox-esr"], "rpm": ["firefox"],
                "snap": ["firefox"], "flatpak": ["org.mozilla.firefox"],
                "windows": [r"Mozilla Firefox( \([^)]*\))?", r"Mozilla Firefox ESR( \([^)]*\))?"],
                "mac": ["Firefox.app"], "desktop": ["Firefox", "Firefox Web Browser", "Firefox ESR", "Mozilla Firefox"]},
    "safari": {"title": "Safari", "kind": "browser", "mac": ["Safari.app"]},
}

_UNINSTALL_KEYS = [
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
    r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall",
    r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall",
]
WINDOWS_NT_KEY = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"


def _run_command(cmd: list[str], timeout: float = 15.0) -> str:
    """stdout of a command, "" when it is missing, fails to start or times out."""
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.decode("utf-8", errors="replace")


@dataclass
class Probe:
    """Where to look: the file system root, the platform, how to run a command, the user's home.

    Tests give a temporary ``root`` and a ``run`` that answers with recorded output.
    """

    root: Path = Path("/")
    platform: str = sys.platform
    run: Callable[[list[str]], str] = _run_command
    home: Path | None = field(default_factory=lambda: Path.home() if "HOME" in os.environ or sys.platform == "win32" else None)

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def read(self, absolute: str | Path) -> str | None:
        p = absolute if isinstance(absolute, Path) else self.path(absolute)
        try:
            with open(p, "rb") as fh:
                return fh.read(4 * 1024 * 1024).decode("utf-8", errors="replace")
        except OSError:
            return None

    @property
    def system(self) -> str:
        if self.platform == "win32":
            return "windows"
        if self.platform == "darwin":
            return "macos"
        return "linux"


# --- parsers (pure: text in, facts out) ---------------------------------------------------------


def parse_dpkg_status(text: str, names: set[str]) -> dict[str, str]:
    """Installed version of each wanted package from dpkg's ``status`` file (RFC 822 stanzas)."""
    found: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        name = fields.get("package")
        if name in names and fields.get("status", "").endswith(" installed") and fields.get("version"):
            found[name] = fields["version"]
    return found


def parse_rpm_query(text: str) -> dict[str, str]:
    """``rpm -q --qf '%{NAME}\\t%{VERSION}\\n' NAMES…``; "package X is not installed" lines are skipped."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        name, tab, version = line.partition("\t")
        if tab and name.strip() and version.strip():
            found[name.strip()] = version.strip()
    return found


def parse_snap_yaml_version(text: str) -> str | None:
    """``version:`` of a snap's ``meta/snap.yaml`` (a flat key; no YAML library needed for it)."""
    m = re.search(r"^version:\s*['\"]?([^'\"\n#]+?)['\"]?\s*(#.*)?$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


def parse_metainfo_version(text: str) -> str | None:
    """The newest ``<release version="…">`` of an AppStream metainfo file (Flatpak apps ship one)."""
    return newest(re.findall(r"<release\b[^>]*\bversion=\"([^\"]+)\"", text))


def parse_desktop_entry(text: str) -> dict[str, str]:
    """Name, NoDisplay and Hidden of a ``.desktop`` file's [Desktop Entry] group."""
    out: dict[str, str] = {}
    group = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            group = line
            continue
        if group == "[Desktop Entry]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            if key.strip() in ("Name", "NoDisplay", "Hidden", "Type"):
                out[key.strip()] = value.strip()
    return out


def parse_reg_query(text: str) -> dict[str, dict[str, str]]:
    """Output of ``reg query KEY /s`` (any language; value names and types are not translated):
    key path -> {value name: data}."""
    keys: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("HKEY_") or re.match(r"^HK(LM|CU|U|CR|CC)\\", line):
            current = keys.setdefault(line.strip(), {})
            continue
        m = re.match(r"^\s{2,}(.*?)\s{2,}(REG_[A-Z_]+)(?:\s{2,}(.*))?$", line)
        if m and current is not None:
            current[m.group(1)] = (m.group(3) or "").strip()
    return keys


def parse_appx_json(text: str) -> dict[str, str]:
    """``Get-AppxPackage … | Select-Object Name,Version | ConvertTo-Json``: name -> newest version."""
    try:
        data = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        return {}
    if isinstance(data, dict):
        data = [data]
    out: dict[str, list[str]] = {}
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict) and isinstance(item.get("Name"), str) and isinstance(item.get("Version"), str):
            out.setdefault(item["Name"], []).append(item["Version"])
    return {name: newest(vs) or vs[0] for name, vs in out.items()}


def parse_plist_version(data: bytes) -> str | None:
    """CFBundleShortVersionString (else CFBundleVersion) of an Info.plist, XML or binary."""
    try:
        info = plistlib.loads(data)
    except Exception:  # noqa: BLE001 - plistlib raises several types for a damaged file
        return None
    if not isinstance(info, dict):
        return None
    for key in ("CFBundleShortVersionString", "CFBundleVersion"):
        v = info.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def parse_os_release(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip("\"'")
    return out


# --- installed clients --------------------------------------------------------------------------


def _add(found: dict[str, list[dict[str, Any]]], client: str, version: str | None, source: str) -> None:
    entry = {"version": version if version_key(version) is not None else None, "source": source}
    if entry not in found.setdefault(client, []):
        found[client].append(entry)


def _linux_clients(probe: Probe, found: dict[str, list[dict[str, Any]]]) -> list[str]:
    sources: list[str] = []
    status = probe.read("/var/lib/dpkg/status")
    if status is not None:
        sources.append("dpkg")
        wanted = {n for c in CLIENTS.values() for n in c.get("dpkg", [])}
        versions = parse_dpkg_status(status, wanted)
        for key, c in CLIENTS.items():
            for n in c.get("dpkg", []):
                if n in versions:
                    _add(found, key, versions[n], "dpkg")
    rpm_names = sorted({n for c in CLIENTS.values() for n in c.get("rpm", [])})
    # the system's package database (Fedora/SUSE keep it in /usr/lib/sysimage, older ones in
    # /var/lib); named explicitly, since rpm installed on a Debian machine defaults to ~/.rpmdb
    dbpath = next((d for d in ("/usr/lib/sysimage/rpm", "/var/lib/rpm") if probe.path(d).is_dir()), None)
    if dbpath is not None:
        cmd = ["rpm", "--dbpath", dbpath, "-q", "--qf", "%{NAME}\\t%{VERSION}\\n", *rpm_names]
        if probe.root != Path("/"):
            cmd[1:1] = ["--root", str(probe.root)]
        sources.append("rpm")
        versions = parse_rpm_query(probe.run(cmd))
        for key, c in CLIENTS.items():
            for n in c.get("rpm", []):
                if n in versions:
                    _add(found, key, versions[n], "rpm")
    if probe.path("/snap").is_dir():
        sources.append("snap")
        for key, c in CLIENTS.items():
            for n in c.get("snap", []):
                text = probe.read(probe.path(f"/snap/{n}/current/meta/snap.yaml"))
                if text is not None:
                    _add(found, key, parse_snap_yaml_version(text), "snap")
    flatpak_roots = [probe.path("/var/lib/flatpak")]
    if probe.home is not None:
        flatpak_roots.append(probe.home / ".local/share/flatpak")
    for froot in flatpak_roots:
        if not froot.is_dir():
            continue
        if "flatpak" not in sources:
            sources.append("flatpak")
        for key, c in CLIENTS.items():
            for app in c.get("flatpak", []):
                active = froot / "app" / app / "current" / "active"
                if not active.exists():
                    continue
                version = None
                for sub in ("files/share/metainfo", "files/share/appdata"):
                    for suffix in (".metainfo.xml", ".appdata.xml"):
                        text = probe.read(active / sub / f"{app}{suffix}")
                        if text is not None and version is None:
                            version = parse_metainfo_version(text)
                _add(found, key, version, "flatpak")
    desktop_dirs = [probe.path("/usr/share/applications"), probe.path("/usr/local/share/applications"),
                    probe.path("/var/lib/flatpak/exports/share/applications"),
                    probe.path("/var/lib/snapd/desktop/applications")]
    if probe.home is not None:
        desktop_dirs.append(probe.home / ".local/share/applications")
    names = {n: key for key, c in CLIENTS.items() for n in c.get("desktop", [])}
    for folder in desktop_dirs:
        try:
            entries = sorted(folder.glob("*.desktop"))
        except OSError:
            continue
        if entries and "desktop" not in sources:
            sources.append("desktop")
        for entry in entries:
            text = probe.read(entry)
            if text is None:
                continue
            d = parse_desktop_entry(text)
            key = names.get(d.get("Name", ""))
            if key and d.get("Hidden", "").lower() != "true" and d.get("Type", "Application") == "Application":
                if not found.get(key):  # a package already told the version; the launcher adds nothing
                    _add(found, key, None, "desktop")
    return sources


def _windows_clients(probe: Probe, found: dict[str, list[dict[str, Any]]]) -> list[str]:
    sources: list[str] = []
    patterns = [(key, re.compile(rf"^(?:{p})$", re.IGNORECASE)) for key, c in CLIENTS.items() for p in c.get("windows", [])]
    for hive in _UNINSTALL_KEYS:
        keys = parse_reg_query(probe.run(["reg", "query", hive, "/s"]))
        if keys:
            sources.append("registry")
        for values in keys.values():
            name = values.get("DisplayName", "").strip()
            for key, rx in patterns:
                if rx.match(name):
                    _add(found, key, values.get("DisplayVersion"), "registry")
                    break
    appx = {n: key for key, c in CLIENTS.items() for n in c.get("appx", [])}
    script = (f"Get-AppxPackage -Name {','.join(sorted(appx))} | Select-Object Name,Version | ConvertTo-Json -Compress")
    text = probe.run(["powershell", "-NoProfile", "-NonInteractive", "-Command", script])
    if text.strip():
        sources.append("appx")
    for name, version in parse_appx_json(text).items():
        if name in appx:
            _add(found, appx[name], version, "appx")
    return sorted(set(sources), key=sources.index)


def _mac_clients(probe: Probe, found: dict[str, list[dict[str, Any]]]) -> list[str]:
    folders = [probe.path("/Applications"), probe.path("/System/Applications"),
               probe.path("/System/Cryptexes/App/System/Applications")]
    if probe.home is not None:
        folders.append(probe.home / "Applications")
    seen = False
    for key, c in CLIENTS.items():
        for app in c.get("mac", []):
            for folder in folders:
                plist = folder / app / "Contents" / "Info.plist"
                try:
                    data = plist.read_bytes()
                except OSError:
                    continue
                seen = True
                _add(found, key, parse_plist_version(data), "app bundle")
                break
    return ["app bundle"] if seen or probe.path("/Applications").is_dir() else []


def installed_clients(probe: Probe) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """client key -> [{version, source}] for every copy found, and the sources that could be read."""
    found: dict[str, list[dict[str, Any]]] = {}
    reader = {"windows": _windows_clients, "macos": _mac_clients}.get(probe.system, _linux_clients)
    sources = reader(probe, found)
    return found, sources


# --- the operating system -----------------------------------------------------------------------


_WINDOWS_FAMILY = {"enterprises": "ltsc", "enterprisesn": "ltsc", "iotenterprises": "ltsc",
                   "enterprise": "enterprise", "enterprisen": "enterprise", "education": "enterprise",
                   "educationn": "enterprise", "iotenterprise": "enterprise", "serverrdsh": "enterprise"}


def windows_os(values: dict[str, str]) -> dict[str, Any]:
    """Name, version and build from ``HKLM\\…\\Windows NT\\CurrentVersion`` (parsed reg query).

    ProductName still says "Windows 10" on Windows 11, so the build number decides (≥ 22000 is 11).
    """
    build = values.get("CurrentBuildNumber") or values.get("CurrentBuild") or ""
    ubr = values.get("UBR", "")
    ubr_n = int(ubr, 16) if ubr.lower().startswith("0x") else (int(ubr) if ubr.isdigit() else None)
    edition = values.get("EditionID", "")
    major = "11" if build.isdigit() and int(build) >= 22000 else "10"
    display = values.get("DisplayVersion") or values.get("ReleaseId") or ""
    return {"system": "windows", "name": f"Windows {major}", "version": display, "build": build,
            "full_build": f"{build}.{ubr_n}" if build and ubr_n is not None else build,
            "edition": edition, "family": _WINDOWS_FAMILY.get(edition.lower(), "consumer")}


def os_info(probe: Probe) -> dict[str, Any]:
    """The OS: system (windows, macos, or the os-release ID), name, version, build."""
    if probe.system == "windows":
        keys = parse_reg_query(probe.run(["reg", "query", WINDOWS_NT_KEY]))
        values = next(iter(keys.values()), {})
        return windows_os(values) if values else {"system": "windows", "name": "Windows"}
    if probe.system == "macos":
        try:
            info = plistlib.loads(probe.path("/System/Library/CoreServices/SystemVersion.plist").read_bytes())
        except Exception:  # noqa: BLE001 - missing or damaged: the OS stays unnamed
            return {"system": "macos", "name": "macOS"}
        return {"system": "macos", "name": str(info.get("ProductName") or "macOS"),
                "version": str(info.get("ProductVersion") or ""), "build": str(info.get("ProductBuildVersion") or "")}
    text = probe.read("/etc/os-release") or probe.read("/usr/lib/os-release") or ""
    rel = parse_os_release(text)
    kernel = ""
    if probe.root == Path("/"):
        kernel = os.uname().release if hasattr(os, "uname") else ""
    return {"system": rel.get("ID", "linux").lower(), "name": rel.get("NAME", "Linux"),
            "version": rel.get("VERSION_ID", ""), "pretty": rel.get("PRETTY_NAME", ""),
            "codename": rel.get("VERSION_CODENAME", ""), "build": kernel}
