"""``readiness schedule install | status | remove``: the run on a timer, by the OS's own scheduler
(``readiness.unattended.schedule`` writes the unit, cron line, plist or task)."""

from __future__ import annotations

import sys
from typing import Any

import click

from readiness.cli.common import fail, message_lang
from readiness.cli.run import run as run_command

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


@click.group("schedule")
def schedule_group() -> None:
    """Run `readiness run --quiet` on a timer, by the OS's own scheduler.

    \b
    Windows: Task Scheduler; macOS: launchd; Linux: a systemd timer, or cron without systemd.
    Settings for the run come from the configuration files (see `readiness config show`) or
    from options after `--`, e.g.:
      readiness schedule install --daily --at 07:30 --random-delay 30m --system \\
        -- --profile meeting-room --output-dir '\\\\fileserver\\readiness$'
    """


def _scope_options(fn: Any) -> Any:
    fn = click.option("--via", type=click.Choice(["windows", "launchd", "systemd", "cron"]),
                      help="Scheduler (default: this computer's own).")(fn)
    return click.option("--system", is_flag=True,
                        help="For the whole computer (administrator): a SYSTEM task, LaunchDaemon, "
                             "system timer or /etc/cron.d; default: for you.")(fn)


@schedule_group.command("install")
@click.option("--daily", "every", flag_value="daily", default=True, help="Once a day (default).")
@click.option("--hourly", "every", flag_value="hourly", help="Once an hour, at the minute of --at.")
@click.option("--weekly", "every", flag_value="weekly", help="Once a week, on Mondays.")
@click.option("--at", "at", default="07:30", show_default=True, metavar="HH:MM", help="Time of day.")
@click.option("--random-delay", default="0", metavar="DURATION", help="Start up to this much later at random (e.g. 30m), so rooms do not all start at once.")
@click.option("--print", "just_print", is_flag=True, help="Show what would be installed; install nothing.")
@_scope_options
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- RUN OPTIONS...]")
def schedule_install(every: str, at: str, random_delay: str, just_print: bool, via: str | None, system: bool,
                     run_args: tuple[str, ...]) -> None:
    """Install (or replace) the scheduled run."""
    from readiness.i18n.format import word
    from readiness.run.config import parse_duration
    from readiness.unattended.schedule import Plan, ScheduleError, artifacts, commands, default_via, install, parse_at

    try:  # the options for the run are checked now, not at 07:30 in a log nobody reads
        run_ctx = run_command.make_context("run", ["--no-open", *run_args])
    except click.UsageError as exc:
        from readiness.cli.usage import asked_lang, message

        said = asked_lang(list(run_args))  # the run's own --lang counts too
        fail(word(said, "schedule.err_run_options", detail=message(exc, said)))
    lang = message_lang(run_ctx.params.get("lang"))
    try:
        hour, minute = parse_at(at)
    except ScheduleError as exc:
        fail(f"--at: {exc.text(lang)}")
    try:
        delay = round(parse_duration(random_delay))
    except ValueError:
        fail(f"--random-delay: {word(lang, 'schedule.err_delay', value=repr(random_delay))}")
    try:  # a value that would break a line of the unit, crontab, plist or task XML
        plan = Plan(every=every, hour=hour, minute=minute, random_delay_s=delay, run_args=tuple(run_args),
                    system=system, via=via or default_via())
    except ScheduleError as exc:
        fail(exc.text(lang))
    if just_print:
        for art in artifacts(plan):
            click.echo(f"# --- {art.path}")
            click.echo(art.text, nl=not art.text.endswith("\n"))
        cmds = commands(plan.via, plan.system, "install")
        if cmds:
            import shlex
            import subprocess

            join = subprocess.list2cmdline if plan.via == "windows" else shlex.join  # each OS's own quoting
            click.echo("# --- " + word(lang, "schedule.then", commands="; ".join(join(c) for c in cmds)))
        return
    try:
        for line in install(plan, lang=lang):
            click.echo(line)
    except ScheduleError as exc:
        fail(exc.text(lang))


@schedule_group.command("status")
@_scope_options
def schedule_status(via: str | None, system: bool) -> None:
    """Say whether the scheduled run is installed, and what the scheduler knows of it. Exit 1 if not."""
    from readiness.i18n.format import word
    from readiness.unattended.schedule import ScheduleError, default_via, status

    lang = message_lang()
    try:
        installed, said = status(via or default_via(), system, lang=lang)
    except ScheduleError as exc:
        fail(exc.text(lang))
    click.echo(word(lang, "schedule.installed" if installed else "schedule.not_installed") + (f"\n{said}" if said else ""))
    sys.exit(0 if installed else 1)


@schedule_group.command("remove")
@_scope_options
def schedule_remove(via: str | None, system: bool) -> None:
    """Remove the scheduled run (nothing happens if there is none)."""
    from readiness.unattended.schedule import ScheduleError, default_via, remove

    lang = message_lang()
    try:
        for line in remove(via or default_via(), system, lang=lang):
            click.echo(line)
    except ScheduleError as exc:
        fail(exc.text(lang))
