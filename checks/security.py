"""The security check: is the OS firewall on, is the system disk encrypted — where the OS tells it
without administrator rights.

A built-in check plugin (entry point ``security``). It reports facts and judges nothing: a
profile may require ``security.firewall_on`` or ``security.disk_encrypted`` (none of the shipped
ones does). The other security facts that matter for meetings come from the checks that measure
them: VPN and proxy (``system``), an untrusted (inspected) TLS certificate (``connectivity``), an
outdated client or OS out of support (``software``). Where the OS does not tell, the fact is
left out (unknown), never guessed.

- Windows: the firewall policy in the registry (``reg query``; Group Policy wins), BitLocker by
  the shell's ``System.Volume.BitLockerProtection`` property of the system drive (no admin needed,
  unlike ``manage-bde``).
- macOS: ``socketfilterfw --getglobalstate`` and ``fdesetup status``.
- Linux: ufw's ``ufw.conf`` or firewalld enabled in systemd; LUKS under the root file system,
  found from ``/proc/self/mountinfo`` down the device-mapper stack in ``/sys``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Setting
from readiness.measure.inventory import Probe, parse_reg_query

_FIREWALL_KEYS = [
    r"HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall",
    r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy",
]
_WINDOWS_PROFILES = {"DomainProfile": "domain", "StandardProfile": "private", "PublicProfile": "public"}
# System.Volume.BitLockerProtection: 1 on, 2 off, 3 encrypting, 4 decrypting, 5 suspended, 6 on (locked)
_BITLOCKER = {1: ("on", True), 2: ("off", False), 3: ("encrypting", False), 4: ("decrypting", False),
              5: ("suspended", False), 6: ("on", True)}
_BITLOCKER_SCRIPT = ("(New-Object -ComObject Shell.Application).NameSpace($env:SystemDrive)"
                     ".Self.ExtendedProperty('System.Volume.BitLockerProtection')")


def _reg_dword(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def windows_firewall(keys: dict[str, dict[str, str]]) -> dict[str, bool]:
    """Profile -> enabled, from parsed ``reg query`` of the policy and the local firewall keys;
    a Group Policy setting wins over the local one."""
    state: dict[str, bool] = {}
    for prefix in _FIREWALL_KEYS:  # policy first: what it sets is what applies
        for path, values in keys.items():
            tail = path.rsplit("\\", 1)[-1]
            if prefix.split("\\", 1)[1].lower() in path.lower() and tail in _WINDOWS_PROFILES:
                v = _reg_dword(values.get("EnableFirewall"))
                if v is not None:
                    state.setdefault(_WINDOWS_PROFILES[tail], v == 1)
    return state


def bitlocker_state(text: str) -> tuple[str | None, bool | None]:
    m = re.search(r"-?\d+", text or "")
    if m is None:
        return None, None
    return _BITLOCKER.get(int(m.group(0)), (None, None))


def mac_firewall(text: str) -> bool | None:
    """``socketfilterfw --getglobalstate``: "Firewall is enabled. (State = 1)" (2 = block all)."""
    m = re.search(r"State\s*=\s*(\d)", text or "")
    if m:
        return m.group(1) in ("1", "2")
    if re.search(r"\benabled\b", text or "", re.IGNORECASE):
        return True
    if re.search(r"\bdisabled\b", text or "", re.IGNORECASE):
        return False
    return None


def filevault(text: str) -> tuple[str | None, bool | None]:
    """``fdesetup status``: "FileVault is On." / "FileVault is Off." / "Encryption in progress…"."""
    if re.search(r"FileVault is On", text or ""):
        return "on", True
    if re.search(r"FileVault is Off", text or ""):
        return "off", False
    if re.search(r"(En|De)cryption in progress", text or ""):
        return "in progress", False
    return None, None


def linux_firewall(probe: Probe) -> tuple[str | None, bool | None]:
    ufw = probe.read("/etc/ufw/ufw.conf")
    if ufw is not None:
        m = re.search(r"^\s*ENABLED\s*=\s*(\w+)", ufw, re.MULTILINE)
        if m and m.group(1).lower() == "yes":
            return "ufw", True
    for unit in ("firewalld.service", "nftables.service"):
        if probe.path(f"/etc/systemd/system/multi-user.target.wants/{unit}").exists():
            return unit.split(".")[0], True
    if ufw is not None:
        return "ufw", False
    return None, None  # the kernel's own rules cannot be read without root


def _root_device(probe: Probe) -> str | None:
    """major:minor of the device under "/", from mountinfo (field 5 is the mount point)."""
    text = probe.read("/proc/self/mountinfo") or ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[4] == "/":
            return parts[2]
    return None


def linux_luks(probe: Probe) -> tuple[str | None, bool | None]:
    """Whether the root file system sits on dm-crypt (LUKS), walking device-mapper slaves."""
    dev = _root_device(probe)
    if dev is None or dev.startswith("0:"):  # overlay, tmpfs, a container: no block device to ask
        return None, None
    start = probe.path(f"/sys/dev/block/{dev}")
    if not start.exists():
        return None, None
    seen: set[str] = set()
    stack = [start]
    while stack:
        node = stack.pop()
        try:
            real = node.resolve()
        except OSError:
            continue
        if str(real) in seen:
            continue
        seen.add(str(real))
        uuid = probe.read(real / "dm" / "uuid")
        if uuid is not None and uuid.strip().upper().startswith("CRYPT-"):
            return "luks", True
        slaves = real / "slaves"  # a dm device's underlying devices (LVM on LUKS, …)
        if slaves.is_dir():
            stack.extend(sorted(slaves.iterdir()))
    return "none", False


class SecurityCheck(Check):
    name = "security"
    title = "Security"
    description = "OS firewall and disk encryption, where the OS tells without administrator rights."
    section = "security"
    metrics = (
        Metric("firewall_on", "", "the OS firewall is on (on Windows: in every profile)", kind="bool", security_fact=True,
               fix="firewall"),
        Metric("disk_encrypted", "", "the system disk is encrypted (BitLocker, FileVault, LUKS)", kind="bool", security_fact=True,
               fix="encrypt"),
    )
    settings = {"root": Setting("", "where the file system starts (default: /)", str)}
    budget_s = 20.0

    def run(self, ctx: CheckContext, probe: Probe | None = None) -> Measurement:
        if probe is None:
            root = ctx.settings.get("root") or "/"
            if not Path(root).is_dir():
                raise CheckError(f"security.root: {root} is not a folder")
            probe = Probe(root=Path(root))
        metrics: dict[str, Any] = {}
        details: dict[str, Any] = {}
        if probe.system == "windows":
            keys: dict[str, dict[str, str]] = {}
            for k in _FIREWALL_KEYS:
                keys.update(parse_reg_query(probe.run(["reg", "query", k, "/s"])))
            profiles = windows_firewall(keys)
            details["firewall"] = {"by": "windows firewall", "profiles": profiles}
            if len(profiles) == len(_WINDOWS_PROFILES):
                metrics["firewall_on"] = all(profiles.values())
            state, enc = bitlocker_state(probe.run(["powershell", "-NoProfile", "-NonInteractive", "-Command", _BITLOCKER_SCRIPT]))
            details["encryption"] = {"by": "bitlocker", "state": state}
        elif probe.system == "macos":
            on = mac_firewall(probe.run(["/usr/libexec/ApplicationFirewall/socketfilterfw", "--getglobalstate"]))
            details["firewall"] = {"by": "application firewall"}
            if on is not None:
                metrics["firewall_on"] = on
            state, enc = filevault(probe.run(["fdesetup", "status"]))
            details["encryption"] = {"by": "filevault", "state": state}
        else:
            by, on = linux_firewall(probe)
            details["firewall"] = {"by": by}
            if on is not None:
                metrics["firewall_on"] = on
            by, enc = linux_luks(probe)
            details["encryption"] = {"by": by}
        if enc is not None:
            metrics["disk_encrypted"] = enc
        findings = [{"code": f"{name}_not_told", "args": {}} for name, key in (("firewall", "firewall_on"),
                    ("encryption", "disk_encrypted")) if key not in metrics]
        details["findings"] = findings
        return Measurement(metrics=metrics, details=details)
