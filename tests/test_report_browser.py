"""The workstation report of a real `readiness run`, opened in headless Chromium: it renders,
a hostile label shows as text, no script runs, and the page makes no request at all."""

from __future__ import annotations

from browser import chromium_path, load_page
from support import need

HOSTILE = "<script>alert(1)</script>"


def test_workstation_report_in_chromium_is_inert_and_self_contained(cli, tmp_path):
    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    out = tmp_path / "results"
    run = cli("run", "--check", "system", "--label", HOSTILE, "--site", HOSTILE, "--output-dir", str(out),
              "--quiet", "--no-open", timeout=120)
    assert run.returncode in (1, 3), run.stderr
    (html,) = out.glob("*.html")
    page = load_page(html)
    assert page.loaded and page.title.startswith("Video meeting check")
    assert page.other_requests == [], page.requests  # nothing but the page itself
    assert page.errors == [] and page.console == []
    assert page.dialogs == [] and page.scripts == 0  # the label's <script> is not an element, nothing ran
    assert page.text.count(HOSTILE) >= 2  # label and site, shown as text
    assert "This computer" in page.text
