"""Versions compared as versions; version-bound requirements (min_version) loaded strictly and
judged through the CLI; the [support] contact carried by a profile into every report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from readiness.versions import compare, newest, version_key


@pytest.mark.parametrize("a, b, want", [
    ("10.2", "9.14", 1),                        # text comparison would say older
    ("24.1", "24.1.0", 0),
    ("128.0esr", "128.0", 0),                   # a suffix is not part of the number
    ("1:128.5.1esr-1~deb12u1", "128.5.1", 0),   # a Debian epoch orders packages, not vendor versions
    ("5.17.11 (34827)", "6.0", -1),
    ("24295.605.3225.8804", "25031.805.3440.5290", -1),
    ("1.6.00.4472", "1.6.0.4472", 0),
])
def test_compare(a: str, b: str, want: int) -> None:
    assert compare(a, b) == want


def test_not_versions() -> None:
    assert version_key("esr") is None and version_key("") is None and version_key(None) is None
    assert version_key("1" * 70) is None  # longer than any version: a hostile result
    with pytest.raises(ValueError):
        compare("latest", "1.0")
    assert newest(["1.9", "junk", "1.10"]) == "1.10"


PROFILE = """name = "org"
[[requirement]]
metric = "software.firefox_version"
min_version = "{v}"
severity = "required"
label = "Firefox up to date"
why = "Older browsers lack the WebRTC fixes meetings need."
fix = "Update Firefox."
source = "https://www.mozilla.org/firefox/releases/"
[[requirement]]
metric = "software.firefox_installed"
expect = true
severity = "required"
why = "The organisation's browser."
fix = "Install Firefox."
source = "https://www.mozilla.org/firefox/"
[support]
name = "IT service desk"
phone = "+46 8 123 456 00"
email = "it@example.org"
web = "https://it.example.org/help"
hours = "Mon–Fri 8–17"
[support.sv]
name = "IT-servicedesken"
hours = "mån–fre 8–17"
"""


def _result_with(tmp_path: Path, cli, version: str) -> Path:
    """A result the software check really wrote, for a root holding one Firefox snap."""
    root = tmp_path / "root"
    meta = root / "snap" / "firefox" / "1" / "meta"
    meta.mkdir(parents=True)
    (meta / "snap.yaml").write_text(f"name: firefox\nversion: '{version}'\n", encoding="utf-8")
    (root / "snap" / "firefox" / "current").symlink_to("1")
    out = tmp_path / "out"
    r = cli("run", "--check", "software", "-o", str(out), "--no-open", "--quiet", "--set", f"software.root=\"{root}\"")
    assert r.returncode in (0, 1, 3), r.stderr  # 3: partial (only this check ran)
    return next(out.glob("*.json"))


@pytest.mark.parametrize("minimum, verdict, code", [("128.5", "PASS", 0), ("129", "FAIL", 1), ("128.10", "FAIL", 1)])
def test_min_version_judged_through_the_cli(cli, tmp_path: Path, minimum: str, verdict: str, code: int) -> None:
    result = _result_with(tmp_path, cli, "128.5.1esr")
    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE.format(v=minimum), encoding="utf-8")
    r = cli("report", str(result), "--requirements", str(prof), "--json", "-o", str(tmp_path / "r.html"))
    assert r.returncode == code, r.stderr
    j = json.loads(r.stdout[: r.stdout.rindex("}") + 1])
    item = next(i for i in j["items"] if i["requirement"]["metric"] == "software.firefox_version")
    assert item["status"] == verdict and item["value"] == "128.5.1esr"
    assert item["requirement"]["min_version"] == minimum
    assert j["profile"]["support"]["phone"] == "+46 8 123 456 00"


def test_support_is_shown_beside_the_verdict_in_the_report_language(cli, tmp_path: Path) -> None:
    result = _result_with(tmp_path, cli, "100.0")
    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE.format(v="128"), encoding="utf-8")
    for lang, name, hours in (("en", "IT service desk", "Mon–Fri 8–17"), ("sv", "IT-servicedesken", "mån–fre 8–17")):
        html = tmp_path / f"{lang}.html"
        r = cli("report", str(result), "--requirements", str(prof), "--lang", lang, "-o", str(html))
        assert r.returncode == 1, r.stderr
        page = html.read_text(encoding="utf-8")
        banner_end = page.index("</section>", page.index('class="banner'))
        support = page.index('class="support"')
        assert support < banner_end or support - banner_end < 400  # right beside the verdict
        assert name in page and hours in page and 'href="tel:+468123456' in page and 'href="mailto:it@example.org"' in page


@pytest.mark.parametrize("snippet, message", [
    ('min_version = "newest"', "needs min_version"),
    ('min = 128', "is a version: use min_version"),
])
def test_bad_version_requirements_name_file_and_line(cli, tmp_path: Path, snippet: str, message: str) -> None:
    prof = tmp_path / "bad.toml"
    prof.write_text(PROFILE.format(v="1").replace('min_version = "1"', snippet), encoding="utf-8")
    r = cli("run", "--requirements", str(prof), "--check", "software", "-o", str(tmp_path), "--no-open")
    assert r.returncode == 2 and message in r.stderr and f"{prof}:4" in r.stderr, r.stderr


@pytest.mark.parametrize("snippet, message", [
    ('[support]\nname = "Desk"\n', "needs at least one way to reach it"),
    ('[support]\nemail = "not an address"\n', "not an e-mail address"),
    ('[support]\nweb = "javascript:alert(1)"\n', "must be an http:// or https:// address"),
    ('[support]\nfax = "1"\nphone = "1"\n', "unknown key 'fax'"),
    ('[support]\nphone = "1"\nhours = "' + "x" * 501 + '"\n', "at most 500"),
])
def test_bad_support_tables_are_refused(cli, tmp_path: Path, snippet: str, message: str) -> None:
    prof = tmp_path / "bad.toml"
    prof.write_text('name = "x"\n' + snippet, encoding="utf-8")
    r = cli("run", "--requirements", str(prof), "--check", "software", "-o", str(tmp_path), "--no-open")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_support_in_the_terminal_summary(cli, tmp_path: Path) -> None:
    result = _result_with(tmp_path, cli, "100.0")
    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE.format(v="128"), encoding="utf-8")
    r = cli("report", str(result), "--requirements", str(prof), "--lang", "sv", "-o", str(tmp_path / "r.html"))
    assert r.returncode == 1
    assert ("Inte redo? Kontakta IT-servicedesken: +46 8 123 456 00, it@example.org, https://it.example.org/help "
            "(mån–fre 8–17)") in r.stdout


def test_support_travels_in_results_to_the_fleet(cli, tmp_path: Path) -> None:
    """A run judged by a list with [support] stores the contact; the border reads it back and the
    fleet report shows it, without judging again."""
    from conftest import validate_result

    prof = tmp_path / "org.toml"
    prof.write_text(PROFILE.format(v="1"), encoding="utf-8")
    out = tmp_path / "share"
    r = cli("run", "--requirements", str(prof), "--check", "software", "-o", str(out), "--no-open", "--quiet",
            "--site", "Stockholm")
    assert r.returncode in (0, 1), r.stderr
    doc = validate_result(next(out.glob("*.json")))
    assert doc["profile"]["support"]["sv"] == {"name": "IT-servicedesken", "hours": "mån–fre 8–17"}
    agg = cli("aggregate", str(out), "-o", str(tmp_path / "fleet.html"), "--json", "-")
    assert agg.returncode == 0, agg.stderr
    contacts = json.loads(agg.stdout)["step5"]["sections"]["support"]["contacts"]
    assert contacts[0]["phone"] == "+46 8 123 456 00" and contacts[0]["sv"]["name"] == "IT-servicedesken"
