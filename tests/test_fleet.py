"""The fleet report (``readiness aggregate``) on real result files written to disk.

A small fleet with known verdicts is written through the project's own result model and
judge; the CSV and JSON must hold exactly the expected counts. Around it: the zoo of bad
input, re-judging with a stricter profile, hostile strings, and the HTML in headless Chromium.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from readiness.fleet import collect, figures, histogram
from readiness.fleet.page import fleet_csv, fleet_csv_ahead, render_html
from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from readiness.render.report import render_report
from readiness.judge.requirements import load_profile
from readiness.result import CheckRecord, Result, write_atomic, write_result

from support import is_root, need

HOSTILE_HOST = "<script>alert(1)</script>"
HOSTILE_SITE = 'Malmö"><svg onload=alert(2)>'
HOSTILE_LABEL = "=HYPERLINK(\"http://x.invalid\")"

_REQ = """
[[requirement]]
metric = "{metric}"
{bound}
severity = "{severity}"
label = "{label}"
why = "Test requirement."
fix = "Fix {label}."
source = "https://example.invalid/{label}"
"""


def profile_text(name: str, ram_min: int, height_min: int) -> str:
    reqs = [("system.cpu_cores", "min = 2", "required", "Cores"),
            ("system.ram_total_gb", f"min = {ram_min}", "required", "Memory"),
            ("system.wired_network", "expect = true", "recommended", "Wired"),
            ("camera.height_px", f"min = {height_min}", "required", "Picture height")]
    body = "".join(_REQ.format(metric=m, bound=b, severity=s, label=lab) for m, b, s, lab in reqs)
    return f'name = "{name}"\ntitle = "{name} title"\n' + body


# hostname, site, room, label, cores, ram, wired, height (None: camera check failed), days before now,
# verdict under the base profile, verdict under the strict profile (None: an older run, superseded)
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
HOSTS = [
    ("sthlm-ws1", "Stockholm", "", "", 4, 8, True, 1080, 0, "PASS", "PASS"),
    ("sthlm-ws2", "Stockholm", "", "", 1, 8, True, 720, 1, "FAIL", "FAIL"),
    ("sthlm-r1", "Stockholm", "4.12", "", 4, 16, False, 720, 0, "WARN", "FAIL"),
    ("sthlm-r2", "Stockholm", "4.14", "", 4, 4, True, None, 2, "UNKNOWN", "FAIL"),
    ("gbg-r1", "Göteborg", "A", "", 8, 16, True, 1080, 0, "PASS", "PASS"),
    ("gbg-ws1", "Göteborg", "", "", 2, 2, True, 480, 3, "FAIL", "FAIL"),
    ("nosite-ws", "", "", "", 4, 8, True, 720, 0, "PASS", "FAIL"),
    (HOSTILE_HOST, HOSTILE_SITE, "", HOSTILE_LABEL, 4, 8, True, 1080, 0, "PASS", "PASS"),
    # older runs: the same room with an earlier PC, the same host earlier
    ("sthlm-r1", "Stockholm", "4.12", "", 1, 16, False, 720, 10, "FAIL", None),
    ("gbg-old", "Göteborg", "A", "", 2, 2, True, 480, 12, "FAIL", None),
]


def make_result(host: tuple, index: int) -> Result:
    hostname, site, room, label, cores, ram, wired, height, days = host[:9]
    started = NOW - timedelta(days=days, minutes=index)
    iso = started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    system = CheckRecord(name="system", status="ok", started_utc=iso, duration_s=1.0, title="This computer",
                         metrics={"cpu_cores": {"value": cores, "unit": "cores"}, "ram_total_gb": {"value": ram, "unit": "GB"},
                                  "wired_network": {"value": wired, "unit": ""}})
    if height is None:
        camera = CheckRecord(name="camera", status="error", started_utc=iso, duration_s=0.5, title="Camera",
                             error="no camera found")
    else:
        camera = CheckRecord(name="camera", status="ok", started_utc=iso, duration_s=3.0, title="Camera",
                             metrics={"height_px": {"value": height, "unit": "px"}})
    labels = {k: v for k, v in (("site", site), ("room", room), ("label", label)) if v}
    return Result(run_id=f"{index:032x}", started_utc=iso, finished_utc=iso, host={"hostname": hostname},
                  labels=labels, profile={}, checks={"system": system, "camera": camera}, tool_version="0.1.0")


@pytest.fixture(scope="module")
def checks():
    plugins = load_plugins()
    need("camera" in plugins.checks, "the camera check plugin is not installed")
    return plugins


@pytest.fixture
def profiles(tmp_path, checks):
    base, strict = tmp_path / "base.toml", tmp_path / "strict.toml"
    base.write_text(profile_text("fleet-base", 4, 720), encoding="utf-8")
    strict.write_text(profile_text("fleet-strict", 8, 1080), encoding="utf-8")
    return {"base": load_profile(path=base, checks=checks.checks), "strict": load_profile(path=strict, checks=checks.checks),
            "base_path": base, "strict_path": strict}


@pytest.fixture
def fleet_dir(tmp_path, profiles):
    """The known fleet on disk, by site folder, one HTML report beside its result, one duplicate copy."""
    top = tmp_path / "share"
    for i, host in enumerate(HOSTS):
        res = make_result(host, i + 1)
        j = judge(res, profiles["base"])
        res.judgement = j.to_dict()
        assert j.overall == host[9], host
        folder = top / (host[1].replace("/", "_") or "unsorted") / ("old" if host[10] is None else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = write_result(res, folder)
        if host[0] == "sthlm-ws1":
            write_atomic(path.with_suffix(".html"), render_report(res, j))
        if host[0] == "gbg-ws1":  # a second copy of the same run, as when a share is synced twice
            (top / "copies").mkdir()
            (top / "copies" / path.name).write_bytes(path.read_bytes())
    return top


def aggregate(cli, *args):
    # this fleet's runs are of a fixed day (NOW): judged as they were measured, not as silent since
    # (not reporting is tested in test_compliance.py)
    extra = () if "--not-reporting-after" in args else ("--not-reporting-after", "36500d")
    out = cli("aggregate", *args, *extra, timeout=120)
    assert out.returncode == 0, out.stderr
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_known_fleet_counts_in_csv_and_json(cli, tmp_path, fleet_dir):
    out = aggregate(cli, str(fleet_dir), "-o", str(tmp_path / "fleet.html"), "--csv", str(tmp_path / "fleet.csv"),
                    "--json", str(tmp_path / "fleet.json"))
    assert "skipped:" in out.stderr and "a copy of run" in out.stderr
    figs = json.loads((tmp_path / "fleet.json").read_text(encoding="utf-8"))
    assert figs["counts"] == {"total": 8, "ready": 5, "not_ready": 2, "unknown": 1, "not_reporting": 0, "partial": 0, "PASS": 4, "WARN": 1, "FAIL": 2, "UNKNOWN": 1}
    assert figs["inputs"]["results_read"] == 11 and figs["inputs"]["duplicates"] == 1
    assert figs["inputs"]["superseded"] == 2 and figs["inputs"]["skipped"] == 1 and figs["inputs"]["used"] == 8
    sites = {s["site"]: (s["total"], s["ready"], s["not_ready"], s["unknown"]) for s in figs["sites"]}
    assert sites == {"Stockholm": (4, 2, 1, 1), "Göteborg": (2, 1, 1, 0), "": (1, 1, 0, 0), HOSTILE_SITE: (1, 1, 0, 0)}
    rooms = {(s["site"], r["room"]): r["total"] for s in figs["sites"] for r in s["rooms"]}
    assert rooms == {("Stockholm", "4.12"): 1, ("Stockholm", "4.14"): 1, ("Stockholm", ""): 2, ("Göteborg", "A"): 1,
                     ("Göteborg", ""): 1, ("", ""): 1, (HOSTILE_SITE, ""): 1}
    reqs = [(r["metric"], r["FAIL"], r["WARN"], r["UNKNOWN"], r["PASS"]) for r in figs["requirements"]]
    assert reqs == [("camera.height_px", 1, 0, 1, 6), ("system.cpu_cores", 1, 0, 0, 7),
                    ("system.ram_total_gb", 1, 0, 0, 7), ("system.wired_network", 0, 1, 0, 7)]
    assert figs["requirements"][0]["fix"] == "Fix Picture height." and figs["requirements"][0]["profiles"] == ["fleet-base"]
    hist = {h["metric"]: h for h in figs["histograms"]}
    assert set(hist) == {"camera.height_px", "system.cpu_cores", "system.ram_total_gb"}  # not the yes/no metric
    assert hist["camera.height_px"]["n"] == 7 and hist["camera.height_px"]["bounds"] == [{"kind": "min", "value": 720.0, "severity": "required"}]
    assert sum(hist["system.ram_total_gb"]["counts"]) == 8
    # every run read counts on its own day, superseded ones too
    assert figs["trend"]["period"] == "day" and len(figs["trend"]["points"]) >= 3
    assert sum(p["runs"] for p in figs["trend"]["points"]) == figs["inputs"]["results_read"] - figs["inputs"]["duplicates"]

    rows = read_csv(tmp_path / "fleet.csv")
    assert len(rows) == 8
    by_host = {r["hostname"]: r for r in rows}
    expected = {h[0]: h[9] for h in HOSTS if h[10] is not None}
    assert {h: r["overall"] for h, r in by_host.items()} == expected
    assert by_host["sthlm-r1"]["system.cpu_cores"] == "4"  # the latest run of the room, not the older one
    assert by_host["gbg-r1"]["system.cpu_cores"] == "8"  # the room's new PC replaced the old one
    assert by_host["sthlm-r2"]["camera.height_px"] == "" and by_host["sthlm-r2"]["verdict camera.height_px ≥ 720 (required)"] == "UNKNOWN"
    assert by_host["sthlm-r1"]["verdict system.wired_network = yes (recommended)"] == "WARN"
    assert by_host["sthlm-r1"]["system.wired_network"] == "false" and by_host["sthlm-r1"]["ready"] == "true"
    assert by_host["sthlm-ws1"]["report_file"].endswith(".html") and by_host["sthlm-ws2"]["report_file"] == ""
    assert sum(r["ready"] == "true" for r in rows) == 5
    assert by_host[HOSTILE_HOST]["label"] == "'" + HOSTILE_LABEL  # no formula in a spreadsheet


def test_all_runs_keeps_every_run_and_shows_a_trend(cli, tmp_path, fleet_dir):
    aggregate(cli, str(fleet_dir), "--all-runs", "-o", str(tmp_path / "all.html"), "--csv", str(tmp_path / "all.csv"),
              "--json", str(tmp_path / "all.json"))
    figs = json.loads((tmp_path / "all.json").read_text(encoding="utf-8"))
    assert figs["mode"] == "all-runs" and figs["counts"]["total"] == 10 and figs["counts"]["not_ready"] == 4
    assert len(read_csv(tmp_path / "all.csv")) == 10
    tr = figs["trend"]
    assert tr["period"] == "day"
    assert sum(p["runs"] for p in tr["points"]) == 10
    by_day = {p["period"]: (p["ready"], p["not_ready"], p["unknown"]) for p in tr["points"]}
    assert by_day["2026-11-08"] == (0, 1, 0) and by_day["2026-11-10"] == (0, 1, 0)  # the two old runs
    assert by_day["2026-11-20"] == (5, 0, 0)
    assert "Over time" in (tmp_path / "all.html").read_text(encoding="utf-8")


def test_stricter_profile_changes_exactly_the_expected_hosts(cli, tmp_path, fleet_dir, profiles):
    aggregate(cli, str(fleet_dir), "--requirements", str(profiles["strict_path"]), "-o", str(tmp_path / "s.html"),
              "--csv", str(tmp_path / "s.csv"), "--json", str(tmp_path / "s.json"))
    base = {h[0]: h[9] for h in HOSTS if h[10] is not None}
    strict = {h[0]: h[10] for h in HOSTS if h[10] is not None}
    rows = {r["hostname"]: r for r in read_csv(tmp_path / "s.csv")}
    assert {h: r["overall"] for h, r in rows.items()} == strict
    changed = {h for h in base if base[h] != strict[h]}
    assert changed == {"sthlm-r1", "sthlm-r2", "nosite-ws"}
    figs = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert figs["judged_by"]["as"] == "profile" and figs["judged_by"]["name"] == "fleet-strict"
    assert figs["counts"]["ready"] == 3 and figs["counts"]["not_ready"] == 5 and figs["counts"]["unknown"] == 0
    top = figs["requirements"][0]
    assert (top["metric"], top["min"], top["FAIL"], top["UNKNOWN"]) == ("camera.height_px", 1080, 4, 1)
    # and the same in-process, against the loaded profile
    fleet = collect([fleet_dir], profile=profiles["strict"])
    assert {r.hostname: r.overall for r in fleet.runs} == strict


def write_zoo(zoo: Path, good: Path) -> dict[str, str]:
    """Every kind of bad input, and the reason (a substring) each must be skipped with."""
    zoo.mkdir()
    text = good.read_text(encoding="utf-8")
    data = json.loads(text)
    expect: dict[str, str] = {}

    def put(name: str, content: str | bytes, reason: str) -> None:
        p = zoo / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        expect[str(p)] = reason

    put("hello.json", '{"hello": 1}', "not a readiness result")
    put("list.json", "[1, 2, 3]", "not a readiness result")
    put("truncated.json", text[: len(text) // 2], "not valid JSON")
    put("binary.json", b"\x00\xff\xfe garbage", "not valid JSON")
    put("empty.json", b"", "not valid JSON")
    put("newer.json", json.dumps(data | {"schema_version": 99, "run_id": "f" * 32}), "newer readiness")
    put("noversion.json", json.dumps({k: v for k, v in data.items() if k != "schema_version"}), "no schema_version")
    put("nochecks.json", json.dumps({k: v for k, v in data.items() if k != "checks"} | {"run_id": "e" * 32}), "malformed result")
    put("badjudgement.json", json.dumps(data | {"run_id": "d" * 32, "judgement": {"items": []}}), "malformed judgement")
    put("nojudgement.json", json.dumps(data | {"run_id": "c" * 32, "judgement": None}), "holds no judgement")
    put("copy.json", text, "a copy of run")
    (zoo / "empty-folder").mkdir()
    expect[str(zoo / "empty-folder")] = "empty folder"
    os.symlink(zoo / "nowhere.json", zoo / "dangling.json")
    expect[str(zoo / "dangling.json")] = "broken link"
    os.mkfifo(zoo / "pipe.json")  # opening it would block forever: must never be opened
    expect[str(zoo / "pipe.json")] = "not a regular file"
    os.symlink(zoo, zoo / "loop.json")
    expect[str(zoo / "loop.json")] = "link to a folder"
    (zoo / "notes.txt").write_text("not a result, not .json: left alone", encoding="utf-8")
    if not is_root():  # root reads anything; the broken link and the FIFO cover unreadable entries then
        secret = zoo / "secret.json"
        secret.write_text(text, encoding="utf-8")
        secret.chmod(0)
        expect[str(secret)] = "cannot read"
    return expect


def test_malformed_input_zoo_is_skipped_listed_and_stops_nothing(cli, tmp_path, fleet_dir):
    good = next((fleet_dir / "Stockholm").glob("*.json"))
    expect = write_zoo(tmp_path / "zoo", good)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    expect[str(empty)] = "holds no result files"
    missing = tmp_path / "missing"
    expect[str(missing)] = "No such file"
    out = aggregate(cli, str(good), str(tmp_path / "zoo"), str(empty), str(missing), "-o", str(tmp_path / "z.html"),
                    "--json", str(tmp_path / "z.json"))
    figs = json.loads((tmp_path / "z.json").read_text(encoding="utf-8"))
    got = {s["path"]: s["reason"] for s in figs["skipped"]}
    assert set(got) == set(expect), set(got) ^ set(expect)
    for path, reason in expect.items():
        assert reason in got[path], (path, got[path])
        assert f"skipped: {path}: " in out.stderr
    assert figs["counts"]["total"] == 1 and figs["inputs"]["skipped"] == len(expect)
    assert figs["inputs"]["other_files_ignored"] == 1
    html = (tmp_path / "z.html").read_text(encoding="utf-8")
    assert "truncated.json" in html and "not valid JSON" in html
    assert f"skipped {len(expect)} files" in out.stdout


def test_skip_reasons_are_said_in_the_reports_language(cli, tmp_path, fleet_dir):
    """`aggregate --lang sv` gives each reason it has words for in Swedish (the border's detail of
    a refused file stays as the border said it, framed); the terminal keeps the English line.
    Worker processes hand the reason on with its code."""
    good = next((fleet_dir / "Stockholm").glob("*.json"))
    zoo = tmp_path / "zoo"
    write_zoo(zoo, good)
    out = aggregate(cli, str(good), str(zoo), "--lang", "sv", "-o", str(tmp_path / "z.html"), "--json", str(tmp_path / "z.json"))
    got = {Path(s["path"]).name: s["reason"] for s in json.loads((tmp_path / "z.json").read_text(encoding="utf-8"))["skipped"]}
    assert got["empty-folder"] == "tom mapp"
    assert got["dangling.json"] == "en länk till ingenting (trasig länk)"
    assert got["pipe.json"] == "inte en vanlig fil (en pipe, enhet eller socket); öppnades inte"
    assert got["loop.json"] == "en länk till en mapp; länkar till mappar följs inte"
    assert got["nojudgement.json"].startswith("innehåller ingen bedömning")
    assert got["copy.json"].startswith("en kopia av körning ")
    assert got["badjudgement.json"].startswith("inte ett giltigt resultat: malformed judgement in the result (")
    assert got["hello.json"].startswith("inte ett giltigt resultat: not a readiness result")
    html = (tmp_path / "z.html").read_text(encoding="utf-8")
    assert "en länk till ingenting (trasig länk)" in html and "a link to nothing" not in html
    assert f"skipped: {zoo / 'dangling.json'}: a link to nothing (broken link)" in out.stderr
    from readiness.fleet.files import said

    here, pooled = collect([zoo], workers=1), collect([zoo], workers=2)
    assert [(s.path, said(s.reason, "sv")) for s in here.skipped] == [(s.path, said(s.reason, "sv")) for s in pooled.skipped]
    assert sum(said(s.reason, "sv") != s.reason for s in pooled.skipped) >= 8


def test_only_bad_input_still_writes_a_report(cli, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.json").write_text("{", encoding="utf-8")
    out = cli("aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "f.html"), "--csv", str(tmp_path / "f.csv"))
    assert out.returncode == 2 and "no readable results were found" in out.stderr
    assert "Traceback" not in out.stderr
    # the report is still written, and says so
    assert "No readable results were found" in (tmp_path / "f.html").read_text(encoding="utf-8")
    assert read_csv(tmp_path / "f.csv") == []


def test_hostile_strings_are_escaped_and_host_reports_linked(tmp_path, fleet_dir):
    fleet = collect([fleet_dir])
    out = tmp_path / "report" / "fleet.html"
    out.parent.mkdir()
    html = render_html(fleet, figures(fleet), out)
    assert "<script>alert(1)</script>" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;svg onload=alert(2)&gt;" in html
    linked = next((fleet_dir / "Stockholm").glob("*.html"))
    assert f'href="../share/Stockholm/{linked.name}"' in html
    # only the host whose report sits beside its result (the other links are the requirements' sources)
    assert html.count('<a href="../') == 1 and html.count("<a href=") == 1 + html.count('<a href="https://example.invalid/')


def test_swedish_report(tmp_path, fleet_dir):
    fleet = collect([fleet_dir])
    html = render_html(fleet, figures(fleet, "sv"), tmp_path / "f.html", lang="sv")
    assert "Videomöten: alla datorer och rum" in html and "inte redo" in html and "Fix Picture height." in html
    assert "Beredskap" not in html  # reads as crisis preparedness


def test_fleet_catalog_keys_exist_in_every_language():
    import tomllib
    from importlib import resources

    from readiness.i18n.format import languages

    keys = {lang: {k for k in tomllib.loads(resources.files("readiness.i18n").joinpath(f"{lang}.toml").read_text(encoding="utf-8"))
                   if k.startswith("fleet_")} for lang in languages()}
    assert keys["en"] and all(keys[lang] == keys["en"] for lang in languages())


def test_big_fleet_html_stays_bounded(tmp_path, profiles):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(60):
        res = make_result((f"pc{i:03d}", "Umeå", "", "", 1 + i % 4, 2 + i % 9, True, 480 + 40 * (i % 10), 0), i + 1)
        res.judgement = judge(res, profiles["base"]).to_dict()
        write_result(res, folder)
    fleet = collect([folder])
    assert len(fleet.runs) == 60
    html = render_html(fleet, figures(fleet), tmp_path / "f.html", max_rows=10)
    assert html.count("<tr>\n    <td>Umeå</td>") == 10 and "50 more rows are in the CSV file" in html
    (tmp_path / "f.csv").write_bytes(fleet_csv(fleet))
    assert len(read_csv(tmp_path / "f.csv")) == 60


def test_csv_made_in_a_forked_process_is_the_same_and_a_failure_there_is_said_here(fleet_dir):
    fleet = collect([fleet_dir])
    assert fleet_csv_ahead(fleet)() == fleet_csv(fleet)
    # a run the CSV cannot be made of: the child fails in silence, the parent makes it again and raises
    fleet.runs[0].started = None
    made = fleet_csv_ahead(fleet)
    with pytest.raises(AttributeError):
        made()



def test_a_forked_csv_that_never_answers_is_made_here_in_bounded_time(fleet_dir, monkeypatch):
    """A child stuck for ever (a lock held by another thread at the fork) does not hang aggregate."""
    import time

    from readiness.fleet import page

    fleet = collect([fleet_dir])
    monkeypatch.setattr(page, "_csv_child", lambda _fleet, _send: time.sleep(3600))
    monkeypatch.setattr(page, "CSV_CHILD_WAIT_S", 1.0)
    started = time.monotonic()
    assert page.fleet_csv_ahead(fleet)() == fleet_csv(fleet)
    assert time.monotonic() - started < 60  # given up after its wait, not after the child's hour


def test_histogram_bins_cover_the_bound_and_count_outliers():
    h = histogram([float(v) for v in range(1, 101)] + [10_000.0], [150.0])
    assert h["scale"] == "linear" and sum(h["counts"]) == 101 and h["above"] == 1
    assert h["edges"][0] <= 1 and h["edges"][-1] >= 150 and len(h["edges"]) == len(h["counts"]) + 1
    small = histogram([480, 720, 720, 1080], [720.0])
    assert sum(small["counts"]) == 4 and small["n"] == 4 and small["median"] == 720
    (i,) = [i for i in range(len(small["counts"])) if small["edges"][i] <= 720 < small["edges"][i + 1]]
    assert small["counts"][i] == 2
    # bandwidth: 0.5 to 900 Mbit/s with a bound of 1.2: logarithmic bins, the bound inside the range
    bw = histogram([0.5, 0.8, 2, 5, 20, 50, 100, 300, 900], [1.2])
    assert bw["scale"] == "log" and sum(bw["counts"]) == 9 and bw["above"] == 0
    assert bw["edges"][0] <= 0.5 and bw["edges"][-1] >= 900
    below = sum(c for c, hi in zip(bw["counts"], bw["edges"][1:]) if hi <= 1.2)
    assert below == 2  # 0.5 and 0.8 fall in bins that end at or below the bound


def test_fleet_report_renders_in_chromium_without_any_request(cli, tmp_path, fleet_dir):
    from browser import chromium_path, load_page

    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    out = tmp_path / "fleet.html"
    aggregate(cli, str(fleet_dir), "--all-runs", "-o", str(out))
    page = load_page(out)
    assert page.loaded and page.title.startswith("Video meetings: every computer and room")
    assert page.other_requests == [] and page.errors == [] and page.dialogs == []
    assert page.scripts == 0
    assert HOSTILE_HOST in page.text and HOSTILE_SITE in page.text  # shown as text
    assert "<svg" in page.dom and "Over time" in page.text


def test_browser_helper_does_see_a_request(tmp_path):
    """The proof above means something only if a page that loads something is caught."""
    from browser import chromium_path, load_page

    need(chromium_path() is not None, "chromium is not installed (tests/run.sh installs it)")
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><title>leak</title><img src="http://192.0.2.1/pixel.png">'
                    '<script>alert("ran")</script>', encoding="utf-8")
    seen = load_page(page)
    assert any("192.0.2.1" in u for u in seen.other_requests), seen.requests
    assert seen.scripts == 1


def test_worker_processes_give_the_same_fleet(fleet_dir, tmp_path):
    """Many files are read in worker processes; what they find must not differ in any way."""
    here, pooled = collect([fleet_dir], workers=1), collect([fleet_dir], workers=2)
    assert [(r.run_id, r.overall, r.statuses, r.values) for r in here.runs] == \
           [(r.run_id, r.overall, r.statuses, r.values) for r in pooled.runs]
    assert [(s.path, s.reason) for s in here.skipped] == [(s.path, s.reason) for s in pooled.skipped]
    assert [r.to_dict() for r in here.requirements] == [r.to_dict() for r in pooled.requirements]
    assert figures(here)["requirements"] == figures(pooled)["requirements"]


def test_a_dying_worker_loses_nothing_and_hangs_nothing(fleet_dir, monkeypatch, tmp_path):
    """A worker killed mid-way (out of memory, say): the files it had are read here instead."""
    import sys

    fleet_module = sys.modules["readiness.fleet.read"]  # where each file is read and judged

    need(sys.platform.startswith("linux"), "the workers are forked (and so inherit the patch) on Linux")
    parent = os.getpid()
    real_read, real_stat = fleet_module.read_result, fleet_module.read_regular_stat
    died = tmp_path / "died"

    def dying(real):
        def read(path, *args):
            if os.getpid() != parent and "gbg-ws1" in os.path.basename(path):
                died.write_text(path)  # it got this far: the pool had started and read files
                os._exit(3)  # the worker dies without a word, as under the OOM killer
            return real(path, *args)
        return read

    readers_here = []
    reader_init = fleet_module._Reader.__init__

    def counted_init(self, *args, **kwargs):
        if os.getpid() == parent:
            readers_here.append(args)
        reader_init(self, *args, **kwargs)

    # every file passes one of these: the one typed decode's read, or the border's usual path
    monkeypatch.setattr(fleet_module, "read_result", dying(real_read))
    monkeypatch.setattr(fleet_module, "read_regular_stat", dying(real_stat))
    monkeypatch.setattr(fleet_module._Reader, "__init__", counted_init)
    here = collect([fleet_dir], workers=1)
    readers_here.clear()
    pooled = collect([fleet_dir], workers=2)
    assert died.exists()  # a worker did die mid-way, not the pool at its start
    assert len(readers_here) == 1  # the pool broke and the rest was read in this process
    assert [(r.run_id, r.overall) for r in pooled.runs] == [(r.run_id, r.overall) for r in here.runs]
    assert pooled.results_read == here.results_read == 11 and pooled.duplicates == 1


def test_a_result_dated_ahead_of_its_file_never_freezes_its_room(cli, tmp_path):
    """A computer whose clock says 2099 (a dead clock battery) wrote a passing result; the same
    room's later run fails. The 2099 file is compared with its modification time and skipped
    with a reason in the report's language; the room shows the failure."""
    import collector_docs as docs

    share = tmp_path / "share"
    future = docs.document(room="4.12", hostname="mr1", age=-(datetime(2099, 1, 1, tzinfo=timezone.utc) - docs.NOW))
    failing = docs.document(room="4.12", hostname="mr1", ram=2)
    ahead, now = docs.write(future, share), docs.write(failing, share)
    slightly = docs.write(docs.document(room="5.01", hostname="mr2", age=-timedelta(minutes=5)), share)  # within tolerance
    out = aggregate(cli, str(share), "--lang", "sv", "-o", str(tmp_path / "f.html"), "--json", str(tmp_path / "f.json"))
    figs = json.loads((tmp_path / "f.json").read_text(encoding="utf-8"))
    assert figs["counts"]["total"] == 2 and figs["counts"]["not_ready"] == 1 and figs["counts"]["ready"] == 1
    skipped = {Path(s["path"]).name: s["reason"] for s in figs["skipped"]}
    assert list(skipped) == [ahead.name] and now.name not in skipped and slightly.name not in skipped
    assert skipped[ahead.name].startswith("börjar 2099-01-01T") and "klocka går före" in skipped[ahead.name]
    assert f"skipped: {ahead}: starts at 2099-01-01T" in out.stderr and "clock is ahead" in out.stderr
    # the same from worker processes (the reason travels with its code)
    pooled = collect([share], workers=2)
    assert [(Path(s.path).name, s.reason.code) for s in pooled.skipped] == [(ahead.name, "clock_ahead")]
    assert [r.run_id for r in pooled.runs if r.room == "4.12"] == [failing["run_id"]]


def test_the_one_decode_reader_gives_the_same_fleet_as_the_border(fleet_dir, tmp_path, monkeypatch):
    """A clean file with a stored judgement is read in one typed decode (``onepass.clean_struct``),
    its record built without a Result; everything else the usual way. Over the known fleet, the
    zoo of bad input and a result with keys the closed types leave to the usual path, the fleet,
    its figures and its CSV must not differ in any way from the fleet read through the border
    alone; and the one decode must have read most files."""
    from readiness.fleet import read as reader

    good = next((fleet_dir / "Stockholm").glob("*.json"))
    write_zoo(fleet_dir / "zoo", good)
    data = json.loads(good.read_text(encoding="utf-8"))
    data["run_id"] = "a" * 32
    data["judgement"]["items"][0]["note"] = {"free": [1, 2]}  # open in the schema: the usual path
    (fleet_dir / "open.json").write_text(json.dumps(data), encoding="utf-8")
    fast_reads = []
    one_decode = reader._Reader._fast

    def counted(self, path):
        record = one_decode(self, path)
        fast_reads.append(record is not None)
        return record

    monkeypatch.setattr(reader._Reader, "_fast", counted)
    fast = collect([fleet_dir], workers=1)
    monkeypatch.setattr(reader._Reader, "_fast", lambda self, path: None)
    usual = collect([fleet_dir], workers=1)
    assert sum(fast_reads) >= len(HOSTS) and not all(fast_reads), fast_reads
    assert "a" * 32 in {r.run_id for r in usual.runs} | {src[2] for r in usual.runs for src in r.sources.values()}
    assert fast.runs == usual.runs
    assert [r.to_dict() for r in fast.requirements] == [r.to_dict() for r in usual.requirements]
    assert (fast.units, fast.requirement_profiles, fast.per_day, fast.room_days) == \
           (usual.units, usual.requirement_profiles, usual.per_day, usual.room_days)
    assert [(s.path, s.reason) for s in fast.skipped] == [(s.path, s.reason) for s in usual.skipped]
    strip = lambda figs: {k: v for k, v in figs.items() if k != "generated_utc"}  # noqa: E731
    assert strip(figures(fast)) == strip(figures(usual))
    assert fleet_csv(fast) == fleet_csv(usual)


def test_packed_records_from_workers_give_the_same_fleet(fleet_dir, monkeypatch):
    """A worker sends each judged run packed (its verdicts and values by shape, each shape sent
    once, then by id) and the parent unpacks it; a run the packed form cannot carry (here: a
    verdict it is told it has no letter for) comes as a Run record in the same stream, and a
    worker past its shape limit sends the shapes inline. Over the known fleet, the zoo of bad
    input and a duplicate copy, the fleet must not differ in any way from Run records alone."""
    from readiness.fleet import read as reader
    from readiness.fleet.collect import collect_records
    from readiness.fleet.files import iter_result_files

    good = next((fleet_dir / "Stockholm").glob("*.json"))
    write_zoo(fleet_dir / "zoo", good)
    files = list(iter_result_files([str(fleet_dir)], lambda path, reason: None, lambda: None))

    def read_all(one_reader):  # as a worker does: one reader for all its files
        return [one_reader(path) for path in files]

    def fleet_of(records):
        return collect_records(records)

    def same(a, b):
        assert a.runs == b.runs
        assert [r.to_dict() for r in a.requirements] == [r.to_dict() for r in b.requirements]
        assert (a.units, a.requirement_profiles, a.per_day, a.room_days, a.room_labels) == \
               (b.units, b.requirement_profiles, b.per_day, b.room_days, b.room_labels)
        assert (a.results_read, a.duplicates, a.superseded) == (b.results_read, b.duplicates, b.superseded)
        assert [(s.path, s.reason) for s in a.skipped] == [(s.path, s.reason) for s in b.skipped]
        assert fleet_csv(a) == fleet_csv(b)

    plain = read_all(reader._Reader(None))
    packed = read_all(reader._Reader(None, packed=True))
    assert {r[0] for r in plain} == {"run", "skip"} and {r[0] for r in packed} == {"packed", "skip"}
    assert any(type(r[13]) is int for r in packed if r[0] == "packed")  # a shape sent before: by its id
    base = fleet_of(plain)
    assert base.duplicates >= 1 and len(base.runs) >= 8 and base.skipped
    same(fleet_of(packed), base)
    # each run a row: every packed run unpacked (gather keys a Run record's verdicts anew: read again)
    every = collect_records(read_all(reader._Reader(None)), all_runs=True)
    assert len(every.runs) > len(base.runs)
    same(collect_records(read_all(reader._Reader(None, packed=True)), all_runs=True), every)
    # a verdict without a letter: that run comes as a Run record among the packed ones
    monkeypatch.setattr(reader, "_STATUS_CODE", {s: s[0] for s in ("PASS", "FAIL", "UNKNOWN")})
    mixed = read_all(reader._Reader(None, packed=True))
    assert {"run", "packed"} <= {r[0] for r in mixed}
    same(fleet_of(mixed), base)
    # past the shape limit, shapes travel inline (no id) and are still the same
    monkeypatch.setattr(reader, "_MAX_SHAPES", 1)
    inline = read_all(reader._Reader(None, packed=True))
    assert sum(type(r[15]) is tuple and r[15][0] is None for r in inline if r[0] == "packed") > 1
    same(fleet_of(inline), base)
    # and a shape longer than the bound is sent whole with each run, a shorter one by its id
    monkeypatch.setattr(reader, "_MAX_SHAPES", 4096)
    monkeypatch.setattr(reader, "_MAX_SHAPE_LENGTH", 5)
    long = read_all(reader._Reader(None, packed=True))
    assert all(type(r[15]) is tuple and r[15][0] is None for r in long if r[0] == "packed" and len(r[16]) > 5)
    assert any(type(r[13]) is int for r in long if r[0] == "packed" and len(r[14]) <= 5)  # the few verdicts
    same(fleet_of(long), base)
    monkeypatch.undo()
    # and from two worker processes, sending packed records (shapes told apart by worker)
    same(collect([fleet_dir], workers=2), collect([fleet_dir], workers=1))
