"""The command line end to end, as a subprocess: exit codes, files written, messages, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FIXTURE_PROFILES, validate_result

FIXTURE = str(FIXTURE_PROFILES / "fixture.toml")


def test_run_system_writes_schema_valid_json_and_html(cli, tmp_path):
    out = cli("run", "--check", "system", "--no-open", "-o", str(tmp_path / "out"), "--site", "Stockholm", "--room", "4.12")
    assert out.returncode in (1, 3), out.stderr  # partial: never ready (0)
    files = sorted(p.suffix for p in (tmp_path / "out").iterdir())
    assert files == [".html", ".json"]
    doc = validate_result(next((tmp_path / "out").glob("*.json")))
    assert doc["labels"] == {"site": "Stockholm", "room": "4.12"}
    assert list(doc["checks"]) == ["system"] and doc["checks"]["system"]["status"] == "ok"
    assert doc["profile"]["name"] == "video-call" and len(doc["profile"]["sha256"]) == 64
    assert {i["requirement"]["metric"].split(".")[0] for i in doc["judgement"]["items"]} == {"system"}
    assert "system: started" in out.stderr and "system: measured (" in out.stderr  # progress on stderr
    assert "Result: " in out.stdout and "Report: " in out.stdout
    assert doc["judgement"]["ready"] is False and doc["coverage"]["ran"] == ["system"]
    assert out.returncode == (3 if doc["judgement"]["verdict"] == "PARTIAL" else 1)


def test_exit_codes_follow_the_verdict(plugin_cli, tmp_path):
    base = ("run", "--requirements", FIXTURE, "--no-open", "-o", str(tmp_path))
    ok = plugin_cli(*base)
    assert ok.returncode == 0 and ok.stdout.startswith("READY for video meetings"), ok.stdout + ok.stderr
    warn = plugin_cli(*base, "--set", "fixture_fast.flag=false")
    assert warn.returncode == 0 and warn.stdout.startswith("READY, with advice")
    assert "WARN" in warn.stdout and "→ set the flag" in warn.stdout
    bad = plugin_cli(*base, "--set", "fixture_fast.value=12")
    assert bad.returncode == 1 and bad.stdout.startswith("NOT READY")
    assert "FAIL      fixture_fast.value_ms: 12 ms — needs ≤ 10 ms" in bad.stdout
    assert "→ make it smaller" in bad.stdout


def test_json_flag_prints_the_saved_result(plugin_cli, tmp_path):
    out = plugin_cli("run", "--requirements", FIXTURE, "--no-open", "-o", str(tmp_path), "--json", "--quiet")
    assert out.returncode == 0
    printed = validate_result(out.stdout)
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert printed == saved
    assert out.stderr == ""  # --quiet: no progress


def test_report_judges_a_saved_result_again(plugin_cli, tmp_path):
    plugin_cli("run", "--requirements", FIXTURE, "--no-open", "-o", str(tmp_path), "--quiet")
    result = next(tmp_path.glob("*.json"))
    stored = plugin_cli("report", str(result), "--json")
    assert stored.returncode == 0 and json.loads(stored.stdout)["overall"] == "PASS"
    strict = tmp_path / "strict.toml"
    strict.write_text(open(FIXTURE).read().replace("max = 10", "max = 5"))
    out_html = tmp_path / "strict.html"
    again = plugin_cli("report", str(result), "--requirements", str(strict), "-o", str(out_html))
    assert again.returncode == 1
    assert "NOT READY" in again.stdout and "7 ms — needs ≤ 5 ms" in again.stdout
    assert 'class="banner FAIL"' in out_html.read_text()
    assert json.loads(result.read_text())["judgement"]["overall"] == "PASS"  # the saved result is untouched


def test_report_refuses_a_bad_file_plainly(cli, tmp_path):
    bad = tmp_path / "half.json"
    bad.write_text('{"kind": "readiness-result", "sch')
    out = cli("report", str(bad))
    assert out.returncode == 2 and "not valid JSON" in out.stderr and "Traceback" not in out.stderr
    newer = tmp_path / "newer.json"
    newer.write_text('{"kind": "readiness-result", "schema_version": 7}')
    out = cli("report", str(newer))
    assert out.returncode == 2 and "newer readiness" in out.stderr


def test_unwritable_output_folder_is_refused_before_measuring(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = cli("run", "--check", "system", "--no-open", "-o", str(blocker / "results"))
    assert out.returncode == 2
    assert "cannot write results to" in out.stderr and "--output-dir" in out.stderr
    assert "system: started" not in out.stderr and "Traceback" not in out.stderr


def test_usage_mistakes_exit_2(cli, tmp_path):
    for args, words in [
        (("run", "--check", "webcam"), "no check named webcam"),
        (("run", "--set", "system.nosuch=1"), "has no setting 'nosuch'"),
        (("run", "--set", "system"), "is not CHECK.KEY=VALUE"),
        (("run", "--profile", "video-call", "--requirements", "x.toml"), "not both"),
        (("run", "--lang", "de"), "--lang: 'de' is not one of en, sv"),
    ]:
        out = cli(*args, "--no-open", "-o", str(tmp_path))
        assert out.returncode == 2, args
        assert words in out.stderr, (args, out.stderr)


def test_swedish_summary(plugin_cli, tmp_path):
    out = plugin_cli("run", "--requirements", FIXTURE, "--no-open", "-o", str(tmp_path), "--lang", "sv",
                     "--set", "fixture_fast.value=12")
    assert out.stdout.startswith("INTE REDO") and "krav ≤ 10 ms" in out.stdout and "Rapport: " in out.stdout
    assert '<html lang="sv">' in next(tmp_path.glob("*.html")).read_text()


def test_cli_start_imports_no_heavy_module():
    code = ("import sys, readiness.cli; heavy = {'numpy', 'cv2', 'sounddevice', 'jinja2', 'psutil', 'speedtest'};"
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_help_and_version(cli):
    out = cli("--help")
    assert out.returncode == 0 and "readiness run" in out.stdout and "Exit codes" in out.stdout
    assert cli("--version").stdout.startswith("readiness, version ")
    assert "--output-dir" in cli("run", "--help").stdout
