"""readiness schedule: what each OS scheduler is given, read back the way that scheduler reads it.

- systemd (for real here): the printed units pass `systemd-analyze verify`, and the ExecStart
  command, unquoted by systemd's rules, runs and writes a result into a folder whose name has
  spaces and Swedish letters.
- cron (for real here): the crontab line's command, handed to /bin/sh as cron does, runs.
- Windows Task Scheduler XML and the launchd plist cannot be loaded on this machine: they are
  parsed (ElementTree, plistlib) and checked field by field; the Windows command line is split
  back with the Microsoft C runtime's rules (written out below from Microsoft's documentation
  "Parsing C command-line arguments").
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import FIXTURE_PROFILES, Cli
from support import need

NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
UNC = r"\\fileserver\readiness$\Mötesrum 4.12"


def printed(cli: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """`schedule install --print` output, split into {file name: text}."""
    out = cli("schedule", "install", "--print", *args, env=env)
    assert out.returncode == 0, out.stderr
    files: dict[str, str] = {}
    name = None
    for line in out.stdout.splitlines(keepends=True):
        m = re.match(r"# --- (then: )?(.*)", line)
        if m and not m.group(1):
            name = m.group(2).strip()
            files[name] = ""
        elif m:
            files["then"] = m.group(2)
            name = None
        elif name is not None:
            files[name] += line
    return files


def results_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "Delad mapp" / "Mötesrum Å 4.12"
    return folder


def fixture_run_args(folder: Path) -> list[str]:
    return ["--", "--requirements", str(FIXTURE_PROFILES / "fixture.toml"), "--check", "fixture_fast",
            "--output-dir", str(folder), "--room", "Stora mötesrummet"]


def test_systemd_units_verify_and_their_command_runs_as_written(plugin_cli, plugin_env, tmp_path):
    if shutil.which("systemd-analyze") is None:
        need(False, "systemd-analyze (Debian package systemd) is not installed")
    folder = results_folder(tmp_path)
    env = dict(plugin_env, XDG_CONFIG_HOME=str(tmp_path / "konfig Ö"))
    files = printed(plugin_cli, "--via", "systemd", "--weekly", "--at", "06:05", "--random-delay", "30m",
                    *fixture_run_args(folder), env=env)
    service_path = next(p for p in files if p.endswith("readiness.service"))
    timer_path = next(p for p in files if p.endswith("readiness.timer"))
    assert Path(service_path).parent == tmp_path / "konfig Ö" / "systemd" / "user"
    assert files["then"] == "systemctl --user daemon-reload; systemctl --user enable --now readiness.timer"
    units = tmp_path / "units"
    units.mkdir()
    for path, text in files.items():
        if path != "then":
            (units / Path(path).name).write_text(text, encoding="utf-8")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    verify = subprocess.run(["systemd-analyze", "verify", "--user", "./readiness.service", "./readiness.timer"],
                            cwd=units, capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, XDG_RUNTIME_DIR=str(runtime)))
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr

    timer = dict(line.split("=", 1) for line in files[timer_path].splitlines() if "=" in line)
    assert timer["OnCalendar"] == "Mon *-*-* 06:05:00"
    assert timer["RandomizedDelaySec"] == "1800" and timer["Persistent"] == "true"
    cal = subprocess.run(["systemd-analyze", "calendar", timer["OnCalendar"]], capture_output=True, text=True, timeout=30)
    assert "Normalized form: Mon *-*-* 06:05:00" in cal.stdout

    exec_start = next(line for line in files[service_path].splitlines() if line.startswith("ExecStart="))
    # systemd's rules for what we write: C-escaped double quotes, then %% -> % and $$ -> $
    argv = [a.replace("%%", "%").replace("$$", "$") for a in shlex.split(exec_start[len("ExecStart="):])]
    assert argv[0] == sys.executable and argv[argv.index("--output-dir") + 1] == str(folder)
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=plugin_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    results = list(folder.glob("*.json"))
    assert len(results) == 1 and "Stora mötesrummet" in results[0].read_text(encoding="utf-8")


def test_cron_line_runs_under_sh_as_cron_would(plugin_cli, plugin_env, tmp_path):
    folder = results_folder(tmp_path) / "100% säker"  # cron ends a command at an unescaped %
    files = printed(plugin_cli, "--via", "cron", "--hourly", "--at", "00:17", "--random-delay", "1s",
                    *fixture_run_args(folder))
    line = files["crontab"].strip()
    fields = line.split(None, 5)
    assert fields[:5] == ["17", "*", "*", "*", "*"] and line.endswith("# readiness schedule")
    command = fields[5]
    assert "%" not in command.replace("\\%", "")
    ran = subprocess.run(["/bin/sh", "-c", command.replace("\\%", "%")], capture_output=True, text=True,
                         timeout=120, env=plugin_env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert len(list(folder.glob("*.json"))) == 1


def ms_argv(cmdline: str) -> list[str]:
    """Split a command line as the Microsoft C runtime does: 2n backslashes + quote -> n
    backslashes and a quote toggle; 2n+1 backslashes + quote -> n backslashes and a literal
    quote; backslashes not before a quote are literal; whitespace outside quotes separates."""
    args, cur, i, quoted, have = [], "", 0, False, False
    while i < len(cmdline):
        c = cmdline[i]
        if c == "\\":
            n = len(cmdline[i:]) - len(cmdline[i:].lstrip("\\"))
            if i + n < len(cmdline) and cmdline[i + n] == '"':
                cur += "\\" * (n // 2)
                if n % 2:
                    cur += '"'
                    i += n + 1
                    have = True
                    continue
                i += n
                continue
            cur += "\\" * n
            i += n
            have = True
            continue
        if c == '"':
            quoted = not quoted
            have = True
        elif c in " \t" and not quoted:
            if have:
                args.append(cur)
            cur, have = "", False
        else:
            cur += c
            have = True
        i += 1
    if have:
        args.append(cur)
    return args


@pytest.mark.parametrize("system", [True, False])
def test_windows_task_xml_field_by_field(cli, system):
    args = ["--via", "windows", "--daily", "--at", "07:30", "--random-delay", "30m"] + (["--system"] if system else [])
    env = dict(os.environ, USERDOMAIN="MYNDIGHET", USERNAME="åsa.öberg")
    files = printed(cli, *args, "--", "--profile", "meeting-room", "--output-dir", UNC, "--site", 'Kontor "Väst"',
                    env=env)
    assert files["then"].startswith("schtasks /Create /TN readiness /XML readiness-task.xml")
    assert files["then"].endswith("/RU SYSTEM /F" if system else "/RU MYNDIGHET\\åsa.öberg /RP * /F")
    task = ET.fromstring(files["readiness-task.xml"])
    trig = task.find("t:Triggers/t:CalendarTrigger", NS)
    assert trig.findtext("t:StartBoundary", namespaces=NS).endswith("T07:30:00")
    assert trig.findtext("t:RandomDelay", namespaces=NS) == "PT30M"
    assert trig.findtext("t:ScheduleByDay/t:DaysInterval", namespaces=NS) == "1"
    assert trig.find("t:Repetition", NS) is None
    principal = task.find("t:Principals/t:Principal", NS)
    if system:
        assert principal.findtext("t:UserId", namespaces=NS) == "S-1-5-18"  # SYSTEM: logged on or not
        assert principal.findtext("t:RunLevel", namespaces=NS) == "HighestAvailable"
    else:
        assert principal.findtext("t:UserId", namespaces=NS) == "MYNDIGHET\\åsa.öberg"
        assert principal.findtext("t:LogonType", namespaces=NS) == "Password"  # logged on or not
        assert principal.findtext("t:RunLevel", namespaces=NS) == "LeastPrivilege"
    assert task.findtext("t:Settings/t:StartWhenAvailable", namespaces=NS) == "true"
    exe = task.findtext("t:Actions/t:Exec/t:Command", namespaces=NS)
    arguments = task.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS)
    assert exe == sys.executable
    assert ms_argv(arguments) == ["-m", "readiness.cli", "run", "--quiet", "--no-open", "--profile", "meeting-room",
                                  "--output-dir", UNC, "--site", 'Kontor "Väst"']


def test_windows_hourly_and_weekly_triggers(cli):
    hourly = ET.fromstring(printed(cli, "--via", "windows", "--hourly", "--at", "00:10")["readiness-task.xml"])
    trig = hourly.find("t:Triggers/t:CalendarTrigger", NS)
    assert trig.findtext("t:Repetition/t:Interval", namespaces=NS) == "PT1H"
    # the order of Task Scheduler's own exports (its schema is a sequence)
    assert [c.tag.split("}")[1] for c in trig] == ["Repetition", "StartBoundary", "Enabled", "ScheduleByDay"]
    assert trig.find("t:RandomDelay", NS) is None
    weekly = ET.fromstring(printed(cli, "--via", "windows", "--weekly", "--random-delay", "90m")["readiness-task.xml"])
    trig = weekly.find("t:Triggers/t:CalendarTrigger", NS)
    assert [c.tag.split("}")[1] for c in trig] == ["StartBoundary", "Enabled", "RandomDelay", "ScheduleByWeek"]
    assert trig.find("t:ScheduleByWeek/t:DaysOfWeek/t:Monday", NS) is not None
    assert trig.findtext("t:RandomDelay", namespaces=NS) == "PT1H30M"


@pytest.mark.parametrize("system", [True, False])
def test_launchd_plist_field_by_field(cli, tmp_path, system):
    env = dict(os.environ, HOME=str(tmp_path / "Users" / "Åsa Öberg"))
    files = printed(cli, "--via", "launchd", "--weekly", "--at", "18:45", "--random-delay", "15m",
                    *(["--system"] if system else []), "--", "--output-dir", UNC, env=env)
    path = next(p for p in files if p.endswith(".plist"))
    expected_dir = "/Library/LaunchDaemons" if system else str(tmp_path / "Users" / "Åsa Öberg" / "Library" / "LaunchAgents")
    assert str(Path(path).parent) == expected_dir
    doc = plistlib.loads(files[path].encode("utf-8"))
    assert doc["Label"] == "org.readiness.run"
    assert doc["StartCalendarInterval"] == {"Weekday": 1, "Hour": 18, "Minute": 45}
    # launchd has no random delay of its own: the run waits itself
    assert doc["ProgramArguments"] == [sys.executable, "-m", "readiness.cli", "run", "--quiet", "--no-open",
                                       "--jitter", "900s", "--output-dir", UNC]
    domain = "system" if system else f"gui/{os.getuid()}"
    assert files["then"] == f"launchctl bootout {domain}/org.readiness.run; launchctl bootstrap {domain} {shlex.quote(path)}"


def test_mistakes_exit_2(cli):
    for args, words in [(("--at", "7.30"), "is not a time like 07:30"),
                        (("--at", "24:00"), "is not a time of day"),
                        (("--random-delay", "a bit"), "is not a duration"),
                        (("--", "--no-such-option"), "options after --: No such option '--no-such-option'")]:
        out = cli("schedule", "install", "--print", *args)
        assert out.returncode == 2 and words in out.stderr, (args, out.stderr)


def test_status_says_not_installed_and_remove_is_idempotent(cli, tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    out = cli("schedule", "status", "--via", "systemd", env=env)
    assert out.returncode == 1 and out.stdout.startswith("not installed")
    units = tmp_path / "cfg" / "systemd" / "user"
    units.mkdir(parents=True)
    (units / "readiness.service").write_text("[Service]\nExecStart=/bin/true\n")
    (units / "readiness.timer").write_text("[Timer]\nOnCalendar=daily\n")
    out = cli("schedule", "remove", "--via", "systemd", env=env)
    assert out.returncode == 0, out.stderr
    assert not (units / "readiness.service").exists() and not (units / "readiness.timer").exists()


def test_install_and_remove_for_systemd_write_where_systemd_reads(tmp_path, monkeypatch):
    """systemd is not PID 1 on this machine, so systemctl cannot run: the scheduler commands are
    recorded instead of run (the one stand-in in this file); the files are real and verified."""
    from readiness.unattended.schedule import Plan, install, remove, status

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "Åsa konfig"))
    ran: list[list[str]] = []

    def record(cmd):
        ran.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "readiness.timer  loaded\n", "")

    said = install(Plan(via="systemd", random_delay_s=600, run_args=("--site", "Luleå")), run=record)
    units = tmp_path / "Åsa konfig" / "systemd" / "user"
    assert (units / "readiness.timer").read_text().count("RandomizedDelaySec=600") == 1
    assert 'ExecStart="' in (units / "readiness.service").read_text() and '"Luleå"' in (units / "readiness.service").read_text()
    assert ran == [["systemctl", "--user", "daemon-reload"], ["systemctl", "--user", "enable", "--now", "readiness.timer"]]
    assert any("enable-linger" in line for line in said)
    assert status("systemd", False, run=record)[0] is True
    remove("systemd", False, run=record)
    assert not list(units.iterdir())
    assert ran[-2:] == [["systemctl", "--user", "disable", "--now", "readiness.timer"], ["systemctl", "--user", "daemon-reload"]]


def test_mistakes_are_said_in_the_configured_language(cli):
    """With Swedish chosen (READINESS_LANG=sv, as a configuration file's lang would) a bad time,
    a bad delay and a value that would break the scheduler's line are each one Swedish line."""
    import os

    env = dict(os.environ, READINESS_LANG="sv")
    for args, swedish in [(("--at", "25:00"), "är ingen tid på dygnet"),
                          (("--at", "7.30"), "är ingen tid som 07:30"),
                          (("--random-delay", "a bit"), "är ingen varaktighet"),
                          (("--", "--site", "Luleå\nExecStartPre=/bin/true"),
                           "ett värde för den schemalagda körningen får inte innehålla en radbrytning")]:
        out = cli("schedule", "install", "--print", *args, env=env)
        assert out.returncode == 2 and swedish in out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr and out.stdout == "" and "is not" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr  # one line, no English usage text around it
    # --lang given to the run wins over the configuration
    out = cli("schedule", "install", "--print", "--at", "25:00", "--", "--lang", "en", env=env)
    assert out.returncode == 2 and "is not a time of day" in out.stderr, out.stderr
