"""The security check: firewall and disk encryption. Linux for real on a temporary root laid out
as the kernel and ufw lay it out (mountinfo, /sys/dev/block links, device-mapper uuids);
Windows and macOS through the same parsers fed with recorded output (tests/data/software)."""

from __future__ import annotations

import json
from pathlib import Path

from readiness.check import CheckContext
from readiness.measure.inventory import Probe
from support import recorded

DATA = Path(__file__).resolve().parent / "data" / "software"


def _run(probe: Probe):
    from readiness.checks.security import SecurityCheck

    return SecurityCheck().run(CheckContext(settings={"root": ""}, options={}, budget_s=20), probe=probe)


def _block(root: Path, name: str, dev: str, uuid: str | None, slaves: list[str] = ()) -> None:
    node = root / "sys" / "devices" / "virtual" / "block" / name
    (node / "slaves").mkdir(parents=True)
    if uuid is not None:
        (node / "dm").mkdir()
        (node / "dm" / "uuid").write_text(uuid + "\n", encoding="utf-8")
    for s in slaves:
        (node / "slaves" / s).symlink_to(f"../../{s}")
    links = root / "sys" / "dev" / "block"
    links.mkdir(parents=True, exist_ok=True)
    (links / dev).symlink_to(f"../../devices/virtual/block/{name}")


def _linux(tmp_path: Path, root_dev: str, ufw: str | None) -> Probe:
    root = tmp_path / "root"
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "mountinfo").write_text(
        f"22 1 {root_dev} / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw\n"
        "40 22 0:35 / /tmp rw,nosuid shared:20 - tmpfs tmpfs rw\n", encoding="utf-8")
    if ufw is not None:
        (root / "etc" / "ufw").mkdir(parents=True)
        (root / "etc" / "ufw" / "ufw.conf").write_text(f"# /etc/ufw/ufw.conf\nENABLED={ufw}\nLOGLEVEL=low\n", encoding="utf-8")
    return Probe(root=root, platform="linux", run=lambda c: "", home=None)


def test_linux_luks_under_lvm_and_ufw_on(tmp_path: Path) -> None:
    probe = _linux(tmp_path, "253:1", "yes")
    _block(probe.root, "dm-0", "253:0", "CRYPT-LUKS2-4f3c2b1a9d8e7f60-luks-4f3c2b1a", ["sda3"])
    _block(probe.root, "dm-1", "253:1", "LVM-Qe3kT1vG0bWn", ["dm-0"])
    _block(probe.root, "sda3", "8:3", None)
    m = _run(probe)
    assert m.metrics == {"firewall_on": True, "disk_encrypted": True}
    assert m.details["encryption"] == {"by": "luks"} and m.details["firewall"] == {"by": "ufw"}


def test_linux_plain_disk_and_ufw_off(tmp_path: Path) -> None:
    probe = _linux(tmp_path, "8:2", "no")
    _block(probe.root, "sda2", "8:2", None)
    m = _run(probe)
    assert m.metrics == {"firewall_on": False, "disk_encrypted": False}


def test_linux_container_root_is_unknown_not_false(tmp_path: Path) -> None:
    m = _run(_linux(tmp_path, "0:52", None))  # overlay: no block device tells anything
    assert m.metrics == {}
    assert {f["code"] for f in m.details["findings"]} == {"firewall_not_told", "encryption_not_told"}


def _recorded(files: dict[str, str]):
    return recorded(DATA, files)


def test_windows_policy_wins_over_local_setting() -> None:
    files = {"Policies": "windows-firewall-policy.txt", "FirewallPolicy": "windows-firewall-local.txt",
             "BitLocker": "windows-bitlocker.txt"}
    m = _run(Probe(root=Path("/nonexistent"), platform="win32", run=_recorded(files), home=None))
    assert m.details["firewall"]["profiles"] == {"domain": True, "private": True, "public": False}
    assert m.metrics == {"firewall_on": False, "disk_encrypted": True}
    files.pop("Policies")
    m = _run(Probe(root=Path("/nonexistent"), platform="win32", run=_recorded(files), home=None))
    assert m.metrics["firewall_on"] is True


def test_macos_firewall_and_filevault() -> None:
    files = {"socketfilterfw": "macos-socketfilterfw.txt", "fdesetup": "macos-fdesetup.txt"}
    m = _run(Probe(root=Path("/nonexistent"), platform="darwin", run=_recorded(files), home=None))
    assert m.metrics == {"firewall_on": True, "disk_encrypted": False}


def test_this_machine_through_the_cli(cli, tmp_path: Path) -> None:
    r = cli("run", "--check", "security", "--json", "-o", str(tmp_path), "--no-open")
    rec = json.loads(r.stdout)["checks"]["security"]
    assert rec["status"] == "ok", rec["error"]
    # whatever this machine is, a fact is either told or listed as not told
    told = set(rec["metrics"])
    not_told = {f["code"] for f in rec["details"]["findings"]}
    assert {"firewall_on" in told, "firewall_not_told" in not_told} == {True, False}
    assert {"disk_encrypted" in told, "encryption_not_told" in not_told} == {True, False}
