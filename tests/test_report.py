"""The HTML report: self-contained, escaped, in English and Swedish, and it only renders."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from readiness.judge.verdicts import judge
from readiness.render.charts import line_chart
from readiness.i18n.format import catalog
from readiness.render.report import render_report
from readiness.judge.requirements import Profile, Requirement
from readiness.result import CheckRecord, Result

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sample(details=None, label=HOSTILE) -> tuple[Result, object]:
    rec = CheckRecord(name="microphone", title="Microphone", status="ok", started_utc="2026-11-26T10:00:00.000Z",
                      duration_s=2.0, metrics={"level_dbfs": {"value": -48.0, "unit": "dBFS"}},
                      details=details if details is not None else {"device": HOSTILE, "diagnosis": [f"quiet: {HOSTILE}"]})
    res = Result(run_id="c" * 32, started_utc="2026-11-26T10:00:00.000Z", finished_utc="2026-11-26T10:00:03.000Z",
                 host={"hostname": HOSTILE, "os": "Linux"}, labels={"label": label, "room": "4.12", "site": "Göteborg"},
                 profile={"name": "p", "sha256": "0" * 64}, checks={"microphone": rec}, tool_version="0.1.0")
    req = Requirement(metric="microphone.level_dbfs", min=-40, severity="required", label="Microphone level",
                      why="People must hear you.", fix=f"Move closer {HOSTILE}", source="https://example.invalid/src",
                      translations={"sv": {"label": "Mikrofonnivå", "fix": "Flytta närmare"}})
    prof = Profile(name="p", title="P", description="", requirements=[req], check_settings={}, origin="p", sha256="0" * 64)
    return res, judge(res, prof)


def test_hostile_strings_show_as_text_never_as_markup():
    res, j = sample()
    html = render_report(res, j)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 4  # label, host, device, diagnosis, fix


def test_no_external_resource_at_all():
    from html.parser import HTMLParser

    res, j = sample(details={"charts": [{"points": [[0, 1], [1, 2]]}], "snapshot_jpeg_b64": "AAAA", "device": HOSTILE})
    html = render_report(res, j)
    urls: list[str] = []

    class Attrs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            urls.extend(v or "" for k, v in attrs if k in ("src", "href", "action", "xmlns", "srcset", "poster", "data"))

    Attrs().feed(html)
    # the only URLs: the snapshot (inline) and the requirement's source as a link (never loaded)
    assert sorted(urls) == ["data:image/jpeg;base64,AAAA", "https://example.invalid/src"], urls  # the source: in the appendix
    assert '<a href="https://example.invalid/src"' in html
    assert "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html  # and the page forbids loading anything else


def test_verdict_banner_and_fix_advice():
    res, j = sample(label="desk 7")
    html = render_report(res, j)
    assert 'class="banner FAIL"' in html and "Not ready for video meetings" in html
    assert "-48 dBFS" in html and "≥ -40 dBFS" in html
    assert "Move closer" in html


def test_swedish_report_uses_the_swedish_catalog_and_texts():
    res, j = sample(label="skrivbord 7")
    html = render_report(res, j, lang="sv")
    assert '<html lang="sv">' in html and "Inte redo för videomöten" in html
    assert "Mikrofonnivå" in html and "Flytta närmare" in html and "Göteborg" in html
    assert "Not ready" not in html


def _keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in table.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_every_catalog_has_every_english_key():
    en = _keys(tomllib.loads(resources.files("readiness.i18n").joinpath("en.toml").read_text(encoding="utf-8")))
    assert "finding.no_camera_found" in en and "unit.Mbps" in en  # the tables are compared too
    for entry in resources.files("readiness.i18n").iterdir():
        if entry.name.endswith(".toml"):
            keys = _keys(tomllib.loads(entry.read_text(encoding="utf-8")))
            assert en <= keys, f"{entry.name} lacks {sorted(en - keys)}"


def test_every_failure_a_check_names_has_words_in_the_catalog():
    """A check's failure reaches a Swedish reader in Swedish when it carries a finding code with
    catalog words (``CheckError(..., code=...)``, a ``{"code": ..., "args": ...}`` finding, or a
    sound device's failure); a code without them would fall back to the code itself."""
    import re

    from readiness.measure.audio_io import _Device

    root = Path(__file__).resolve().parent.parent
    codes = {c for cs in _Device.CODES.values() for c in cs}
    for path in [*(root / "checks").rglob("*.py"), *(root / "src" / "readiness").rglob("*.py")]:
        for line in path.read_text(encoding="utf-8").splitlines():
            codes.update(re.findall(r'\bcode="([a-z0-9_]+)"', line))
            if '"charts"' not in line:  # a chart's code names its title, not a finding
                for m in re.finditer(r'\{"code": "([a-z0-9_]+)"(?: if \w+ else "([a-z0-9_]+)")?', line):
                    codes.update(c for c in m.groups() if c)
    assert {"services_unreachable", "speedtest_forbidden", "microphone_gone", "udp_own_server_silent"} <= codes
    # and every reason the fleet report gives for a skipped file (``fleet.collect.Why``)
    skips = {c for path in (root / "src/readiness/fleet").glob("*.py")
             for c in re.findall(r'Why\("([a-z0-9_]+)"', path.read_text(encoding="utf-8"))}
    assert {"broken_link", "duplicate", "invalid_result"} <= skips
    # and every progress step a check announces (``ctx.say(..., step="...")``)
    steps = {s for path in (root / "checks").rglob("*.py")
             for s in re.findall(r'\bstep="([a-z0-9_]+)"', path.read_text(encoding="utf-8"))}
    assert {"software_looking", "latency_probing", "bandwidth_download"} <= steps
    for lang in ("en", "sv"):
        table = tomllib.loads(resources.files("readiness.i18n").joinpath(f"{lang}.toml").read_text(encoding="utf-8"))
        assert codes <= set(table["finding"]), f"{lang}.toml has no words for {sorted(codes - set(table['finding']))}"
        assert steps <= set(table["progress"]), f"{lang}.toml has no progress words for {sorted(steps - set(table['progress']))}"
        assert skips <= set(table["skip"]), f"{lang}.toml has no skip words for {sorted(skips - set(table['skip']))}"


def test_chart_and_snapshot_render_inline():
    chart = {"title": "Level", "y_unit": "dBFS", "x_label": "s", "points": [[0, -50], [1, -20], [2, -30]]}
    res, j = sample(details={"charts": [chart], "snapshot_jpeg_b64": "AAAA"})
    html = render_report(res, j)
    assert "<polyline" in html and "<svg" in html
    assert 'src="data:image/jpeg;base64,AAAA"' in html
    g = line_chart(chart)
    xs = [float(p.split(",")[0]) for p in g["points"].split()]
    assert xs == sorted(xs) and xs[0] == g["x0"] and xs[-1] == g["x1"]
    assert line_chart({"points": [[0, 1]]}) is None
    assert line_chart({"points": [["<x>", 1], [1, 2]]}) is None  # only numbers are drawn


def test_every_unit_a_check_declares_has_a_word_in_every_language():
    """A unit with no catalog word is printed as the code's English token ("cores" in a Swedish
    report); every installed check's units must be in every language's [unit] table."""
    from readiness.i18n import languages
    from readiness.plugins import load_plugins
    from readiness.i18n.format import _read

    units = {m.unit for cls in load_plugins().checks.values() for m in cls.metrics if m.unit}
    assert "cores" in units  # the list is really read from the checks
    for lang in languages():
        table = _read(lang).get("unit", {})
        missing = sorted(u for u in units if u not in table)
        assert not missing, f"{lang}.toml [unit] lacks {missing}"
