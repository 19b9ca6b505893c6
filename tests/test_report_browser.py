"""Both reports of real runs, opened in headless Chromium in English and Swedish: they render,
a hostile label shows as text, no script runs, the page makes no request at all; screenshots
and A4 prints are kept (``READINESS_ARTIFACTS=DIR`` keeps them after the run) and the prints
are counted: a workstation report fits 3 A4 pages before its appendix, the fleet summary 1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from browser import chromium_path, load_page
from support import need

HOSTILE = "<script>alert(1)</script>"


def keep(path: Path) -> None:
    folder = os.environ.get("READINESS_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def inert(page) -> None:
    assert page.loaded
    assert page.other_requests == [], page.requests  # nothing but the page itself
    assert page.errors == [] and page.console == []
    assert page.dialogs == [] and page.scripts == 0  # a label's <script> is not an element; nothing ran


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One real `readiness run` of every check of the default profile, as a user starts it."""
    from conftest import Cli

    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    out = tmp_path_factory.mktemp("results")
    run = Cli()("run", "--label", HOSTILE, "--site", HOSTILE, "--room", "4.12", "--output-dir", str(out),
                "--quiet", "--no-open", "--no-sound", timeout=180)
    assert run.returncode in (0, 1), run.stderr
    (result,) = out.glob("*.json")
    return result


@pytest.mark.parametrize("lang, title, banner_word", [
    ("en", "Video meeting check", "Not ready"),
    ("sv", "Kontroll inför videomöten", "Inte redo"),
])
def test_workstation_report_in_chromium(cli, tmp_path, full_run, lang, title, banner_word):
    html = tmp_path / f"report-{lang}.html"
    made = cli("report", str(full_run), "--lang", lang, "-o", str(html))
    assert made.returncode in (0, 1), made.stderr
    png, pdf = tmp_path / f"workstation-{lang}.png", tmp_path / f"workstation-{lang}.pdf"
    page = load_page(html, screenshot=png, print_pdf=pdf, hide=".appendix")
    inert(page)
    assert page.title.startswith(title)
    assert page.text.count(HOSTILE) >= 2  # label and site, shown as text
    assert banner_word in page.text
    if lang == "sv":
        assert "Redo för videomöten" not in page.text.split(banner_word)[0]  # no "ready" heading over a red banner
    # printed: the verdict, causes, fixes and requirements on at most 3 A4 pages; the
    # measurements follow as an appendix that can be left out
    assert page.pdf_pages_without is not None and page.pdf_pages_without <= 3, page.pdf_pages_without
    assert page.pdf_pages > page.pdf_pages_without  # the appendix starts on a page of its own
    for f in (png, pdf):
        keep(f)


@pytest.mark.parametrize("lang, title", [("en", "Video meetings: every computer and room"),
                                         ("sv", "Videomöten: alla datorer och rum")])
def test_fleet_report_in_chromium(plugin_cli, tmp_path, lang, title):
    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    from conftest import FIXTURE_PROFILES

    share = tmp_path / "share"
    fixture = str(FIXTURE_PROFILES / "fixture.toml")
    for i, (site, value) in enumerate([("Stockholm", 7), ("Stockholm", 12), (HOSTILE, 3), ("Göteborg", 11)]):
        done = plugin_cli("run", "--requirements", fixture, "--site", site, "--room", f"R{i}", "-o", str(share),
                          "--quiet", "--no-open", "--set", f"fixture_fast.value={value}")
        assert done.returncode in (0, 1), done.stderr
    out = tmp_path / f"fleet-{lang}.html"
    agg = plugin_cli("aggregate", str(share), "-o", str(out), "--lang", lang)
    assert agg.returncode == 0, agg.stderr
    png, pdf = tmp_path / f"fleet-{lang}.png", tmp_path / f"fleet-{lang}.pdf"
    page = load_page(out, screenshot=png, print_pdf=pdf, hide=".fleet-details")
    inert(page)
    assert page.title == title and "Beredskap" not in page.text
    assert HOSTILE in page.text
    assert page.pdf_pages_without == 1  # the summary page
    for f in (png, pdf):
        keep(f)
