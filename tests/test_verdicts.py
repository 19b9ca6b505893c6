"""Verdicts a person can trust, through `readiness run / report / aggregate` as a user calls them.

Honest coverage (a partial run is never ready, nothing judged is not ready), root causes
first, tiers on one line, yes/no read positively, numbers for the language, `--server`
checked before measuring, and the small defects: a closed pipe, a console that cannot show
"→", aggregate over nothing. The fixture plugins (tests/fixtures/plugins) give known values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import FIXTURE_PROFILES, validate_result

FIXTURE = str(FIXTURE_PROFILES / "fixture.toml")

# Two areas: the fast fixture and the isolated one (which measures its own pid: always >= 1).
TWO_AREAS = FIXTURE_PROFILES.joinpath("fixture.toml").read_text(encoding="utf-8") + """
[[requirement]]
metric = "fixture_isolated.pid"
min = 1
severity = "required"
why = "fixture"
fix = "run the isolated fixture"
source = "javascript:alert(1)"
"""


def two_areas(tmp_path: Path) -> str:
    path = tmp_path / "two.toml"
    path.write_text(TWO_AREAS, encoding="utf-8")
    return str(path)


def run(plugin_cli, tmp_path: Path, *args: str, out: str = "out", lang: str = "en"):
    return plugin_cli("run", "--no-open", "-o", str(tmp_path / out), "--lang", lang, *args)


# --- honest coverage --------------------------------------------------------------------------


@pytest.mark.parametrize("lang, first, second", [
    ("en", "PARTIAL CHECK — no fault found in what was checked", "Partial check: Fast fixture only — 1 of 2 areas checked"),
    ("sv", "DELVIS KONTROLL — inget fel hittades i det som kontrollerades", "Delvis kontroll: endast Fast fixture — 1 av 2 områden kontrollerade"),
])
def test_partial_run_without_fault_is_partial_never_ready(plugin_cli, tmp_path, lang, first, second):
    done = run(plugin_cli, tmp_path, "--requirements", two_areas(tmp_path), "--check", "fixture_fast", lang=lang)
    assert done.returncode == 3, done.stdout + done.stderr  # partial, no fault: its own exit code
    lines = done.stdout.splitlines()
    assert lines[0].startswith(first) and lines[1].strip() == second
    doc = validate_result(next((tmp_path / "out").glob("*.json")))
    assert doc["coverage"] == {"needed": ["fixture_fast", "fixture_isolated"], "ran": ["fixture_fast"],
                               "measured": ["fixture_fast"]}
    assert doc["judgement"]["verdict"] == "PARTIAL" and doc["judgement"]["ready"] is False
    html = next((tmp_path / "out").glob("*.html")).read_text(encoding="utf-8")
    assert 'class="banner PARTIAL"' in html and second in html
    assert "Ready for video meetings" not in html and "Redo för videomöten" not in html


@pytest.mark.parametrize("lang, first, not_said", [
    ("en", "PARTIAL CHECK — nothing that stops a meeting in what was checked, with advice", "no fault found"),
    ("sv", "DELVIS KONTROLL — inget som hindrar ett möte i det som kontrollerades, med råd", "inget fel hittades"),
])
def test_a_partial_run_with_advice_does_not_say_no_fault_found(plugin_cli, tmp_path, lang, first, not_said):
    """A recommended item missed in a partial run: the verdict line does not say "no fault found"
    above the advice it then gives (terminal and report)."""
    path = tmp_path / "advice.toml"
    path.write_text(TWO_AREAS + """
[[requirement]]
metric = "fixture_fast.value_ms"
max = 5
severity = "recommended"
why = "fixture"
fix = "make it smaller still"
source = "https://example.invalid/fixture"
""", encoding="utf-8")
    done = run(plugin_cli, tmp_path, "--requirements", str(path), "--check", "fixture_fast", lang=lang)
    lines = done.stdout.splitlines()
    assert lines[0].startswith(first), done.stdout
    assert not_said not in done.stdout.lower() and "make it smaller still" in done.stdout
    doc = validate_result(next((tmp_path / "out").glob("*.json")))
    assert doc["judgement"]["verdict"] == "PARTIAL" and doc["judgement"]["ready"] is False
    html = next((tmp_path / "out").glob("*.html")).read_text(encoding="utf-8")
    assert not_said not in html.lower()


def test_partial_run_with_a_fault_is_not_ready(plugin_cli, tmp_path):
    done = run(plugin_cli, tmp_path, "--requirements", two_areas(tmp_path), "--check", "fixture_fast",
               "--set", "fixture_fast.value=12")
    assert done.returncode == 1 and done.stdout.startswith("NOT READY")
    assert "Partial check: Fast fixture only — 1 of 2 areas checked" in done.stdout  # still says what it covered


def test_full_run_is_ready_and_not_partial(plugin_cli, tmp_path):
    done = run(plugin_cli, tmp_path, "--requirements", two_areas(tmp_path))
    assert done.returncode == 0 and done.stdout.startswith("READY for video meetings")
    assert "Partial" not in done.stdout


def test_profile_without_requirements_is_not_ready(plugin_cli, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text('name = "empty"\n[checks.fixture_fast]\n', encoding="utf-8")
    done = run(plugin_cli, tmp_path, "--requirements", str(empty))
    assert done.returncode == 1 and done.stdout.startswith("NOT READY")  # nothing judged is not ready
    path = next((tmp_path / "out").glob("*.json"))
    doc = json.loads(path.read_text())
    assert doc["judgement"]["overall"] == "UNKNOWN" and doc["judgement"]["items"] == []
    # a result 0.1.0 wrote with "PASS" over nothing reads as not ready too
    doc["judgement"].update(overall="PASS", ready=True, verdict="PASS")
    path.write_text(json.dumps(doc), encoding="utf-8")
    again = plugin_cli("report", str(path), "-o", str(tmp_path / "r.html"))
    assert again.returncode == 1 and again.stdout.startswith("NOT READY")


def test_every_check_failing_is_not_ready_with_its_cause_once(plugin_cli, tmp_path):
    prof = tmp_path / "explains.toml"
    prof.write_text("""name = "explains"
[[requirement]]
metric = "fixture_explains.x"
min = 1
severity = "required"
why = "fixture"
fix = "fix the device"
source = "https://example.invalid"
[[requirement]]
metric = "fixture_explains.x"
min = 2
severity = "recommended"
why = "fixture"
fix = "fix the device better"
source = "https://example.invalid"
""", encoding="utf-8")
    done = run(plugin_cli, tmp_path, "--requirements", str(prof))
    assert done.returncode == 1
    # one line for the check that could not measure, its unknown items counted under it
    assert done.stdout.count("no fixture device found") == 1
    assert "(2 requirements unknown)" in done.stdout
    assert "fix the device" not in done.stdout  # the advice for a failure is not advice for "not measured"


def test_old_result_without_coverage_is_read_and_judged(plugin_cli, tmp_path):
    done = run(plugin_cli, tmp_path, "--requirements", FIXTURE)
    path = next((tmp_path / "out").glob("*.json"))
    doc = json.loads(path.read_text())
    del doc["coverage"], doc["judgement"]["coverage"], doc["judgement"]["verdict"]  # as 0.1.0 wrote it
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc), encoding="utf-8")
    validate_result(old)
    stored = plugin_cli("report", str(old), "-o", str(tmp_path / "old.html"))
    assert stored.returncode == done.returncode == 0 and stored.stdout.startswith("READY for video meetings")
    again = plugin_cli("report", str(old), "--requirements", two_areas(tmp_path), "-o", str(tmp_path / "again.html"))
    assert again.returncode == 3 and "1 of 2 areas checked" in again.stdout  # coverage found on judging again


# --- the list: tiers, positive yes/no, numbers for the language, links ------------------------


TIERS = """name = "tiers"
[checks.fixture_fast]
[[requirement]]
metric = "fixture_fast.value_ms"
max = 10
severity = "required"
label = "Delay (10 ms)"
why = "fixture"
fix = "make it smaller"
source = "https://example.invalid/a"
[[requirement]]
metric = "fixture_fast.value_ms"
max = 5
severity = "recommended"
label = "Delay (5 ms)"
why = "fixture"
fix = "make it much smaller"
source = "https://example.invalid/b"
[[requirement]]
metric = "fixture_fast.flag"
expect = false
severity = "recommended"
label = "Flag is off"
why = "fixture"
fix = "make it smaller"
source = "https://example.invalid/c"
"""


@pytest.mark.parametrize("lang, tier_line, flag_line", [
    ("en", "FAIL      Delay: 12.5 ms — needs ≤ 10 ms (required); ≤ 5 ms (recommended)", "WARN      Flag is off: no — needs yes"),
    ("sv", "UNDERKÄND Delay: 12,5 ms — krav ≤ 10 ms (krav); ≤ 5 ms (rekommendation)", "VARNING   Flag is off: nej — krav ja"),
])
def test_tiers_on_one_line_positive_yes_no_and_advice_once(plugin_cli, tmp_path, lang, tier_line, flag_line):
    prof = tmp_path / "tiers.toml"
    prof.write_text(TIERS, encoding="utf-8")
    done = run(plugin_cli, tmp_path, "--requirements", str(prof), "--set", "fixture_fast.value=12.5", lang=lang)
    assert done.returncode == 1
    lines = [ln.strip() for ln in done.stdout.splitlines()]
    assert tier_line in lines and flag_line in lines
    assert lines.index(tier_line) < lines.index(flag_line)  # FAIL before WARN
    assert done.stdout.count("→ make it smaller") == 1  # the same advice for two lines: given once
    html = next((tmp_path / "out").glob("*.html")).read_text(encoding="utf-8")
    assert ("12,5 ms" if lang == "sv" else "12.5 ms") in html


def test_source_urls_are_links_only_when_http(plugin_cli, tmp_path):
    done = run(plugin_cli, tmp_path, "--requirements", two_areas(tmp_path))
    html = next((tmp_path / "out").glob("*.html")).read_text(encoding="utf-8")
    assert '<a href="https://example.invalid/fixture"' in html
    assert 'href="javascript:' not in html and "javascript:alert(1)" in html  # shown, as text
    assert done.returncode == 0


def test_a_bound_edited_in_the_profile_changes_every_word(plugin_cli, tmp_path):
    run(plugin_cli, tmp_path, "--requirements", FIXTURE, "--quiet")  # value 7 ms, bound 10 ms: PASS
    result = next((tmp_path / "out").glob("*.json"))
    strict = tmp_path / "strict.toml"
    strict.write_text(Path(FIXTURE).read_text().replace("max = 10", "max = 7"), encoding="utf-8")
    at_bound = plugin_cli("report", str(result), "--requirements", str(strict), "-o", str(tmp_path / "a.html"))
    assert at_bound.returncode == 0 and "make it smaller" not in at_bound.stdout  # at the bound: nothing said
    stricter = tmp_path / "stricter.toml"
    stricter.write_text(Path(FIXTURE).read_text().replace("max = 10", "max = 6.9"), encoding="utf-8")
    over = plugin_cli("report", str(result), "--requirements", str(stricter), "-o", str(tmp_path / "b.html"))
    assert over.returncode == 1 and "7 ms — needs ≤ 6.9 ms" in over.stdout and "make it smaller" in over.stdout


# --- --server: checked before anything is measured -------------------------------------------


class _Info(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/__info":
            body = json.dumps({"stun_port": 3478}).encode()
            self.send_response(200)
        else:
            body = b"no"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def info_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Info)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("url, words", [
    ("http://", "--server must be a URL like http://host:8080"),
    ("ftp://example.invalid/", "--server must be an http:// or https:// URL"),
    ("http://127.0.0.1:{closed}", "does not answer: nothing listens on port"),
    ("https://{info}", "speaks plain http, not https: use http://127.0.0.1:"),
])
def test_server_is_checked_before_measuring(cli, tmp_path, info_server, url, words):
    url = url.format(closed=_closed_port(), info=info_server)
    done = cli("run", "--check", "system", "--server", url, "--no-open", "-o", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "SSL" not in done.stderr and "Traceback" not in done.stderr
    assert "system: started" not in done.stderr and list((tmp_path / "out").glob("*.json")) == []


def test_a_server_that_answers_info_is_used(cli, tmp_path, info_server):
    done = cli("run", "--check", "system", "--server", f"http://{info_server}", "--no-open", "-o", str(tmp_path))
    assert done.returncode in (1, 3), done.stderr
    assert "system: started" in done.stderr


# --- small defects ------------------------------------------------------------------------------


def test_closed_pipe_is_quiet():
    cmd = f"'{sys.executable}' -m readiness.cli checks | head -1"
    done = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert len(done.stdout.splitlines()) == 1
    assert done.stderr == "", done.stderr  # no "internal error: BrokenPipeError", no "Exception ignored"


def test_console_encoding_never_fails_the_output(plugin_env, tmp_path):
    env = dict(plugin_env, PYTHONIOENCODING="cp1252")  # a Windows console's ANSI code page

    def readiness(*args: str) -> tuple[int, str, str]:
        done = subprocess.run([sys.executable, "-m", "readiness.cli", *args], capture_output=True, env=env,
                              timeout=120, cwd=tmp_path)
        return done.returncode, done.stdout.decode("cp1252"), done.stderr.decode("cp1252")

    code, out, err = readiness("run", "--requirements", FIXTURE, "--no-open", "-o", str(tmp_path / "out"),
                               "--lang", "sv", "--set", "fixture_fast.value=12")
    assert code == 1 and "UnicodeEncodeError" not in err, err
    assert "INTE REDO" in out and "UNDERKÄND" in out  # "Ä" exists in cp1252; "→" and "≤" are replaced, not fatal
    code, out, err = readiness("profiles", "--show", "video-call")
    assert code == 0 and "UnicodeEncodeError" not in err and "Processorkärnor" in out
    code, out, err = readiness("aggregate", str(tmp_path / "out"), "-o", str(tmp_path / "f.html"), "--json", "-")
    assert code == 0 and "UnicodeEncodeError" not in err, err
    assert json.loads(out)["counts"]["total"] == 1


@pytest.mark.parametrize("what", ["missing", "empty"])
def test_aggregate_over_nothing_says_so_and_fails(cli, tmp_path, what):
    folder = tmp_path / "share"
    if what == "empty":
        folder.mkdir()
    done = cli("aggregate", str(folder), "-o", str(tmp_path / "f.html"))
    assert done.returncode == 2 and "no readable results were found" in done.stderr
    assert "Traceback" not in done.stderr


def test_aggregate_creates_a_missing_output_folder(plugin_cli, tmp_path):
    run(plugin_cli, tmp_path, "--requirements", FIXTURE, "--quiet")
    target = tmp_path / "new" / "deeper"
    done = plugin_cli("aggregate", str(tmp_path / "out"), "-o", str(target / "fleet.html"),
                      "--csv", str(target / "fleet.csv"), "--json", str(target / "fleet.json"))
    assert done.returncode == 0, done.stderr
    assert {p.name for p in target.iterdir()} == {"fleet.html", "fleet.csv", "fleet.json"}


def test_output_files_are_created_as_ordinary_files(plugin_cli, tmp_path):
    try:
        import readiness.atomic  # noqa: F401
    except ImportError:
        pytest.skip("the one atomic writer (readiness.atomic, harden's branch) honours the umask; not merged yet")
    old = os.umask(0o022)
    try:
        done = run(plugin_cli, tmp_path, "--requirements", FIXTURE, "--quiet")
    finally:
        os.umask(old)
    assert done.returncode == 0
    modes = {p.suffix: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == {".json": 0o644, ".html": 0o644}  # an analyst's account can read them on a share


# --- the fleet: the latest measurement of each check -----------------------------------------


def _as_other_computer(path: Path, hostname: str, minutes_later: int) -> Path:
    """A copy of a result as another computer in the same room would have written it (the host
    name and time edited: one machine cannot run as two)."""
    from datetime import datetime, timedelta
    import uuid

    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["host"]["hostname"] = hostname
    doc["run_id"] = uuid.uuid4().hex
    t = datetime.fromisoformat(doc["started_utc"].replace("Z", "+00:00")) + timedelta(minutes=minutes_later)
    doc["started_utc"] = doc["finished_utc"] = t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    out = path.with_name(f"{hostname}-{path.name}")
    out.write_text(json.dumps(doc), encoding="utf-8")
    return out


def test_a_later_partial_run_cannot_hide_a_failure(plugin_cli, tmp_path):
    prof = two_areas(tmp_path)
    room = ("--site", "Stockholm", "--room", "4.12", "--quiet")
    full = run(plugin_cli, tmp_path, "--requirements", prof, "--set", "fixture_fast.value=12", *room, out="share")
    assert full.returncode == 1
    (first,) = (tmp_path / "share").glob("*.json")
    # later, someone runs the isolated check alone there: it passes
    later = run(plugin_cli, tmp_path, "--requirements", prof, "--check", "fixture_isolated", *room, out="later")
    assert later.returncode == 3
    (second,) = (tmp_path / "later").glob("*.json")
    moved = _as_other_computer(second, "room-pc-2", 5)  # from another computer in the room, 5 min later
    (tmp_path / "share" / moved.name).write_bytes(moved.read_bytes())
    done = plugin_cli("aggregate", str(tmp_path / "share"), "-o", str(tmp_path / "fleet.html"),
                      "--json", str(tmp_path / "fleet.json"), "--csv", str(tmp_path / "fleet.csv"))
    assert done.returncode == 0, done.stderr
    figs = json.loads((tmp_path / "fleet.json").read_text(encoding="utf-8"))
    assert figs["counts"]["total"] == 1 and figs["counts"]["not_ready"] == 1  # still failing: fixture_fast
    (row,) = figs["rows"]
    assert row["verdict"] == "FAIL" and row["partial"] is False
    first_host = json.loads(first.read_text())["host"]["hostname"]
    assert row["checks"]["fixture_fast"]["hostname"] == first_host
    assert row["checks"]["fixture_isolated"]["hostname"] == "room-pc-2"  # which computer each figure came from
    assert row["oldest_utc"] < row["latest_utc"]
    html = (tmp_path / "fleet.html").read_text(encoding="utf-8")
    assert "room-pc-2" in html and first_host in html
    import csv

    with open(tmp_path / "fleet.csv", encoding="utf-8-sig", newline="") as fh:
        (line,) = list(csv.DictReader(fh))
    assert line["verdict"] == "FAIL" and line["checks_counted"] == "fixture_fast fixture_isolated"


def test_a_room_never_fully_checked_is_partial_not_ready(plugin_cli, tmp_path):
    room = ("--site", "Malmö", "--room", "B", "--quiet")
    done = run(plugin_cli, tmp_path, "--requirements", two_areas(tmp_path), "--check", "fixture_fast", *room,
               out="share")
    assert done.returncode == 3
    agg = plugin_cli("aggregate", str(tmp_path / "share"), "-o", str(tmp_path / "f.html"), "--json", "-")
    figs = json.loads(agg.stdout)
    (row,) = figs["rows"]
    assert row["verdict"] == "PARTIAL" and row["missing_checks"] == ["fixture_isolated"]
    assert figs["counts"]["ready"] == 0 and figs["counts"]["unknown"] == 1 and figs["counts"]["partial"] == 1
    assert "not checked" in (tmp_path / "f.html").read_text(encoding="utf-8")


# --- root causes first: the offline, device-less summary --------------------------------------


def test_offline_device_less_summary_fits_one_screen(tmp_path):
    """The whole default profile in a network namespace with no route out (and no sound server
    to reach): every network check fails for one reason, the devices are missing. Each cause
    is one line with its own advice, the requirements it leaves unknown counted under it."""
    import shutil

    import netns
    from support import need

    ok, why = netns.available()
    need(ok, why)
    exe = shutil.which("readiness")
    need(exe is not None, "the readiness console script is not installed (pip install -e .)")
    env = dict(os.environ, PULSE_SERVER="unix:/nonexistent/pulse", PYTHONIOENCODING="utf-8")
    with netns.Link() as lk:
        done = subprocess.run(["ip", "netns", "exec", lk.client_ns, exe, "run", "--no-open", "--no-sound",
                               "-o", str(tmp_path)], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) <= 20, done.stdout
    assert len(lines) == len(set(lines)), done.stdout  # nothing said twice
    causes = [ln for ln in lines if ln.startswith("  Could not check ")]
    assert all(c.rstrip().endswith(("requirement unknown)", "requirements unknown)")) for c in causes)
    # one cause (no route out) behind the three network checks: one line, its unknowns summed
    (network,) = [c for c in causes if "No internet connection" in c]  # the catalog's words for the fact
    named = network.removeprefix("  Could not check ").split(":")[0]
    assert sorted(named.split(", ")) == ["Bandwidth", "Connectivity", "Latency"]
    from readiness.judge.requirements import shipped_profiles, tomllib

    network_reqs = [r for r in tomllib.loads(shipped_profiles()["video-call"])["requirement"]
                    if r["metric"].split(".")[0] in ("connectivity", "bandwidth", "latency")]
    assert network.endswith(f"({len(network_reqs)} requirements unknown)")  # every network requirement, once
    assert "add light" not in done.stdout.lower()  # no advice for a failure under a check that could not measure
