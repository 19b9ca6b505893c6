"""Scheduled, unattended runs: the OS's own scheduler runs ``readiness run --quiet`` on a timer.

Sits beside the CLI (``readiness schedule install|status|remove``) and knows nothing of the
checks. One :class:`Plan` (when, how much random delay, the exact command) is rendered for the
scheduler of the platform:

- Windows: a Task Scheduler task (Task Scheduler XML, schema 1.2) registered by ``schtasks``;
  it runs whether a user is logged on or not (as SYSTEM with ``--system``, else as the user
  with a password Windows asks for once and keeps itself), with ``RandomDelay``.
- macOS: a launchd LaunchAgent (per user) or LaunchDaemon (``--system``) plist; launchd has no
  random delay, so the command gets ``--jitter``.
- Linux with systemd: a service and a timer unit (``RandomizedDelaySec``, ``Persistent=true``),
  per user or system-wide.
- Linux without systemd: a crontab line (``--jitter`` for the random delay).

Each scheduler has its own quoting: the command is an argument list until the last moment, and
each renderer quotes it for its reader (Windows' command-line rules, systemd's unit syntax,
``/bin/sh`` for cron; launchd takes the list as it is). Paths with spaces and Swedish letters
survive all four. No quoting survives a line break, though: a newline in a room name would end
the cron line or the ``ExecStart=`` line and start a line of its own (a root cron job, an
``ExecStartPre=``). So a :class:`Plan` refuses every control character (and text that is not
Unicode) in every value it would write, when it is made, before anything is written.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.sax.saxutils import escape

from readiness import textsafe
from readiness.i18n.format import Worded, word
from readiness.result import write_atomic

NAME = "readiness"
LABEL = "org.readiness.run"  # launchd label
EVERY = ("daily", "hourly", "weekly")
VIAS = ("windows", "launchd", "systemd", "cron")
# The date the Windows trigger and the systemd calendar count from; any past date will do.
_START_DATE = "2026-01-05"  # a Monday: the weekly run falls on Mondays
_WEEKDAY_XML, _WEEKDAY_SYSTEMD, _WEEKDAY_CRON, _WEEKDAY_LAUNCHD = "Monday", "Mon", "1", 1


class ScheduleError(Worded):
    """Something the user can act on: a catalog key (``schedule.err_*``) and its arguments; the
    CLI prints ``text(lang)`` as one line, exit 2."""


@dataclass(frozen=True)
class Plan:
    every: str = "daily"
    hour: int = 7
    minute: int = 30
    random_delay_s: int = 0
    run_args: tuple[str, ...] = ()
    system: bool = False
    via: str = "systemd"
    python: str = field(default_factory=lambda: sys.executable)

    def __post_init__(self) -> None:
        for arg in self.command(with_jitter=True):
            one_line(arg, "schedule.what_value")
        if self.via == "windows" and not self.system:
            one_line(windows_user(), "schedule.what_user")
        if self.via == "launchd":
            one_line(str(_log_dir(self)), "schedule.what_log")

    def command(self, with_jitter: bool = False) -> list[str]:
        """The exact argument list the scheduler starts; ``with_jitter`` where the scheduler
        has no random delay of its own."""
        cmd = [self.python, "-m", "readiness.cli", "run", "--quiet", "--no-open"]
        if with_jitter and self.random_delay_s:
            cmd += ["--jitter", f"{self.random_delay_s}s"]
        return cmd + list(self.run_args)


@dataclass(frozen=True)
class Artifact:
    path: Path
    text: str


def one_line(value: str, what: str) -> str:
    """``value`` unchanged, or ScheduleError when it holds a control character (see
    :func:`readiness.textsafe.one_line`); ``what`` is the catalog key naming the value."""
    try:
        return textsafe.one_line(value, what)
    except textsafe.ControlCharacter as exc:
        raise ScheduleError("schedule.err_control", what=Worded(what), value=exc.shown) from None


def parse_at(text: str) -> tuple[int, int]:
    """``HH:MM`` -> (hour, minute); ScheduleError with a plain message otherwise."""
    hh, sep, mm = text.strip().partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ScheduleError("schedule.err_at_form", value=repr(text))
    hour, minute = int(hh), int(mm)
    if hour > 23 or minute > 59:
        raise ScheduleError("schedule.err_at_range", value=repr(text))
    return hour, minute


def default_via() -> str:
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "launchd"
    return "systemd" if os.path.isdir("/run/systemd/system") else "cron"


# --- Windows Task Scheduler -----------------------------------------------------------------


def _iso_duration(seconds: int) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s or not (h or m) else "")


def windows_user() -> str:
    user = os.environ.get("USERNAME") or os.environ.get("USER") or "user"
    domain = os.environ.get("USERDOMAIN")
    return f"{domain}\\{user}" if domain else user


def windows_task_xml(plan: Plan) -> str:
    """Task Scheduler XML (schema 1.2, as ``schtasks /Create /XML`` reads it). The elements of
    the trigger stand in the order Task Scheduler's own exports use (Repetition, StartBoundary,
    Enabled, RandomDelay, ScheduleBy...): its schema is a sequence."""
    from subprocess import list2cmdline

    cmd = plan.command()
    start = f"{_START_DATE}T{plan.hour:02d}:{plan.minute:02d}:00"
    if plan.every == "weekly":
        schedule = (f"<ScheduleByWeek><WeeksInterval>1</WeeksInterval><DaysOfWeek><{_WEEKDAY_XML} />"
                    "</DaysOfWeek></ScheduleByWeek>")
    else:
        schedule = "<ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay>"
    repetition = ("<Repetition><Interval>PT1H</Interval><Duration>P1D</Duration>"
                  "<StopAtDurationEnd>false</StopAtDurationEnd></Repetition>") if plan.every == "hourly" else ""
    delay = f"<RandomDelay>{_iso_duration(plan.random_delay_s)}</RandomDelay>" if plan.random_delay_s else ""
    if plan.system:  # the computer account: no password, reaches shares as DOMAIN\PC$
        principal = "<UserId>S-1-5-18</UserId><RunLevel>HighestAvailable</RunLevel>"
    else:  # the user, logged on or not; Windows asks for and keeps the password (schtasks /RP)
        principal = (f"<UserId>{escape(windows_user())}</UserId><LogonType>Password</LogonType>"
                     "<RunLevel>LeastPrivilege</RunLevel>")
    return f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>readiness: is this computer ready for video meetings? ({plan.every})</Description>
    <URI>\\{NAME}</URI>
  </RegistrationInfo>
  <Triggers>
    <CalendarTrigger>
      {repetition}<StartBoundary>{start}</StartBoundary>
      <Enabled>true</Enabled>
      {delay}{schedule}
    </CalendarTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">{principal}</Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <RunOnlyIfNetworkAvailable>false</RunOnlyIfNetworkAvailable>
    <Enabled>true</Enabled>
    <ExecutionTimeLimit>PT30M</ExecutionTimeLimit>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{escape(cmd[0])}</Command>
      <Arguments>{escape(list2cmdline(cmd[1:]))}</Arguments>
    </Exec>
  </Actions>
</Task>
"""


# --- macOS launchd --------------------------------------------------------------------------


def launchd_plist(plan: Plan) -> str:
    import plistlib

    when: dict[str, int] = {"Minute": plan.minute}
    if plan.every != "hourly":
        when["Hour"] = plan.hour
    if plan.every == "weekly":
        when["Weekday"] = _WEEKDAY_LAUNCHD
    log = str(_log_dir(plan) / "scheduled-run.log")
    doc = {"Label": LABEL, "ProgramArguments": plan.command(with_jitter=True), "StartCalendarInterval": when,
           "RunAtLoad": False, "ProcessType": "Background", "StandardOutPath": log, "StandardErrorPath": log}
    return plistlib.dumps(doc, fmt=plistlib.FMT_XML).decode("utf-8")


def _log_dir(plan: Plan) -> Path:
    if plan.system:
        return Path("/Library/Logs/readiness")
    return Path.home() / "Library" / "Logs" / "readiness"


# --- systemd ----------------------------------------------------------------------------------


def systemd_quote(arg: str) -> str:
    """One argument for ExecStart=, always in double quotes (see :func:`readiness.textsafe.systemd_quote`)."""
    try:
        return textsafe.systemd_quote(arg, "a value for the scheduled run")
    except textsafe.ControlCharacter as exc:
        raise ScheduleError("schedule.err_control", what=Worded("schedule.what_value"), value=exc.shown) from None


def systemd_calendar(plan: Plan) -> str:
    if plan.every == "hourly":
        return f"*-*-* *:{plan.minute:02d}:00"
    day = f"{_WEEKDAY_SYSTEMD} " if plan.every == "weekly" else ""
    return f"{day}*-*-* {plan.hour:02d}:{plan.minute:02d}:00"


def systemd_units(plan: Plan) -> tuple[str, str]:
    """(service, timer) unit texts."""
    service = f"""[Unit]
Description=readiness: is this computer ready for video meetings?
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
# exit 1 "not ready" and 3 "partly measured" are results, not failures of the service
SuccessExitStatus=1 3
ExecStart={' '.join(systemd_quote(a) for a in plan.command())}
"""
    delay = f"RandomizedDelaySec={plan.random_delay_s}\n" if plan.random_delay_s else ""
    timer = f"""[Unit]
Description=readiness, {plan.every}

[Timer]
OnCalendar={systemd_calendar(plan)}
{delay}Persistent=true
Unit={NAME}.service

[Install]
WantedBy=timers.target
"""
    return service, timer


def systemd_dir(system: bool) -> Path:
    if system:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


# --- cron -----------------------------------------------------------------------------------

CRON_MARK = "# readiness schedule"


def cron_line(plan: Plan) -> str:
    """One crontab line (``/etc/cron.d`` form with the user field when ``system``); run by
    /bin/sh, in which an unescaped ``%`` would end the command."""
    hour = "*" if plan.every == "hourly" else str(plan.hour)
    dow = _WEEKDAY_CRON if plan.every == "weekly" else "*"
    user = " root" if plan.system else ""
    cmd = " ".join(shlex.quote(a) for a in plan.command(with_jitter=True)).replace("%", "\\%")
    return f"{plan.minute} {hour} * * {dow}{user} {cmd} {CRON_MARK}"


# --- what each platform installs --------------------------------------------------------------


def artifacts(plan: Plan) -> list[Artifact]:
    """The files an install writes (for Windows and user crontabs: the text handed to the tool)."""
    if plan.via == "windows":
        return [Artifact(Path(f"{NAME}-task.xml"), windows_task_xml(plan))]
    if plan.via == "launchd":
        folder = Path("/Library/LaunchDaemons") if plan.system else Path.home() / "Library" / "LaunchAgents"
        return [Artifact(folder / f"{LABEL}.plist", launchd_plist(plan))]
    if plan.via == "systemd":
        service, timer = systemd_units(plan)
        folder = systemd_dir(plan.system)
        return [Artifact(folder / f"{NAME}.service", service), Artifact(folder / f"{NAME}.timer", timer)]
    if plan.system:
        return [Artifact(Path("/etc/cron.d") / NAME, cron_line(plan) + "\n")]
    return [Artifact(Path("crontab"), cron_line(plan) + "\n")]


def commands(via: str, system: bool, action: str, files: list[Path] | None = None) -> list[list[str]]:
    """The scheduler commands for install / status / remove."""
    if via == "windows":
        task = ["/TN", NAME]
        if action == "install":
            who = ["/RU", "SYSTEM"] if system else ["/RU", windows_user(), "/RP", "*"]
            return [["schtasks", "/Create", *task, "/XML", str(files[0]) if files else f"{NAME}-task.xml", *who, "/F"]]
        if action == "status":
            return [["schtasks", "/Query", *task, "/V", "/FO", "LIST"]]
        return [["schtasks", "/Delete", *task, "/F"]]
    if via == "launchd":
        domain = "system" if system else f"gui/{os.getuid() if hasattr(os, 'getuid') else 501}"
        plist = str(artifacts(Plan(via="launchd", system=system))[0].path)
        if action == "install":
            return [["launchctl", "bootout", f"{domain}/{LABEL}"], ["launchctl", "bootstrap", domain, plist]]
        if action == "status":
            return [["launchctl", "print", f"{domain}/{LABEL}"]]
        return [["launchctl", "bootout", f"{domain}/{LABEL}"]]
    if via == "systemd":
        ctl = ["systemctl"] + ([] if system else ["--user"])
        if action == "install":
            return [ctl + ["daemon-reload"], ctl + ["enable", "--now", f"{NAME}.timer"]]
        if action == "status":
            return [ctl + ["list-timers", "--all", f"{NAME}.timer"]]
        return [ctl + ["disable", "--now", f"{NAME}.timer"]]
    if system:
        return []
    return [["crontab", "-l"]] if action == "status" else []


Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _run(cmd: list[str]) -> "subprocess.CompletedProcess[str]":
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise ScheduleError("schedule.err_no_cron" if cmd[0] == "crontab" else "schedule.err_no_tool",
                            tool=cmd[0]) from None
    except subprocess.TimeoutExpired:
        raise ScheduleError("schedule.err_no_answer", command=" ".join(cmd[:3]), seconds=60) from None


def _crontab_without_ours(run: Runner) -> str:
    current = run(["crontab", "-l"])
    text = current.stdout if current.returncode == 0 else ""  # "no crontab for user" is exit 1
    return "".join(line + "\n" for line in text.splitlines() if not line.rstrip().endswith(CRON_MARK))


def install(plan: Plan, run: Runner = _run, lang: str = "en") -> list[str]:
    """Install the schedule; returns what was done, line by line, in ``lang``. Raises ScheduleError."""
    done: list[str] = []
    files = artifacts(plan)
    if plan.via == "cron" and not plan.system:
        text = _crontab_without_ours(run) + files[0].text
        r = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, timeout=60, check=False)
        if r.returncode != 0:
            raise ScheduleError("schedule.err_crontab", detail=r.stderr.strip())
        return [word(lang, "schedule.added_crontab", line=files[0].text.strip())]
    if plan.via == "windows":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="readiness-task-") as folder:
            target = Path(folder) / files[0].path.name
            target.write_text(files[0].text, encoding="utf-16")  # as the XML declaration says
            cmd = commands(plan.via, plan.system, "install", [target])[0]
            r = run(cmd)
        if r.returncode != 0:
            raise ScheduleError("schedule.err_schtasks", detail=(r.stderr or r.stdout).strip())
        return [word(lang, "schedule.created_task_system" if plan.system else "schedule.created_task",
                     name=repr(NAME), user=windows_user())]
    else:
        if plan.via == "launchd":  # launchd does not make the folder of its log file
            files = [Artifact(_log_dir(plan) / "scheduled-run.log", ""), *files]
        for art in files:
            try:
                art.path.parent.mkdir(parents=True, exist_ok=True)
                if not art.text:
                    continue
                write_atomic(art.path, art.text)
            except OSError as exc:
                raise ScheduleError("schedule.err_write_system" if plan.system else "schedule.err_write",
                                    path=str(art.path), detail=exc.strerror or str(exc)) from None
            done.append(word(lang, "schedule.wrote", path=str(art.path)))
    files = [a for a in files if a.text]
    for i, cmd in enumerate(commands(plan.via, plan.system, "install", [a.path for a in files])):
        r = run(cmd)
        if r.returncode != 0 and not (plan.via == "launchd" and i == 0):  # bootout of nothing is fine
            raise ScheduleError("schedule.err_command", command=" ".join(cmd), detail=(r.stderr or r.stdout).strip())
        done.append(word(lang, "schedule.ran", command=" ".join(cmd)))
    if plan.via == "systemd" and not plan.system:
        done.append(word(lang, "schedule.note_linger"))
    return done


def remove(via: str, system: bool, run: Runner = _run, lang: str = "en") -> list[str]:
    """Remove the schedule; returns what was done, line by line, in ``lang``. Raises ScheduleError."""
    done: list[str] = []
    if via == "cron" and not system:
        text = _crontab_without_ours(run)
        subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True, timeout=60, check=False)
        return [word(lang, "schedule.removed_crontab")]
    for cmd in commands(via, system, "remove"):
        run(cmd)  # not installed is fine: removing is idempotent
        done.append(word(lang, "schedule.ran", command=" ".join(cmd)))
    if via != "windows":
        for art in artifacts(Plan(via=via, system=system)):
            try:
                art.path.unlink()
                done.append(word(lang, "schedule.removed", path=str(art.path)))
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise ScheduleError("schedule.err_remove", path=str(art.path), detail=exc.strerror or str(exc)) from None
    if via == "systemd":
        run(["systemctl"] + ([] if system else ["--user"]) + ["daemon-reload"])
    return done


def status(via: str, system: bool, run: Runner = _run, lang: str = "en") -> tuple[bool, str]:
    """(installed?, what the scheduler says; a failure to ask it in ``lang``)."""
    if via == "cron":
        if system:
            path = artifacts(Plan(via="cron", system=True))[0].path
            return path.exists(), path.read_text(encoding="utf-8") if path.exists() else ""
        r = run(["crontab", "-l"])
        ours = [line for line in r.stdout.splitlines() if line.rstrip().endswith(CRON_MARK)]
        return bool(ours), "\n".join(ours)
    if via in ("systemd", "launchd"):
        files = [a.path for a in artifacts(Plan(via=via, system=system))]
        if not all(p.exists() for p in files):
            return False, ""
    cmd = commands(via, system, "status")[0]
    try:
        r = run(cmd)
    except ScheduleError as exc:
        return via != "windows", exc.text(lang)
    return (r.returncode == 0 or via != "windows"), (r.stdout or r.stderr).strip()
