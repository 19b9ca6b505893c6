"""The software check: installed clients and the OS, for real on Linux (packages installed by the
real dpkg into a temporary root, Snap/Flatpak/.desktop layouts made there), and Windows/macOS
through the same parsers fed with recorded command output (tests/data/software/README.md says
where that output comes from)."""

from __future__ import annotations

import json
import plistlib
import shutil
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from readiness.check import CheckContext
from readiness.measure.inventory import Probe, parse_dpkg_status, parse_reg_query
from readiness.measure.os_support import TableError, load_table, parse_table, support_status

from conftest import validate_result
from support import recorded

DATA = Path(__file__).resolve().parent / "data" / "software"
TODAY = datetime.now(timezone.utc).date()


def _ctx(**settings) -> CheckContext:
    from readiness.checks.software import SoftwareCheck

    return CheckContext(settings=SoftwareCheck.default_settings() | settings, options={}, budget_s=30)


def _build_deb(tmp: Path, name: str, version: str) -> Path:
    pkg = tmp / f"build-{name}"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
        f"Description: test package\n test\n", encoding="utf-8")
    (pkg / "usr" / "share" / "doc" / name).mkdir(parents=True)
    (pkg / "usr" / "share" / "doc" / name / "README").write_text("x\n", encoding="utf-8")
    out = tmp / f"{name}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(out)], check=True, capture_output=True)
    return out


def _dpkg_root(root: Path, tmp: Path, packages: dict[str, str]) -> None:
    """Install real .deb packages into ``root`` with the real dpkg."""
    admin = root / "var" / "lib" / "dpkg"
    for sub in ("info", "updates", "triggers"):
        (admin / sub).mkdir(parents=True, exist_ok=True)
    (admin / "status").touch()
    debs = [str(_build_deb(tmp, n, v)) for n, v in packages.items()]
    subprocess.run(["dpkg", f"--root={root}", "--log=/dev/null", "--force-not-root", "--force-script-chrootless",
                    "--force-unsafe-io", "-i", *debs], check=True, capture_output=True)


def _linux_root(tmp_path: Path, os_release: str) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text(os_release, encoding="utf-8")
    # Snap: /snap/<name>/current -> revision, with meta/snap.yaml
    rev = root / "snap" / "firefox" / "5273" / "meta"
    rev.mkdir(parents=True)
    (rev / "snap.yaml").write_text("name: firefox\nversion: '133.0.3-1'\nsummary: Mozilla Firefox\n", encoding="utf-8")
    (root / "snap" / "firefox" / "current").symlink_to("5273")
    # Flatpak: app/<id>/current -> x86_64/stable, whose active -> the deployed commit
    dep = root / "var" / "lib" / "flatpak" / "app" / "us.zoom.Zoom" / "x86_64" / "stable"
    commit = dep / "0a1b2c3d" / "files" / "share" / "metainfo"
    commit.mkdir(parents=True)
    (commit / "us.zoom.Zoom.metainfo.xml").write_text(
        '<?xml version="1.0"?><component type="desktop-application"><id>us.zoom.Zoom</id><releases>'
        '<release version="6.2.11.5069" date="2024-11-20"/><release version="6.2.10.4983" date="2024-11-05"/>'
        '</releases></component>', encoding="utf-8")
    (dep / "active").symlink_to("0a1b2c3d")
    (root / "var" / "lib" / "flatpak" / "app" / "us.zoom.Zoom" / "current").symlink_to("x86_64/stable")
    # A launcher only (no package): presence without a version
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    (apps / "webex.desktop").write_text("[Desktop Entry]\nType=Application\nName=Webex\nExec=/opt/Webex/bin/CiscoCollabHost\n",
                                        encoding="utf-8")
    (apps / "private-diary.desktop").write_text("[Desktop Entry]\nType=Application\nName=Private Diary\n", encoding="utf-8")
    return root


def _fresh_table(tmp_path: Path, extra: str = "") -> Path:
    """A table taken today, so a test does not turn stale when the shipped table does."""
    shipped = (Path(__file__).resolve().parents[1] / "src" / "readiness" / "data" / "os_support.toml").read_text(encoding="utf-8")
    text = shipped.replace("taken = 2026-11-27", f"taken = {TODAY.isoformat()}") + extra
    path = tmp_path / "table.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs dpkg (Debian)")
def test_linux_clients_and_os_through_the_cli(cli, tmp_path: Path) -> None:
    root = _linux_root(tmp_path, 'NAME="Ubuntu"\nVERSION_ID="20.04"\nID=ubuntu\nPRETTY_NAME="Ubuntu 20.04.6 LTS"\n')
    _dpkg_root(root, tmp_path, {"google-chrome-stable": "131.0.6778.85-1", "firefox-esr": "1:128.5.1esr-1~deb12u1",
                                "accounting-private": "3.1-1"})
    table = _fresh_table(tmp_path)
    out = tmp_path / "out"
    r = cli("run", "--check", "software", "--json", "-o", str(out), "--no-open",
            "--set", f"software.root=\"{root}\"", "--set", f"software.os_support_table=\"{table}\"")
    assert r.returncode in (0, 1, 3), r.stderr  # 3: partial (only this check ran)
    data = validate_result(r.stdout)
    rec = data["checks"]["software"]
    assert rec["status"] == "ok", rec["error"]
    m = {k: v["value"] for k, v in rec["metrics"].items()}
    assert m["chrome_installed"] is True and m["chrome_version"] == "131.0.6778.85-1"
    assert m["firefox_version"] == "133.0.3-1"  # the snap is newer than the ESR package
    assert m["zoom_version"] == "6.2.11.5069"  # from the Flatpak's metainfo, newest release
    assert m["webex_installed"] is True and "webex_version" not in m  # a launcher tells no version
    assert m["teams_installed"] is False and m["edge_installed"] is False
    assert m["os_version"] == "20.04"
    assert m["os_supported"] is False and m["os_support_days_left"] < 0  # standard support ended 2025-05-31
    det = rec["details"]
    assert sorted(c["source"] for c in det["clients"]["firefox"]["copies"]) == ["dpkg", "snap"]
    assert det["os_support"]["entry"]["source"] == "https://ubuntu.com/about/release-cycle"
    assert {"code": "os_support_ended", "args": {"os": "Ubuntu 20.04", "end": "2025-05-31"}} in det["findings"]
    # nothing but the clients looked for is recorded: no other package, launcher, user or file name
    text = json.dumps(data)
    assert "accounting-private" not in text and "Private Diary" not in text and str(root) not in text.replace("\\\\", "\\")


def test_dpkg_status_keeps_installed_packages_only() -> None:
    text = ("Package: zoom\nStatus: deinstall ok config-files\nVersion: 5.0\n\n"
            "Package: firefox\nStatus: install ok installed\nVersion: 128.0esr\nDescription: x\n more\n")
    assert parse_dpkg_status(text, {"zoom", "firefox"}) == {"firefox": "128.0esr"}


def test_nothing_readable_leaves_installed_unknown(tmp_path: Path) -> None:
    from readiness.checks.software import SoftwareCheck

    (tmp_path / "etc").mkdir()
    m = SoftwareCheck().run(_ctx(), probe=Probe(root=tmp_path, home=None))
    assert not any(k.endswith("_installed") for k in m.metrics)
    assert {"code": "no_software_inventory", "args": {"system": "linux"}} in m.details["findings"]
    assert {"code": "os_not_in_support_table", "args": {"os": "Linux"}} in m.details["findings"]


def _recorded(files: dict[str, str]):
    return recorded(DATA, files)


WINDOWS = {"CurrentVersion\\Uninstall": "", "WOW6432Node": "windows-uninstall-wow64.txt",
           "HKCU": "windows-uninstall-hkcu.txt", "Windows NT": "windows-nt-currentversion.txt",
           "Get-AppxPackage": "windows-appx-msteams.json"}


def _windows_probe() -> Probe:
    files = dict(WINDOWS)
    files.pop("CurrentVersion\\Uninstall")
    files = {**files, "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall": "windows-uninstall-hklm.txt"}
    return Probe(root=Path("/nonexistent"), platform="win32", run=_recorded(files), home=None)


def test_windows_registry_and_msix(tmp_path: Path) -> None:
    from readiness.checks.software import SoftwareCheck

    table = _fresh_table(tmp_path)
    m = SoftwareCheck().run(_ctx(os_support_table=str(table)), probe=_windows_probe())
    v = m.metrics
    assert v["teams_version"] == "25031.805.3440.5290"  # newest of two MSIX versions, compared as versions
    assert v["teams_classic_installed"] is True and v["teams_classic_version"] == "1.7.0.3653"
    assert v["zoom_version"] == "6.2.11.52824"  # machine-wide 6.2 beats the per-user 5.17.11 (34827)
    assert v["chrome_version"] == "131.0.6778.86" and v["edge_version"] == "131.0.2903.70"
    assert v["firefox_version"] == "128.5.1" and v["safari_installed"] is False
    os_ = m.details["os"]
    assert (os_["name"], os_["version"], os_["build"], os_["family"]) == ("Windows 11", "24H2", "26100", "consumer")
    assert v["os_version"] == "10.0.26100.2473"
    # Windows 11 24H2 Home/Pro: updates end 2026-10-13
    assert m.details["os_support"]["entry"]["end"] == "2026-10-13"
    assert v["os_supported"] is (TODAY <= date(2026, 10, 13))
    assert "Accounting" not in json.dumps(m.details)


def test_windows_enterprise_gets_its_own_dates(tmp_path: Path) -> None:
    keys = parse_reg_query((DATA / "windows-nt-currentversion.txt").read_text(encoding="utf-8"))
    from readiness.measure.inventory import windows_os

    values = next(iter(keys.values())) | {"EditionID": "Enterprise"}
    status = support_status(windows_os(values), load_table(), date(2027, 1, 1))
    assert status["entry"]["end"] == "2027-10-12" and status["supported"] is True
    ltsc = windows_os(values | {"EditionID": "EnterpriseS", "CurrentBuildNumber": "19044"})
    assert support_status(ltsc, load_table(), date(2026, 12, 1))["entry"]["name"] == "Windows 10 Enterprise LTSC 2021"


def test_macos_app_bundles(tmp_path: Path) -> None:
    from readiness.checks.software import SoftwareCheck

    root = tmp_path / "mac"
    for app, version in (("Microsoft Teams.app", "24295.606.3238.6194"), ("zoom.us.app", "6.2.11 (45484)"),
                         ("Safari.app", "18.1.1")):
        folder = (root / "Applications" / app / "Contents")
        folder.mkdir(parents=True)
        (folder / "Info.plist").write_bytes(plistlib.dumps({"CFBundleShortVersionString": version}, fmt=plistlib.FMT_BINARY))
    core = root / "System" / "Library" / "CoreServices"
    core.mkdir(parents=True)
    (core / "SystemVersion.plist").write_bytes(plistlib.dumps(
        {"ProductName": "macOS", "ProductVersion": "13.7.1", "ProductBuildVersion": "22H221"}))
    table = _fresh_table(tmp_path)
    m = SoftwareCheck().run(_ctx(os_support_table=str(table)), probe=Probe(root=root, platform="darwin", run=lambda c: "", home=None))
    v = m.metrics
    assert v["teams_version"] == "24295.606.3238.6194" and v["zoom_version"] == "6.2.11 (45484)"
    assert v["safari_version"] == "18.1.1" and v["chrome_installed"] is False
    assert v["os_version"] == "13.7.1" and v["os_supported"] is False  # Ventura's updates ended 2025-09-15


def test_stale_table_does_not_judge(tmp_path: Path) -> None:
    table = load_table()
    later = table["taken"].replace(year=table["taken"].year + 2)
    status = support_status({"system": "ubuntu", "version": "20.04"}, table, later)
    assert status["supported"] is None and status["basis"] == "table_stale" and status["table"]["stale"] is True


def test_profile_entries_override_the_table(tmp_path: Path) -> None:
    table = load_table(None, [{"system": "ubuntu", "version": "20.04", "end": date(2030, 4, 30),
                               "source": "https://ubuntu.com/pro", "name": "Ubuntu 20.04 (Ubuntu Pro)"}])
    status = support_status({"system": "ubuntu", "version": "20.04"}, table, table["taken"])
    assert status["supported"] is True and status["entry"]["source"] == "https://ubuntu.com/pro"


def test_bad_tables_are_refused_with_their_place(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="os entry 1: needs the source"):
        parse_table('taken = 2026-01-01\n[[os]]\nsystem = "debian"\nversion = "12"\nend = 2028-06-30\n', "t.toml")
    with pytest.raises(TableError, match="needs taken"):
        parse_table("[[os]]\n", "t.toml")


def test_bad_table_setting_is_a_check_error_not_a_traceback(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("taken = 'yesterday'\n", encoding="utf-8")
    r = cli("run", "--check", "software", "--json", "-o", str(tmp_path / "o"), "--no-open",
            "--set", f"software.os_support_table=\"{bad}\"")
    rec = json.loads(r.stdout)["checks"]["software"]
    assert rec["status"] == "error" and "needs taken" in rec["error"] and "Traceback" not in r.stderr


@pytest.mark.skipif(shutil.which("rpmbuild") is None or shutil.which("rpm") is None, reason="needs rpm and rpmbuild")
def test_rpm_database_in_a_temporary_root(tmp_path: Path) -> None:
    """A Fedora-style root: real packages built by rpmbuild, installed by rpm into /usr/lib/sysimage/rpm."""
    from readiness.measure.inventory import installed_clients

    top, root = tmp_path / "build", tmp_path / "root"
    (top / "SPECS").mkdir(parents=True)
    rpms = []
    for name, version in (("zoom", "6.2.11.5069"), ("microsoft-edge-stable", "131.0.2903.70"), ("private-tool", "1.0")):
        spec = top / "SPECS" / f"{name}.spec"
        spec.write_text(f"Name: {name}\nVersion: {version}\nRelease: 1\nSummary: t\nLicense: MIT\nBuildArch: noarch\n"
                        "%description\nt\n%files\n", encoding="utf-8")
        subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec)], check=True, capture_output=True)
        rpms.append(str(next((top / "RPMS" / "noarch").glob(f"{name}-{version}-*.rpm"))))
    db = ["--root", str(root), "--dbpath", "/usr/lib/sysimage/rpm"]
    subprocess.run(["rpm", *db, "--initdb"], check=True, capture_output=True)
    subprocess.run(["rpm", *db, "--nodeps", "-i", *rpms], check=True, capture_output=True)
    found, sources = installed_clients(Probe(root=root, platform="linux", home=None))
    assert "rpm" in sources
    assert found["zoom"] == [{"version": "6.2.11.5069", "source": "rpm"}]
    assert found["edge"] == [{"version": "131.0.2903.70", "source": "rpm"}]
    assert "private-tool" not in json.dumps(found)


def test_this_machine_through_the_cli(cli, tmp_path: Path) -> None:
    """Whatever this machine is: the OS is named, and its support is told or said why not."""
    r = cli("run", "--check", "software", "--json", "-o", str(tmp_path), "--no-open")
    rec = validate_result(r.stdout)["checks"]["software"]
    assert rec["status"] == "ok", rec["error"]
    det, m = rec["details"], rec["metrics"]
    assert det["os"]["system"] and det["os"]["name"]
    codes = {f["code"] for f in det["findings"]}
    assert ("os_supported" in m) != bool(codes & {"os_support_table_stale", "os_not_in_support_table"})
    if "os_supported" in m and det["os_support"]["basis"] == "end_date":
        end = date.fromisoformat(det["os_support"]["entry"]["end"])
        assert m["os_supported"]["value"] is (TODAY <= end)
