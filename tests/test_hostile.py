"""Hostile input as a class: what a file, a share, an environment or a user sends cannot stop,
clobber or fool readiness (issue 10). Everything runs through the CLI as a user calls it, on
real files, pipes, devices, links and a real full file system (tmpfs); `readiness serve`
under attack is in test_server.py."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import signal
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
import time
from pathlib import Path

import pytest

from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from readiness.judge.requirements import parse_profile
from readiness.result import CheckRecord, Result

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import is_root, need  # noqa: E402

PROFILE = """name = "hostile"
title = "Hostile input"

[[requirement]]
metric = "system.cpu_cores"
min = 2
severity = "required"
label = "Processor cores"
why = "Video needs cores."
fix = "Use a faster computer."
source = "https://example.invalid/cores"
[requirement.sv]
label = "Processorkärnor"

[[requirement]]
metric = "system.ram_total_gb"
min = 4
severity = "recommended"
why = "Memory."
fix = "Add memory."
source = "https://example.invalid/ram"
"""
NOT_JSON_CONSTANTS = {"parse_constant": lambda name: pytest.fail(f"{name} is not JSON")}


# an hour ago: the fleet counts these rooms as reporting (``aggregate --not-reporting-after``, 3 days)
STARTED = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def make_result(hostname: str = "ws-1", cores: float = 8, index: int = 1, label: str = "") -> dict:
    """A valid result document (as written by a run) judged against PROFILE."""
    rec = CheckRecord(name="system", title="This computer", status="ok", started_utc=STARTED,
                      duration_s=1.0, metrics={"cpu_cores": {"value": cores, "unit": "cores"},
                                               "ram_total_gb": {"value": 16.0, "unit": "GB"}})
    res = Result(run_id=f"{index:032x}", started_utc=STARTED, finished_utc=STARTED,
                 host={"hostname": hostname, "os": "Linux"}, labels={"label": label} if label else {},
                 profile={"name": "hostile", "sha256": "0" * 64}, checks={"system": rec}, tool_version="0.1.0")
    prof = parse_profile(PROFILE, "hostile.toml", load_plugins().checks)
    res.judgement = judge(res, prof).to_dict()
    return json.loads(res.to_json())


def put(path: Path, doc: dict | str | bytes) -> Path:
    data = doc if isinstance(doc, bytes) else (doc if isinstance(doc, str) else json.dumps(doc)).encode("utf-8")
    path.write_bytes(data)
    return path


def _edit(fn):
    def make() -> dict:
        doc = make_result("bad-host", index=99)
        fn(doc)
        return doc
    return make


def _deep(levels: int) -> str:
    doc = json.dumps(make_result("deep", index=98))
    return doc[:-1] + ', "extra": ' + "[" * levels + "]" * levels + "}"


# Every document here once stopped `aggregate` (exit 2, no report) or broke `report` with an
# "internal error" naming no file. Each: (id, document or text, words the skip reason holds).
BAD_DOCUMENTS = [
    ("nested-990", lambda: _deep(990), "nested"),
    ("nested-100k", lambda: _deep(100_000), "nested"),
    ("metric-1e308", _edit(lambda d: d["checks"]["system"]["metrics"]["cpu_cores"].update(value=1e308)), "cpu_cores.value"),
    ("metric-10e400", lambda: json.dumps(make_result("big", index=97)).replace('"value": 8', '"value": 1' + "0" * 400),
     "cpu_cores.value"),
    ("bound-text", _edit(lambda d: d["judgement"]["items"][0]["requirement"].update(min="abc")), "min"),
    ("bound-infinity", lambda: json.dumps(make_result("inf", index=96)).replace('"min": 2', '"min": Infinity'),
     "not a finite number"),
    ("label-number", _edit(lambda d: d["labels"].update(site=5)), "labels.site"),
    ("metric-name-number", _edit(lambda d: d["judgement"]["items"][0]["requirement"].update(metric=5)), "metric"),
    ("translations-text", _edit(lambda d: d["judgement"]["items"][0]["requirement"].update(translations="sv")),
     "translations"),
    ("status-number", _edit(lambda d: d["checks"]["system"].update(status=3)), "status"),
    ("host-list", _edit(lambda d: d.update(host=["x"])), "host"),
    ("checks-list", _edit(lambda d: d.update(checks=[1])), "checks"),
    ("metric-object", _edit(lambda d: d["checks"]["system"]["metrics"].update(cpu_cores={"value": {"x": 1}, "unit": ""})),
     "cpu_cores"),
    ("duration-huge", _edit(lambda d: d["checks"]["system"].update(duration_s=1e300)), "duration_s"),
    ("items-not-list", _edit(lambda d: d["judgement"].update(items={"a": 1})), "items"),
    ("item-no-requirement", _edit(lambda d: d["judgement"]["items"][0].pop("requirement")), "requirement"),
    ("overall-unknown-word", _edit(lambda d: d["judgement"].update(overall="MAYBE")), "overall"),
    ("label-huge", _edit(lambda d: d["labels"].update(label="x" * 100_000)), "labels.label"),
    ("schema-version-text", _edit(lambda d: d.update(schema_version="1")), "schema_version"),
    ("latin1", lambda: json.dumps(make_result("Göteborg", index=95), ensure_ascii=False).encode("latin-1"),
     "not valid JSON"),
]


def _bad(doc_fn):
    doc = doc_fn()
    return doc if isinstance(doc, (str, bytes)) else json.dumps(doc)


@pytest.mark.parametrize("name,doc_fn,reason", BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS])
def test_one_bad_file_is_skipped_with_its_reason_and_the_fleet_report_is_written(cli, tmp_path, name, doc_fn, reason):
    share = tmp_path / "share"
    share.mkdir()
    put(share / "good-1.json", make_result("good-1", index=1))
    put(share / "good-2.json", make_result("good-2", index=2, cores=1))
    bad = put(share / f"{name}.json", _bad(doc_fn))
    r = cli("aggregate", str(share), "-o", str(tmp_path / "fleet.html"), "--csv", str(tmp_path / "fleet.csv"),
            "--json", str(tmp_path / "fleet.json"), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    skip_lines = [line for line in r.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skip_lines) == 1 and skip_lines[0].startswith(f"skipped: {bad}: ") and reason in skip_lines[0], r.stderr
    figs = json.loads((tmp_path / "fleet.json").read_text(encoding="utf-8"), **NOT_JSON_CONSTANTS)
    assert figs["counts"]["total"] == 2 and figs["counts"]["ready"] == 1 and figs["counts"]["not_ready"] == 1
    assert (tmp_path / "fleet.html").stat().st_size > 0 and "good-2" in (tmp_path / "fleet.csv").read_text("utf-8-sig")


@pytest.mark.parametrize("name,doc_fn,reason", BAD_DOCUMENTS, ids=[b[0] for b in BAD_DOCUMENTS])
def test_report_names_the_file_in_every_error(cli, tmp_path, name, doc_fn, reason):
    bad = put(tmp_path / f"{name}.json", _bad(doc_fn))
    for extra in ([], ["--profile", "video-call"]):
        r = cli("report", str(bad), *extra, timeout=60)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"readiness: {bad}: ") and reason in lines[0], r.stderr
        assert not (tmp_path / f"{name}.html").exists()


def test_report_refuses_pipes_devices_and_oversized_files_without_waiting(cli, tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # nobody writes to it: opening it the ordinary way would wait forever
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(40 * 1024 * 1024)  # sparse: large without using the disk
    cases = [(fifo, "not a regular file"), (Path(os.devnull), "not a regular file"), (big, "too large")]
    for path, reason in cases:
        start = time.monotonic()
        r = cli("report", str(path), "-o", str(tmp_path / "out.html"), timeout=30)
        assert time.monotonic() - start < 20
        assert r.returncode == 2 and r.stderr.startswith(f"readiness: {path}: ") and reason in r.stderr, r.stderr
    assert not (tmp_path / "out.html").exists()
    prof_cases = [(fifo, "not a regular file"), (Path("/dev/zero"), "not a regular file")]
    for path, reason in prof_cases:  # a requirement list is a file from elsewhere too
        start = time.monotonic()
        r = cli("report", str(put(tmp_path / "r.json", make_result())), "-r", str(path), timeout=30)
        assert time.monotonic() - start < 20
        assert r.returncode == 2 and r.stderr.startswith(f"readiness: {path}: ") and reason in r.stderr, r.stderr


# --- numbers that are not numbers ------------------------------------------------------------


def test_a_stored_nan_is_unknown_never_pass_and_json_output_stays_json(cli, tmp_path):
    text = json.dumps(make_result("nan-host", cores=8), indent=1).replace('"value": 8', '"value": NaN')
    path = put(tmp_path / "nan.json", text)
    prof = put(tmp_path / "p.toml", PROFILE)
    r = cli("report", str(path), "-r", str(prof), "--json", "-o", str(tmp_path / "nan.html"))
    out = json.loads(r.stdout, **NOT_JSON_CONSTANTS)  # strict JSON: no NaN/Infinity literal
    cores = next(i for i in out["items"] if i["requirement"]["metric"] == "system.cpu_cores")
    assert cores["status"] == "UNKNOWN" and cores["value"] is None
    assert out["overall"] == "UNKNOWN" and r.returncode == 1


def test_a_nan_measured_by_a_check_is_judged_unknown():
    from readiness.judge.verdicts import judge_one
    from readiness.judge.requirements import Requirement

    for bad in (math.nan, math.inf, -math.inf):
        rec = CheckRecord(name="system", status="ok", started_utc="2026-11-26T10:00:00.000Z", duration_s=1.0,
                          metrics={"cpu_cores": {"value": bad, "unit": "cores"}})
        res = Result(run_id="a" * 32, started_utc="2026-11-26T10:00:00.000Z", finished_utc="2026-11-26T10:00:00.000Z",
                     host={"hostname": "h", "os": "Linux"}, labels={}, profile={}, checks={"system": rec}, tool_version="t")
        for req in (Requirement("system.cpu_cores", "required", "w", "f", "s", min=2),
                    Requirement("system.cpu_cores", "required", "w", "f", "s", max=2)):
            assert judge_one(res, req).status == "UNKNOWN", (bad, req)


@pytest.mark.parametrize("bound", ["nan", "inf", "-inf", "+nan", "1e400", "1e16"])
def test_a_bound_that_is_not_a_finite_number_is_refused_with_file_and_line(cli, tmp_path, bound):
    prof = put(tmp_path / "p.toml", PROFILE.replace("min = 2\n", f"min = {bound}\n"))
    r = cli("report", str(put(tmp_path / "r.json", make_result())), "-r", str(prof))
    line = PROFILE.splitlines().index("min = 2") + 1
    assert r.returncode == 2 and r.stderr.startswith(f"readiness: {prof}:{line}: ") and "finite" in r.stderr, r.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("budget", ["nan", "inf", "1e400", "-1", "0", "1e9"])
def test_a_budget_that_is_not_a_sane_number_is_a_usage_error(cli, tmp_path, budget):
    prof = put(tmp_path / "p.toml", PROFILE + f"\n[checks.system]\nbudget_s = {budget}\n")
    r = cli("run", "-r", str(prof), "-o", str(tmp_path / "out"), "--quiet", "--no-open")
    assert r.returncode == 2 and f"{prof}:" in r.stderr and "budget_s" in r.stderr, r.stderr
    r = cli("run", "-c", "system", "--set", f"system.budget_s={budget}", "-o", str(tmp_path / "out"), "--quiet")
    assert r.returncode == 2 and "budget_s" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not any((tmp_path / "out").glob("*.json"))


@pytest.mark.parametrize("args", [
    ["serve", "--timeout", "nan"], ["serve", "--timeout", "inf"], ["serve", "--max-mb", "inf"],
    ["serve", "--max-mb", "nan"], ["serve", "--http-port", "70000"], ["serve", "--stun-port", "-1"],
    ["serve", "--max-seconds", "nan"], ["devices", "--timeout", "nan"], ["devices", "--timeout", "inf"],
], ids=lambda a: "-".join(a).replace("--", ""))
def test_number_options_that_are_not_numbers_are_usage_errors(cli, args):
    r = cli(*args, "--host", "127.0.0.1", timeout=20) if args[0] == "serve" else cli(*args, timeout=20)
    assert r.returncode == 2 and "Usage:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "listening" not in r.stderr


def test_profile_loading_is_linear_in_its_requirements():
    """4 000 requirements took 148 s when every block was searched for from the top. Timing
    on a shared machine is noisy, so this compares sizes within one run: 4x the requirements
    must cost well under the 16x a quadratic search would."""
    checks = load_plugins().checks
    block = PROFILE.split("[[requirement]]")[1]

    def cost(n: int) -> float:
        text = 'name = "big"\n' + "".join("[[requirement]]" + block for _ in range(n))
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            assert len(parse_profile(text, "big.toml", checks).requirements) == n
            best = min(best, time.perf_counter() - t)
        return best

    small, large = cost(300), cost(1200)
    assert large / small < 9, (small, large)


# --- files: never through someone else's name ---------------------------------------------------


def test_the_writability_probe_never_follows_a_planted_link(tmp_path):
    from readiness.cli.common import output_dir as _output_dir

    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    share = tmp_path / "share"
    share.mkdir()
    os.symlink(victim, share / f".readiness-write-test-{os.getpid()}")  # the name the probe used to use
    assert _output_dir(str(share)) == share
    assert victim.read_text(encoding="utf-8") == "precious"
    assert sorted(p.name for p in share.iterdir()) == [f".readiness-write-test-{os.getpid()}"]


def test_aggregate_csv_never_writes_through_a_planted_temporary_name(cli, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    share = tmp_path / "share"
    share.mkdir()
    put(share / "a.json", make_result())
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / "fleet.csv.tmp")
    os.symlink(victim, out / "fleet.csv")  # a link at the target itself is replaced, not written through
    r = cli("aggregate", str(share), "-o", str(out / "fleet.html"), "--csv", str(out / "fleet.csv"))
    assert r.returncode == 0, r.stderr
    assert victim.read_text(encoding="utf-8") == "precious"
    assert not (out / "fleet.csv").is_symlink() and "ws-1" in (out / "fleet.csv").read_text("utf-8-sig")
    assert sorted(p.name for p in out.iterdir()) == ["fleet.csv", "fleet.csv.tmp", "fleet.html"]


def test_written_files_get_the_mode_of_an_ordinary_file(tmp_path):
    path = put(tmp_path / "r.json", make_result())
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        out = tmp_path / f"r-{umask:o}.html"
        subprocess.run([sys.executable, "-m", "readiness.cli", "report", str(path), "-o", str(out)],
                       capture_output=True, timeout=60, preexec_fn=lambda u=umask: os.umask(u))
        assert stat.S_IMODE(out.stat().st_mode) == mode, oct(out.stat().st_mode)


def test_no_output_replaces_an_input_of_the_same_command(cli, tmp_path):
    doc = make_result()
    saved_as_html = put(tmp_path / "r.html", doc)  # a result saved with the wrong extension
    before = saved_as_html.read_bytes()
    r = cli("report", str(saved_as_html))
    assert r.returncode == 2 and "input" in r.stderr and saved_as_html.read_bytes() == before, r.stderr
    res = put(tmp_path / "r.json", doc)
    prof = put(tmp_path / "p.toml", PROFILE)
    for args in (["-o", str(res)], ["-r", str(prof), "-o", str(prof)]):
        r = cli("report", str(res), *args)
        assert r.returncode == 2 and "input" in r.stderr, r.stderr
    assert res.read_bytes() == json.dumps(doc).encode() and prof.read_text(encoding="utf-8") == PROFILE
    share = tmp_path / "share"
    share.mkdir()
    inside = put(share / "b.json", make_result("ws-2", index=2))
    kept = inside.read_bytes()
    for args in (["-o", str(res)], ["--json", str(inside)], ["--csv", str(res)], ["-o", str(tmp_path / "x.html"),
                                                                               "--csv", str(tmp_path / "x.html")]):
        r = cli("aggregate", str(share), str(res), *args)
        assert r.returncode == 2 and ("input" in r.stderr or "same file" in r.stderr), (args, r.stderr)
    assert inside.read_bytes() == kept and res.read_bytes() == json.dumps(doc).encode()


@pytest.fixture
def full_disk(tmp_path):
    """A real, small file system (tmpfs) filled to the last byte."""
    need(is_root(), "mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    need(r.returncode == 0, f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"x" * 4096):
                pass
        except OSError:
            pass
        os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_a_plain_message_and_leaves_nothing_behind(cli, tmp_path, full_disk):
    res = put(tmp_path / "r.json", make_result())
    r = cli("report", str(res), "-o", str(full_disk / "r.html"))
    assert r.returncode == 2 and "No space left on device" in r.stderr and "internal error" not in r.stderr, r.stderr
    r = cli("run", "-c", "system", "-o", str(full_disk), "--quiet", "--no-open", timeout=120)
    assert r.returncode == 2 and "No space left on device" in r.stderr, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no half file, no temporary file


def test_a_result_is_never_left_without_its_report(full_disk):
    from readiness.atomic import write_all_or_none

    (full_disk / "filler").unlink()
    with open(full_disk / "filler", "wb") as fh:
        fh.write(b"x" * (256 - 64) * 1024)  # 64 kB left: room for the first file, not for both
    first, second = full_disk / "r.json", full_disk / "r.html"
    with pytest.raises(OSError) as err:
        write_all_or_none([(first, b"j" * 32 * 1024), (second, b"h" * 64 * 1024)])
    assert "No space" in str(err.value)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def _run_held_at_the_browser(tmp_path, sig: int) -> subprocess.CompletedProcess:
    """`run --open` with a "browser" that takes its time: the signal lands after the files were written."""
    browser = tmp_path / "slow-browser"
    browser.write_text("#!/bin/sh\nexec >/dev/null 2>&1\nsleep 10\n", encoding="utf-8")  # holds no pipe of ours
    browser.chmod(0o755)
    env = dict(os.environ, BROWSER=f"{browser} %s")
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "readiness.cli", "run", "-c", "system", "-o", str(out), "--open"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.html")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=30)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_after_the_result_was_written_says_so(tmp_path, sig, code):
    r = _run_held_at_the_browser(tmp_path, sig)
    written = sorted((tmp_path / "out").glob("readiness-*"))
    assert len(written) == 2
    assert r.returncode == code, r.stderr
    assert "nothing was written" not in r.stderr and "already written" in r.stderr
    assert all(str(p) in r.stderr for p in written), r.stderr


# --- secrets stay out of results ---------------------------------------------------------------


@pytest.mark.parametrize("url,recorded", [
    ("user:secret@127.0.0.1:9", "***@127.0.0.1:9"),
    ("http://user:p@ss/w0rd@proxy.invalid:3128/", "http://***@proxy.invalid:3128/"),
    ("http://user:pa?ss@proxy.invalid:3128", "http://***@proxy.invalid:3128"),
    ("http://proxy.invalid:3128/?token=secret", "http://proxy.invalid:3128/"),
    ("https://proxy.invalid/#secret", "https://proxy.invalid/"),
    ("socks5h://u:secret@proxy.invalid:1080", "socks5h://***@proxy.invalid:1080"),
    ("https://speed.cloudflare.com/__down", "https://speed.cloudflare.com/__down"),
])
def test_urls_are_recorded_without_credentials_or_query_whatever_their_shape(url, recorded):
    from readiness.redact import redact_text, redact_url

    assert redact_url(url) == recorded
    assert redact_text(f"cannot reach {url} (timed out)") == f"cannot reach {recorded} (timed out)"


def test_proxy_secrets_from_the_environment_stay_out_of_the_result_and_report(cli, tmp_path):
    env = dict(os.environ, https_proxy="user:secret@127.0.0.1:9", http_proxy="http://u:p@ss/secret@127.0.0.1:9/",
               all_proxy="http://127.0.0.1:9/?token=secret", no_proxy="")
    r = cli("run", "-c", "system", "-o", str(tmp_path), "--quiet", "--no-open", env=env, timeout=120)
    assert r.returncode in (1, 3), r.stderr
    files = list(tmp_path.glob("readiness-*"))
    assert len(files) == 2
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert "secret" not in text and "token" not in text, f
    doc = json.loads(next(f for f in files if f.suffix == ".json").read_text(encoding="utf-8"))
    assert doc["checks"]["system"]["metrics"]["proxy_configured"]["value"] is True


def test_a_server_url_with_credentials_is_refused(cli, tmp_path):
    for url in ("http://user:secret@127.0.0.1:9", "user:secret@127.0.0.1:9", "http://u:p@ss/x@127.0.0.1:9"):
        r = cli("run", "-c", "connectivity", "--server", url, "-o", str(tmp_path), "--quiet", timeout=60)
        assert r.returncode == 2 and "--server" in r.stderr and "secret" not in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


def test_host_facts_hold_no_network_address(cli, tmp_path):
    import ipaddress

    r = cli("run", "-c", "system", "-o", str(tmp_path), "--json", "--no-open", timeout=120)
    doc = json.loads(r.stdout)

    def strings(v):
        if isinstance(v, dict):
            for x in v.values():
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)
        elif isinstance(v, str):
            yield v

    for s in strings(doc):
        try:
            ipaddress.ip_address(s.split("%")[0])
        except ValueError:
            continue
        pytest.fail(f"a network address is recorded: {s}")


# --- smaller -----------------------------------------------------------------------------------


def test_csv_cells_cannot_split_into_formulas(cli, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    hostile = ['x;=HYPERLINK("http://evil.invalid","y")', "=1+1", "a,@SUM(A1)", "b\t+cmd", "c|-2+3", "-x"]
    for i, label in enumerate(hostile):
        put(share / f"{i}.json", make_result(f"ws-{i}", index=i + 1, label=label))
    r = cli("aggregate", str(share), "-o", str(tmp_path / "f.html"), "--csv", str(tmp_path / "f.csv"))
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "f.csv").read_text("utf-8-sig")
    for delimiter in (",", ";", "\t", "|"):  # as a spreadsheet may guess the separator
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            for cell in row:
                assert not cell.lstrip().startswith(("=", "+", "-", "@")), (delimiter, cell)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["label"] for r in rows) == sorted("'" + h if h[0] in "=-" else h.replace(";=", ";'=").replace(
        ",@", ",'@").replace("\t+", "\t'+").replace("|-", "|'-") for h in hostile)


ESC = "\x1b]0;owned\x07\x1b[2J\x1b[31m"


def test_terminal_escapes_in_labels_are_printed_as_text(cli, tmp_path):
    doc = make_result(cores=1)
    doc["judgement"]["items"][0]["requirement"]["label"] = f"cores{ESC}"
    doc["judgement"]["items"][0]["requirement"]["fix"] = f"fix{ESC}"
    path = put(tmp_path / "esc.json", doc)
    r = cli("report", str(path))
    assert r.returncode == 1 and "\x1b" not in r.stdout + r.stderr and "\\x1b]0;owned\\x07" in r.stdout, r.stdout
    prof = put(tmp_path / "esc.toml", PROFILE.replace('label = "Processor cores"', 'label = "cores\\u001b[2J\\u0007"')
               .replace("min = 2\n", "min = 100000\n"))
    r = cli("run", "-r", str(prof), "-o", str(tmp_path / "out"), "--no-open", timeout=120)
    assert r.returncode == 1 and "\x1b" not in r.stdout + r.stderr and "cores\\x1b[2J\\x07" in r.stdout, r.stdout
    r = cli("aggregate", str(tmp_path / "esc.json"), str(put(tmp_path / f"bad{ESC}.json", "{")),
            "-o", str(tmp_path / "f.html"))
    assert r.returncode == 0 and "\x1b" not in r.stdout + r.stderr and "bad\\x1b" in r.stderr, r.stderr


def test_a_copy_of_a_good_result_still_reads(tmp_path):
    """The border lets through what a run writes (so bounds are not so tight they lose data)."""
    from readiness.result import read_result

    doc = make_result()
    doc["checks"]["system"]["details"] = {"nested": copy.deepcopy({"a": {"b": {"c": [1, 2, {"d": math.pi}]}}}),
                                          "nan": None}
    res = read_result(put(tmp_path / "ok.json", doc))
    assert res.checks["system"].value("cpu_cores") == 8


def test_a_speed_test_url_with_credentials_never_reaches_a_header_or_the_result(cli, tmp_path):
    from readiness.measure.netcommon import HttpUrl

    u = HttpUrl("http://user:p@ss@127.0.0.1:9/base?token=secret", "bad url")
    assert (u.hostheader, u.url) == ("127.0.0.1:9", "http://127.0.0.1:9/base")
    r = cli("run", "-c", "bandwidth", "--set", 'bandwidth.url="http://user:secret@127.0.0.1:9/?token=secret"',
            "-o", str(tmp_path), "--quiet", "--no-open", timeout=120)
    files = list(tmp_path.glob("readiness-*"))
    assert r.returncode != 2 and len(files) == 2, r.stderr
    for f in files:
        assert "secret" not in f.read_text(encoding="utf-8"), f


def test_the_border_sorts_its_reasons_for_a_server_to_answer_with():
    from readiness.result import MAX_RESULT_BYTES, ResultError, load_result_bytes, result_from_data

    good = json.dumps(make_result()).encode()
    assert load_result_bytes(good, "upload").run_id == "0" * 31 + "1"
    cases = [(b" " * (MAX_RESULT_BYTES + 1), "too_large"), (b"{", "not_json"), (_deep(100_000).encode(), "not_json"),
             (_bad(BAD_DOCUMENTS[2][1]).encode(), "invalid"), (b"[]", "invalid")]
    for raw, kind in cases:
        with pytest.raises(ResultError) as err:
            load_result_bytes(raw, "upload from 192.0.2.7")
        assert err.value.kind == kind and str(err.value).startswith("upload from 192.0.2.7: ")
    with pytest.raises(ResultError):
        result_from_data(json.loads(_deep(500)), "upload")


def test_what_a_run_writes_the_border_always_reads(cli, tmp_path):
    """The writer's limits are the reader's: a text a result stores can never make it unreadable."""
    from readiness.run.config import MAX_LABEL
    from readiness.judge.requirements import TEXT_LIMITS
    from readiness.result import read_result
    from readiness.schema import schema_text
    from readiness.run.session import MAX_ERROR, MAX_TITLE, MAX_WARNING

    schema = json.loads(schema_text())
    req = schema["$defs"]["requirement"]["properties"]
    assert {k: req[k]["maxLength"] for k in ("label", "why", "fix", "source")} == \
        {k: TEXT_LIMITS[k] for k in ("label", "why", "fix", "source")}
    assert schema["properties"]["profile"]["properties"]["name"]["maxLength"] == TEXT_LIMITS["name"]
    assert schema["properties"]["profile"]["properties"]["title"]["maxLength"] == TEXT_LIMITS["title"]
    assert schema["properties"]["labels"]["properties"]["label"]["maxLength"] == MAX_LABEL
    check = schema["$defs"]["check"]["properties"]
    assert (check["error"]["maxLength"], check["title"]["maxLength"]) == (MAX_ERROR, MAX_TITLE)
    assert schema["properties"]["warnings"]["items"]["maxLength"] == MAX_WARNING

    r = cli("run", "-c", "system", "--label", "x" * (MAX_LABEL + 1), "-o", str(tmp_path), "--quiet")
    assert r.returncode == 2 and "--label" in r.stderr and not list(tmp_path.iterdir())
    prof = put(tmp_path / "long.toml", PROFILE.replace('why = "Video needs cores."', f'why = "{"w" * 4001}"'))
    r = cli("report", str(put(tmp_path / "r.json", make_result())), "-r", str(prof))
    line = PROFILE.splitlines().index('why = "Video needs cores."') + 1
    assert r.returncode == 2 and r.stderr.startswith(f"readiness: {prof}:{line}: 'why' is 4001 characters"), r.stderr
    out = tmp_path / "out"
    r = cli("run", "-c", "system", "--label", "x" * MAX_LABEL, "-o", str(out), "--quiet", "--no-open")
    assert r.returncode in (0, 1, 3), r.stderr
    assert read_result(next(out.glob("*.json"))).labels["label"] == "x" * MAX_LABEL


def test_a_value_readers_would_refuse_is_written_as_not_measured(plugin_cli, tmp_path):
    from conftest import FIXTURE_PROFILES
    from readiness.result import read_result

    out = tmp_path / "out"
    r = plugin_cli("run", "-r", str(FIXTURE_PROFILES / "fixture.toml"), "-c", "fixture_fast",
                   "--set", "fixture_fast.value=1e300", "-o", str(out), "--quiet", "--no-open")
    assert r.returncode in (1, 3), r.stderr  # not measured is never ready
    res = read_result(next(out.glob("*.json")))
    assert res.checks["fixture_fast"].value("value_ms") is None
    assert res.judgement["items"][0]["status"] == "UNKNOWN"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "1E+0400", "1" + "0" * 400 + ".0"])
def test_a_non_finite_measurement_is_found_however_it_is_written(literal, encoding):
    from readiness.result import load_result_bytes

    text = json.dumps(make_result()).replace('"value": 8', f'"value": {literal}')
    res = load_result_bytes(text.encode(encoding), "x")
    assert res.checks["system"].value("cpu_cores") is None  # not measured, so UNKNOWN when judged


def test_a_requirement_met_before_is_still_checked_by_type_depth_and_later_changes():
    """The border validates each distinct stored requirement once per process and then accepts
    only an equal one (bench/fleet.py: half the schema's time). Equal in Python is not equal in
    JSON (true == 1), a copy at another depth is not the one checked, and changing a Result read
    earlier must not change what counts as checked."""
    from readiness.result import ResultError, load_result_bytes

    def doc_with(edit) -> bytes:
        doc = make_result("cache", index=90)
        edit(doc["judgement"]["items"][0]["requirement"])
        return json.dumps(doc).encode()

    first = load_result_bytes(doc_with(lambda r: r.update(min=1)), "first.json")  # valid: now known
    assert first.judgement["items"][0]["requirement"]["min"] == 1
    load_result_bytes(doc_with(lambda r: r.update(min=1)), "again.json")
    for name, edit, words in [
        ("bool-min", lambda r: r.update(min=True), "min must be number"),
        ("deep-extra", lambda r: r.update(extra=json.loads("[" * 40 + "]" * 40)), "nested more than"),
        ("long-why", lambda r: r.update(min=1, why="x" * 5000), "why must be shorter"),
    ]:
        with pytest.raises(ResultError) as exc:
            load_result_bytes(doc_with(edit), f"{name}.json")
        assert str(exc.value).startswith(f"{name}.json: ") and words in str(exc.value), str(exc.value)
    first.judgement["items"][0]["requirement"]["why"] = "x" * 5000  # the Result's own dict, not the border's
    with pytest.raises(ResultError, match="why must be shorter"):
        load_result_bytes(doc_with(lambda r: r.update(min=1, why="x" * 5000)), "changed.json")
    # a checked requirement placed deeper than where it was checked is walked again
    deep = make_result("cache", index=91)
    nest = deep["judgement"]["items"][0]["requirement"] = dict(deep["judgement"]["items"][0]["requirement"], min=1)
    for _ in range(30):
        nest = {"x": nest}
    deep["judgement"]["profile"]["deep"] = nest
    with pytest.raises(ResultError, match="nested more than"):
        load_result_bytes(json.dumps(deep).encode(), "deeper.json")
