"""The command line: ``readiness run | report | checks | profiles | devices | serve | aggregate |
config | schedule``.

Sits on top of everything else and only wires it together. Exit codes of ``run`` and
``report``: 0 ready, 1 not ready, 2 usage, configuration or internal error, 3 partial (no
fault found in what was checked, but the profile needs checks that did not run); 130 Ctrl-C,
143 SIGTERM (handled as Ctrl-C).

Output never fails on the console's encoding (a Windows code page cannot show "→" or "≥":
such characters are replaced, the files are UTF-8 anyway), and a closed pipe (``readiness
checks | head -1``) ends the command quietly, like any Unix tool (exit 141).

Start-up must stay fast (``readiness --help`` < 0.3 s): only click is imported here at
module level; every command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from readiness import __version__
from readiness.textsafe import terminal_text

from readiness.i18n import languages

EXIT_READY, EXIT_NOT_READY, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # Ctrl-C (SIGINT), SIGTERM: 128 + the signal's number
LANGS = list(languages())


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (a KeyboardInterrupt is the one exception the runner re-raises)."""


class Failure(click.ClickException):
    """A user-facing error: printed as one plain line, exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(terminal_text(f"readiness: {self.format_message()}"), err=True)


def fail(message: str) -> NoReturn:
    raise Failure(message)


class Finite(click.ParamType):
    """A finite number within [low, high]: click's FloatRange lets nan through (every
    comparison with nan is false) and inf through when there is no upper bound."""

    name = "number"

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not a number", param, ctx)
        if not (math.isfinite(number) and self.low <= number <= self.high):
            self.fail(f"{value} is not a number from {self.low:g} to {self.high:g}", param, ctx)
        return number


PORT = click.IntRange(0, 65535)
MAX_LABEL = 200  # the result schema's maxLength of labels.*; config.py holds every label to it


def _plugins() -> Any:
    from readiness.run.plugins import load_plugins

    plugins = load_plugins()
    return plugins


def _warn_plugins(plugins: Any, quiet: bool = False) -> None:
    if quiet:
        return
    for w in plugins.warnings:
        click.echo(f"warning: {w}", err=True)


def _profile(profile: str | None, requirements: str | None, plugins: Any) -> Any:
    from readiness.judge.requirements import ProfileError, load_profile

    if profile and requirements:
        raise click.UsageError("give --profile or --requirements, not both")
    try:
        return load_profile(profile, requirements, checks=plugins.checks, broken=plugins.broken)
    except ProfileError as exc:
        fail(str(exc))


def _output_dir(path: str | None) -> Path:
    """The folder for results: the given one, or a per-user data folder; proven writable now,
    before minutes of measuring, so an unwritable share loses nothing."""
    if path:
        folder = Path(path).expanduser()
    else:
        from platformdirs import user_data_path

        folder = user_data_path("readiness", appauthor=False) / "results"
    from readiness.atomic import probe_writable

    try:
        probe_writable(folder)
    except OSError as exc:
        fail(f"cannot write results to {folder}: {exc.strerror or exc}. Choose another folder with --output-dir.")
    return folder


def _parse_sets(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--set CHECK.KEY=VALUE``; the value is read as TOML (numbers, true/false, "text", [lists]).
    Validated with the rest of the configuration (``config.load_config``)."""
    from readiness.judge.requirements import tomllib

    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, eq, raw = item.partition("=")
        cname, dot, skey = key.strip().partition(".")
        if not eq or not dot or not skey:
            raise click.BadParameter(f"'{item}' is not CHECK.KEY=VALUE", param_hint="--set")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # plain text without quotes
        out.setdefault(cname, {})[skey] = value
    return out


def _config(ctx: click.Context, names: tuple[str, ...], config_file: str | None, sets: tuple[str, ...] = (),
            plugins: Any = None, interactive: bool = False) -> Any:
    """The run configuration from files, environment and what was typed (only options the user
    gave on the command line count as command-line values); a wrong value anywhere exits 2."""
    from click.core import ParameterSource

    from readiness.run.config import ConfigError, load_config

    typed = {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
    try:
        return load_config(typed, _parse_sets(sets), checks=plugins.checks if plugins else None,
                           broken=plugins.broken if plugins else None, config_file=config_file,
                           warn=lambda m: click.echo(f"warning: {m}", err=True), interactive=interactive)
    except ConfigError as exc:
        fail(str(exc))


class _Group(click.Group):
    """Turns an unexpected exception into one plain line and exit code 2 (READINESS_DEBUG=1 shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        import signal

        _tolerant_streams()

        def terminated(_signum: int, _frame: Any) -> None:
            raise Terminated()

        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, terminated)  # stop as Ctrl-C does: children ended, files whole or absent
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt as exc:
            session = sys.modules.get("readiness.run.session")  # imported only when a run started
            written = list(getattr(session, "WRITTEN", []))
            if written:
                click.echo(terminal_text(f"readiness: interrupted; already written: {', '.join(map(str, written))}"), err=True)
            else:
                click.echo("readiness: interrupted; nothing was written for this run", err=True)
            sys.exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - last line of defence for the user
            if os.environ.get("READINESS_DEBUG") == "1":
                raise
            click.echo(f"readiness: internal error: {type(exc).__name__}: {exc} "
                       "(set READINESS_DEBUG=1 to see where)", err=True)
            sys.exit(EXIT_ERROR)


def _tolerant_streams() -> None:
    """Characters the console's encoding cannot show are replaced, never an exception."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass


def _quiet_broken_pipe() -> NoReturn:
    """The reader went away (``| head -1``): stop writing, say nothing, exit as a Unix tool does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(141)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="readiness")
def main() -> None:
    """Is this computer or meeting room ready for video meetings? If not, what to fix.

    \b
    Quick start:
      readiness run                    check this computer against the default profile
      readiness run --profile meeting-room --room 4.12 --site Stockholm \\
                    --output-dir //share/readiness --quiet
      readiness report RESULT.json --profile meeting-room
      readiness aggregate //share/readiness -o fleet.html --csv fleet.csv
      readiness schedule install --daily --at 06:30 --random-delay 30m --system
      readiness config show            the settings from files and READINESS_* variables

    Exit codes of run and report: 0 ready, 1 not ready, 2 usage, configuration or internal
    error, 3 partial: no fault found in what was checked, but not every check the profile
    needs ran (--check); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    """


# --- run ------------------------------------------------------------------------------------


_CONFIG_OPTIONS = ("profile", "requirements", "label", "site", "room", "output_dir", "lang", "quiet", "server", "proxy", "pac_url",
                   "microphone", "speaker", "camera", "no_sound", "keep_audio", "snapshot", "jitter", "upload_url",
                   "token_file")


def _config_option(fn: Any) -> Any:
    return click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
                        help="Read settings from this TOML file too (above the user and system files).")(fn)


@main.command()
@click.option("--profile", "-p", metavar="NAME", help="Shipped requirement list (see `readiness profiles`). Default: video-call.")
@click.option("--requirements", "-r", metavar="FILE", help="Your own requirement list (TOML).")
@click.option("--check", "-c", "only", metavar="NAME", multiple=True, help="Run only this check (repeatable); the verdict is then partial (exit 3 when no fault is found).")
@click.option("--label", help="A free label for this run, e.g. an asset tag.")
@click.option("--site", help="Site or office, e.g. Stockholm.")
@click.option("--room", help="Meeting room, e.g. 4.12.")
@click.option("--output-dir", "-o", metavar="DIR", help="Where the JSON and HTML go (default: a per-user data folder).")
@click.option("--lang", metavar="|".join(LANGS), help="Language of the report (default: en).")
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON on stdout instead of the summary.")
@click.option("--open/--no-open", "open_report", default=None, help="Open the report in the browser (default: when run interactively).")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary; the exit code tells.")
@click.option("--server", metavar="URL", help="Your organization's `readiness serve` for the network checks.")
@click.option("--proxy", metavar="URL|direct", help="Proxy for the web checks and uploads (default: the OS's settings, PAC included).")
@click.option("--pac-url", metavar="URL", help="Proxy auto-configuration file to use instead of the OS's.")
@click.option("--upload-url", metavar="URL", help="Collector URL results are sent to (as configured).")
@click.option("--token-file", metavar="FILE", help="File holding the upload token.")
@click.option("--microphone", metavar="NAME", help="Microphone to test (part of its name).")
@click.option("--speaker", metavar="NAME", help="Speaker to test (part of its name).")
@click.option("--camera", metavar="NAME|INDEX|URL", help="Camera to test: part of its name, its index, or a stream URL.")
@click.option("--no-sound/--sound", default=False, help="Play no test sound (a room in use).")
@click.option("--interactive", "-i", is_flag=True, help="Ask you to speak and to confirm you heard the tone.")
@click.option("--keep-audio/--no-keep-audio", default=False, help="Save the microphone recording beside the result.")
@click.option("--snapshot/--no-snapshot", default=False, help="Put one small camera picture in the report.")
@click.option("--jitter", metavar="DURATION", help="First wait a random time up to this long (e.g. 15m), so many rooms do not start at once.")
@click.option("--set", "sets", metavar="CHECK.KEY=VALUE", multiple=True, help="Override a check setting, e.g. latency.duration_s=10.")
@_config_option
@click.pass_context
def run(ctx: click.Context, only: tuple[str, ...], as_json: bool, open_report: bool | None, interactive: bool,
        sets: tuple[str, ...], config_file: str | None, **_typed: Any) -> None:
    """Measure this computer and judge it against a requirement list.

    Writes a result (JSON) and a report (HTML) into the output folder and prints a summary.
    Settings also come from configuration files and READINESS_* variables (see `readiness
    config show`); what is typed here wins.
    """
    from readiness.run.session import RunOptions, WriteError, run_session

    plugins = _plugins()
    cfg = _config(ctx, _CONFIG_OPTIONS, config_file, sets, plugins, interactive=interactive)
    quiet = cfg.quiet
    _warn_plugins(plugins, quiet)
    prof = _profile(cfg.profile, str(cfg.requirements) if cfg.requirements else None, plugins)
    unknown = [c for c in only if c not in plugins.checks and c not in plugins.broken]
    if unknown:
        raise click.BadParameter(f"no check named {', '.join(unknown)} (installed: {', '.join(sorted(plugins.checks))})", param_hint="--check")
    folder = _output_dir(str(cfg.output_dir) if cfg.output_dir else None)
    if cfg.upload_url:  # a missing token or a bad URL is said now, not after minutes of measuring
        from readiness.unattended.upload import UploadError, read_token, results_url

        try:
            read_token(str(cfg.token_file) if cfg.token_file else None)
            results_url(cfg.upload_url)
        except UploadError as exc:
            fail(str(exc))
    _wait_jitter(cfg.jitter, quiet)  # before the first request to a server: that is what it spreads
    if cfg.server:
        import dataclasses

        cfg = dataclasses.replace(cfg, server=_checked_server(cfg.server))
    interactive_tty = sys.stdout.isatty() and sys.stdin.isatty()
    if open_report is None:
        open_report = interactive_tty and not as_json and not quiet
    opts = RunOptions(profile=prof, only=list(only), labels=cfg.labels, options=cfg.choices(folder),
                      overrides=cfg.checks, output_dir=folder, lang=cfg.lang)
    try:
        outcome = run_session(opts, plugins, progress=None if quiet else _progress_printer())
    except WriteError as exc:
        fail(str(exc))
    if as_json:
        click.echo(outcome.result.to_json(), nl=False)
    elif not quiet:
        click.echo(terminal_text(outcome.summary(cfg.lang)))
    if open_report and outcome.html_path is not None:
        import webbrowser

        webbrowser.open(outcome.html_path.resolve().as_uri())
    code = outcome.exit_code
    if cfg.upload_url and outcome.json_path is not None:
        from readiness.measure.proxies import ProxyResolver

        # the local files are written; the result now goes through the spool (kept until stored).
        # The exit code is this run's: its verdict, or an error when its own upload was refused.
        if _send_spool(cfg.upload_url, str(cfg.token_file) if cfg.token_file else None, None,
                       (str(outcome.json_path),), attempts=3, quiet=quiet,
                       resolver=ProxyResolver(proxy=cfg.proxy, pac_url=cfg.pac_url), lang=cfg.lang,
                       own=outcome.result.run_id, summary=not (quiet or as_json)):
            code = EXIT_ERROR
    sys.exit(code)


def _wait_jitter(limit_s: float, quiet: bool) -> None:
    """Sleep a random part of ``limit_s`` so that many scheduled agents spread their load."""
    if limit_s <= 0:
        return
    import random
    import time

    wait = random.uniform(0, limit_s)
    if not quiet:
        click.echo(f"  waiting {wait:.0f} s first (--jitter {limit_s:g} s)", err=True)
    time.sleep(wait)


def _checked_server(url: str) -> str:
    """``--server``, proven to be a readiness serve before minutes of measuring (exit 2 if not)."""
    from readiness.run.target import ServerError, check_server

    try:
        return check_server(url)
    except ServerError as exc:
        fail(str(exc))


def _progress_printer() -> Any:
    def show(check: str, message: str) -> None:
        click.echo(terminal_text(f"  {check}: {message}"), err=True)

    return show


# --- config -------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """The configuration: files, READINESS_* variables and their effect."""


@config_group.command("show")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
def config_show(config_file: str | None, as_json: bool) -> None:
    """Print the effective configuration and where each value came from.

    Sources, lowest first: built-in defaults, the system file, the user file, --config FILE
    (or READINESS_CONFIG), READINESS_<SETTING> variables (check settings:
    READINESS_CHECKS__<CHECK>__<SETTING>), the command line. A wrong value exits 2.
    """
    import json

    plugins = _plugins()
    _warn_plugins(plugins)
    cfg = _config(click.get_current_context(), (), config_file, (), plugins)
    rows = cfg.rows()
    if as_json:
        click.echo(json.dumps({"files": [{"path": p, "exists": e} for p, e in cfg.files],
                               "settings": [{"name": n, "value": v, "source": src} for n, v, src in rows]},
                              indent=2, ensure_ascii=False, default=str))
        return
    for path, exists in cfg.files:
        click.echo(f"# {'read' if exists else 'not present'}: {path}")
    width = max(len(n) for n, _, _ in rows)
    for name, value, src in rows:
        shown = "(not set)" if value is None else json.dumps(value, ensure_ascii=False, default=str)
        click.echo(terminal_text(f"{name:<{width}} = {shown}    # {src}"))


# --- schedule -----------------------------------------------------------------------------


@main.group("schedule")
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
    from readiness.run.config import parse_duration
    from readiness.unattended.schedule import Plan, ScheduleError, artifacts, commands, default_via, install, parse_at

    try:
        hour, minute = parse_at(at)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    try:
        delay = round(parse_duration(random_delay))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--random-delay") from None
    try:  # the options for the run are checked now, not at 07:30 in a log nobody reads
        run.make_context("run", ["--no-open", *run_args])
    except click.UsageError as exc:
        fail(f"options after --: {exc.format_message()}")
    plan = Plan(every=every, hour=hour, minute=minute, random_delay_s=delay, run_args=tuple(run_args),
                system=system, via=via or default_via())
    if just_print:
        for art in artifacts(plan):
            click.echo(f"# --- {art.path}")
            click.echo(art.text, nl=not art.text.endswith("\n"))
        cmds = commands(plan.via, plan.system, "install")
        if cmds:
            import shlex
            import subprocess

            join = subprocess.list2cmdline if plan.via == "windows" else shlex.join  # each OS's own quoting
            click.echo("# --- then: " + "; ".join(join(c) for c in cmds))
        return
    try:
        for line in install(plan):
            click.echo(line)
    except ScheduleError as exc:
        fail(str(exc))


@schedule_group.command("status")
@_scope_options
def schedule_status(via: str | None, system: bool) -> None:
    """Say whether the scheduled run is installed, and what the scheduler knows of it. Exit 1 if not."""
    from readiness.unattended.schedule import ScheduleError, default_via, status

    try:
        installed, said = status(via or default_via(), system)
    except ScheduleError as exc:
        fail(str(exc))
    click.echo(("installed" if installed else "not installed") + (f"\n{said}" if said else ""))
    sys.exit(0 if installed else 1)


@schedule_group.command("remove")
@_scope_options
def schedule_remove(via: str | None, system: bool) -> None:
    """Remove the scheduled run (nothing happens if there is none)."""
    from readiness.unattended.schedule import ScheduleError, default_via, remove

    try:
        for line in remove(via or default_via(), system):
            click.echo(line)
    except ScheduleError as exc:
        fail(str(exc))


# --- report ---------------------------------------------------------------------------------


@main.command()
@click.argument("result_file", metavar="RESULT.json", type=click.Path(dir_okay=False))
@click.option("--profile", "-p", metavar="NAME", help="Judge again against this shipped profile.")
@click.option("--requirements", "-r", metavar="FILE", type=click.Path(dir_okay=False), help="Judge again against your own list.")
@click.option("--output", "-o", "out", metavar="OUT.html", type=click.Path(dir_okay=False), help="Where to write the report (default: beside the result).")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, help="Language of the report.")
@click.option("--json", "as_json", is_flag=True, help="Print the judgement as JSON on stdout.")
@click.option("--open/--no-open", "open_report", default=False, help="Open the report in the browser.")
def report(result_file: str, profile: str | None, requirements: str | None, out: str | None, lang: str,
           as_json: bool, open_report: bool) -> None:
    """Judge a saved result again, without measuring, and write its report.

    Without --profile/--requirements the result is judged against the profile it ran with
    (the judgement stored in it). Exit code as for `run`.
    """
    import json

    from readiness.judge.verdicts import Judgement, exit_code, judge
    from readiness.render.report import summary_text
    from readiness.render.writers import RUN_WRITERS, RunDocument, render, write_atomic
    from readiness.result import ResultError, read_result

    try:
        result = read_result(result_file)
    except ResultError as exc:
        fail(str(exc))
    target = Path(out) if out else Path(result_file).with_suffix(".html")
    _refuse_overwriting_inputs([(target, "--output" if out else "the report")], [result_file, requirements])
    try:
        if profile or requirements:
            plugins = _plugins()
            prof = _profile(profile, requirements, plugins)
            judgement = judge(result, prof, only_checks=set(result.checks))
        elif result.judgement:
            judgement = Judgement.from_dict(result.judgement)
        else:
            fail(f"{result_file}: holds no judgement; give --profile or --requirements")
        html = render(RUN_WRITERS, "html", RunDocument(result, judgement, lang))
    except (click.ClickException, click.exceptions.Exit):
        raise
    except Exception as exc:  # noqa: BLE001 - a document that passed the schema and still breaks: name it
        if os.environ.get("READINESS_DEBUG") == "1":
            raise
        fail(f"{result_file}: cannot be reported ({type(exc).__name__}: {exc})")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, html)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror or exc}")
    if as_json:
        click.echo(json.dumps(judgement.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(terminal_text(summary_text(result, judgement, lang, [target])))
    if open_report:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())
    sys.exit(exit_code(judgement))


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def _refuse_overwriting_inputs(outputs: list[tuple[Path, str]], inputs: list[Any]) -> None:
    """No output may replace an input of the same command, nor another output."""
    given = [i for i in inputs if i]
    for n, (target, what) in enumerate(outputs):
        for source in given:
            if _same_file(target, source):
                fail(f"{what} {target} is an input of this command ({source}); it would be replaced. "
                     "Choose another file.")
        for other, other_what in outputs[:n]:
            if _same_file(target, other):
                fail(f"{what} and {other_what} are the same file ({target}); choose two files.")


# --- listings -------------------------------------------------------------------------------


@main.command("checks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
def list_checks(as_json: bool) -> None:
    """List the installed checks and the metrics (name, unit) each provides."""
    import json

    plugins = _plugins()
    _warn_plugins(plugins)
    rows = []
    for name, cls in sorted(plugins.checks.items()):
        rows.append({"name": name, "title": cls.title, "description": cls.description, "isolated": cls.isolated,
                     "budget_s": cls.budget_s,
                     "metrics": [{"name": f"{name}.{m.name}", "unit": m.unit, "kind": m.kind, "description": m.description} for m in cls.metrics],
                     "settings": {k: {"default": s.default, "help": s.help} for k, s in cls.settings.items()}})
    if as_json:
        click.echo(json.dumps({"checks": rows, "warnings": plugins.warnings}, indent=2, default=str))
        return
    for row in rows:
        click.echo(f"{row['name']} — {row['title']}" + ("  (runs in its own process)" if row["isolated"] else ""))
        for m in row["metrics"]:
            unit = f" [{m['unit']}]" if m["unit"] else {"bool": " [yes/no]", "version": " [version]"}.get(m["kind"], "")
            click.echo(f"    {m['name']}{unit}  {m['description']}")
        for key, s in row["settings"].items():
            click.echo(f"    setting {key} = {s['default']!r}  {s['help']}")


@main.command("profiles")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list.")
@click.option("--show", metavar="NAME", help="Print one shipped profile's TOML (a start for your own).")
def list_profiles(as_json: bool, show: str | None) -> None:
    """List the shipped requirement lists."""
    import json

    from readiness.judge.requirements import DEFAULT_PROFILE, shipped_profiles

    shipped = shipped_profiles()
    if show:
        if show not in shipped:
            fail(f"no shipped profile '{show}' (shipped: {', '.join(shipped)})")
        click.echo(shipped[show], nl=False)
        return
    plugins = _plugins()
    rows = []
    for name in shipped:
        prof = _profile(name, None, plugins)
        rows.append({"name": name, "title": prof.title, "description": prof.description, "default": name == DEFAULT_PROFILE,
                     "requirements": len(prof.requirements), "checks": prof.checks()})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{mark} — {r['title']}: {r['requirements']} requirements; checks: {', '.join(r['checks'])}")
        if r["description"]:
            click.echo(f"    {r['description']}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable inventory.")
@click.option("--timeout", type=Finite(0.1, 3600), default=15.0, show_default=True, help="Seconds before device enumeration is given up.")
def devices(as_json: bool, timeout: float) -> None:
    """List microphones, speakers and cameras, and which are the defaults."""
    import json

    try:
        from readiness.measure.devices import format_text, inventory
    except ImportError as exc:
        fail(f"device listing is not available: {exc}")
    inv = inventory(timeout_s=timeout)
    click.echo(json.dumps(inv, indent=2, ensure_ascii=False) if as_json else format_text(inv))


DB_ENV = "READINESS_DB"


def _store(url: str | None, create: bool) -> Any:
    """The collector's database; ``create``: make or upgrade its schema (the server, token
    commands), else it must exist already (readers)."""
    if not url:
        fail(f"give the collector's database: --db URL or {DB_ENV} (sqlite:///PATH/readiness.db or postgresql://...)")
    try:
        from readiness.collector.store import Store, StoreError, Unavailable
    except ImportError as exc:
        fail(f"the collector needs the server extra: pip install 'readiness[server]' ({exc})")
    try:
        store = Store(url, create=create)
        store.migrate() if create else store.require_schema()
    except (StoreError, Unavailable) as exc:
        fail(str(exc))
    return store


_DB_OPTION = click.option("--db", "db_url", metavar="URL", envvar=DB_ENV, show_envvar=True,
                          help="The collector's database: sqlite:///PATH/readiness.db or postgresql://USER@HOST/DB.")


@main.group(invoke_without_command=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--http-port", type=PORT, default=8080, show_default=True, help="TCP port of the bandwidth endpoints.")
@click.option("--stun-port", type=PORT, default=3478, show_default=True, help="UDP port of the STUN responder.")
@click.option("--max-mb", type=Finite(0.001, 1e6), default=256.0, show_default=True, help="Largest transfer per request, MB.")
@click.option("--max-transfers", type=click.IntRange(1, 10000), default=16, show_default=True, help="Transfers served at once (one client gets at most half).")
@click.option("--max-connections", type=click.IntRange(1, 100000), default=256, show_default=True, help="Open connections at once (one client gets at most an eighth).")
@click.option("--timeout", type=Finite(0.1, 3600), default=10.0, show_default=True, help="Drop a connection silent this long, or whose request headers take longer, seconds.")
@click.option("--max-seconds", type=Finite(0.1, 86400), default=30.0, show_default=True, help="Longest a single request may run, seconds.")
@click.option("--tls-cert", metavar="FILE", type=click.Path(dir_okay=False), help="Serve HTTPS with this certificate (PEM, chain included).")
@click.option("--tls-key", metavar="FILE", type=click.Path(dir_okay=False), help="The certificate's private key (PEM), if not in --tls-cert.")
@_DB_OPTION
@click.option("--public-read", is_flag=True, help="With --db: let any machine read /fleet, /runs, /api/v1/fleet and /metrics (else: this machine, or a read token).")
@click.option("--keep-days", type=click.IntRange(1, 36500), default=400, show_default=True, help="Prune results older than this: the self-test page's results and reports in --results-dir, and with --db the database (each room's newest run and newest result per check stay; browser self-tests go by age).")
@click.option("--max-upload-mb", type=Finite(0.01, 64), default=8.0, show_default=True, help="With --db: largest result accepted, MB.")
@click.option("--ingest-workers", type=click.IntRange(0, 64), default=None, help="With --db: processes checking uploads (default: one per CPU when there are several; 0: in the server process).")
@click.option("--results-dir", metavar="DIR", default="readiness-results", show_default=True, type=click.Path(file_okay=False), help="Where the self-test page's results and reports are stored.")
@click.pass_context
def serve(ctx: click.Context, host: str, http_port: int, stun_port: int, max_mb: float, max_transfers: int,
          max_connections: int, timeout: float, max_seconds: float, tls_cert: str | None, tls_key: str | None,
          results_dir: str, db_url: str | None, public_read: bool, keep_days: int, max_upload_mb: float,
          ingest_workers: int | None) -> None:
    """Run a measurement server for your site: bandwidth endpoints, a STUN responder and the self-test page.

    GET /__down?bytes=N and POST /__up (as Cloudflare's speed test), GET /__info, and STUN on
    UDP. Point clients at it with `readiness run --server http://HOST:PORT`. People without the
    agent open https://HOST:PORT/ in a browser (?profile=NAME, ?lang=sv, ?site=…&room=…; browsers
    allow the camera only over HTTPS, see --tls-cert): the page measures what a browser can, and
    its results go to --results-dir. Ctrl-C stops it.

    With --db it also collects: agents upload to POST /api/v1/results (a site's upload token,
    see `readiness serve token add`), and /fleet, /runs/ID, /api/v1/fleet and /metrics show
    the live fleet from the database. The self-test page's results go in only when the page was
    opened with the site's link (?site=NAME&key=TOKEN, see `readiness serve token add --link`).
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        from readiness.selftest.web import SelfTest
        from readiness.server.http import tls_context
        from readiness.server.measure import run_server
    except ImportError as exc:
        fail(f"the measurement server is not available: {exc}")
    if tls_key and not tls_cert:
        raise click.BadParameter("give the certificate too", param_hint="--tls-cert")
    ssl_context = None
    if tls_cert:
        import ssl

        try:
            ssl_context = tls_context(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            fail(f"cannot use {tls_cert}{' and ' + tls_key if tls_key else ''} for TLS: "
                 f"{getattr(exc, 'strerror', None) or getattr(exc, 'reason', None) or exc}")
    from readiness.atomic import probe_writable

    folder = Path(results_dir).expanduser()
    try:
        probe_writable(folder)
    except OSError as exc:
        fail(f"cannot store self-test results in {folder}: {exc.strerror or exc}. Choose another folder with --results-dir.")
    import threading
    from datetime import timedelta

    from readiness.server.http import log

    routes: list[Any] = []
    collect = None
    collector = None
    if db_url:
        from readiness.collector.http import Collector
        from readiness.collector.links import collect_page_result
        from readiness.collector.store import redacted

        store = _store(db_url, create=True)
        if ingest_workers is None:
            ingest_workers = n if (n := os.cpu_count() or 1) > 1 else 0
        collector = Collector(store, public_read=public_read, max_body=int(max_upload_mb * 1e6), log=log,
                              workers=ingest_workers)
        if collector.checker is not None:
            collector.checker.warm()
        routes = collector.routes()

        def collect(body: bytes, site: str, key: str) -> str | None:  # the page's results, with a site link
            return collect_page_result(store, body, site, key, collector.max_body, collector.checker)

        log(f"collecting into {redacted(db_url)}; reading from {'anywhere' if public_read else 'this machine or with a read token'}; "
            f"results older than {keep_days} days are pruned")
        if ssl_context is None and host not in ("127.0.0.1", "::1", "localhost"):
            log("warning: upload tokens cross the network in clear without --tls-cert/--tls-key "
                "(or a reverse proxy that terminates TLS in front of this server)")
    page = SelfTest(folder, collect=collect)
    keep = timedelta(days=keep_days)
    stopping = threading.Event()

    def retention() -> None:  # now, then every hour
        while True:
            if n := page.prune(keep.total_seconds()):
                log(f"retention: deleted {n} self-test results and reports older than {keep_days} days from {folder}")
            if collector is not None:
                collector.prune(keep)
            if stopping.wait(3600.0):
                return

    threading.Thread(target=retention, daemon=True, name="retention").start()
    try:
        code = run_server(host=host, http_port=http_port, stun_port=stun_port, ssl_context=ssl_context,
                          max_bytes=int(max_mb * 1e6), max_transfers=max_transfers, max_connections=max_connections,
                          idle_timeout_s=timeout, max_request_s=max_seconds, routes=[*routes, *page.routes()])
    finally:
        page.close()
        stopping.set()
    sys.exit(code)


@main.command()
@click.argument("paths", metavar="[PATH...]", nargs=-1, type=click.Path())
@click.option("--db", "db_url", metavar="URL", help="Read the results from a collector's database instead of files (sqlite:///PATH or postgresql://...).")
@click.option("--output", "-o", "out", metavar="OUT.html", default="fleet.html", show_default=True, type=click.Path(dir_okay=False), help="Where to write the fleet report.")
@click.option("--csv", "csv_path", metavar="FILE.csv", type=click.Path(dir_okay=False), help="Also write one row per computer/room (or run) for a spreadsheet.")
@click.option("--json", "json_path", metavar="FILE.json", type=click.Path(dir_okay=False), help="Also write the aggregate figures as JSON ('-' for stdout).")
@click.option("--profile", "-p", metavar="NAME", help="Judge every result again against this shipped profile.")
@click.option("--requirements", "-r", metavar="FILE", type=click.Path(dir_okay=False), help="Judge every result again against your own list.")
@click.option("--all-runs", is_flag=True, help="Keep every run, not only the latest per computer or room.")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, help="Language of the report.")
@click.option("--max-rows", default=500, show_default=True, type=click.IntRange(min=0), help="Rows of the per-computer table in the HTML (the CSV has all).")
@click.option("--sections-csv", "sections_csv", metavar="FILE.csv", type=click.Path(dir_okay=False), help="Also write the step-5 sections and the action list as one long table.")
@click.option("--partner", "partners", metavar="SITE", multiple=True, help="A site label of a partner organisation (repeatable); browser self-tests from sites no agent measured count as partners too.")
def aggregate(paths: tuple[str, ...], db_url: str | None, out: str, csv_path: str | None, json_path: str | None,
              profile: str | None, requirements: str | None, all_runs: bool, lang: str, max_rows: int,
              sections_csv: str | None, partners: tuple[str, ...]) -> None:
    """One fleet report from many results; folders are searched for *.json recursively.

    With --db URL the results come from a collector's database (`readiness serve --db`): the
    same report as over the same results as files.

    By default each computer (or room, when a room label is set) counts with the latest
    measurement of each check, as judged when it ran, so a later partial run (--check system)
    cannot hide an earlier failure; --profile/--requirements judge every result again. Files that are not
    readable results are skipped and listed, in the report and here. Exit code 0 when the
    report was written from at least one result; 2 when no readable result was found (a
    missing or empty folder): the report is still written and says so. Missing folders in
    -o/--csv/--json are created.
    """
    import json

    from readiness.fleet import collect, figures
    from readiness.fleet.page import FLEET_WRITERS, FleetDocument
    from readiness.render.writers import write

    if bool(paths) == bool(db_url):
        raise click.UsageError("give the result folders or files (PATH...), or --db URL")
    prof = None
    if profile or requirements:
        plugins = _plugins()
        _warn_plugins(plugins)
        prof = _profile(profile, requirements, plugins)

    outputs = [(Path(out), "--output")] + ([(Path(csv_path), "--csv")] if csv_path else []) \
        + ([(Path(json_path), "--json")] if json_path and json_path != "-" else [])
    folders = [p for p in paths if os.path.isdir(p)]
    _refuse_overwriting_inputs(outputs, [*(p for p in paths if p not in folders), requirements])
    for target, what in outputs:
        if target.suffix.lower() == ".json" and target.exists():
            inside = [f for f in folders if Path(os.path.realpath(target)).is_relative_to(os.path.realpath(f))]
            if inside:
                fail(f"{what} {target} is in {inside[0]}, whose results are the input; it would be replaced. "
                     "Choose another file.")

    def show_skip(s: Any) -> None:
        click.echo(terminal_text(f"skipped: {s.path}: {s.reason}"), err=True)

    from readiness.fleet import gc_paused

    with gc_paused():
        if db_url:
            from readiness.collector.fleetdb import build_fleet
            from readiness.collector.store import Unavailable, redacted

            try:
                fleet = build_fleet(_store(db_url, create=False), profile=prof, all_runs=all_runs, on_skip=show_skip,
                                    workers=None)
            except Unavailable as exc:
                fail(str(exc))
            source = redacted(db_url)
        else:
            fleet = collect(paths, profile=prof, all_runs=all_runs, on_skip=show_skip)
            source = ", ".join(paths)
        figs = figures(fleet, lang, partners)
    to_stdout = json_path == "-"
    doc = FleetDocument(fleet, figs, lang, Path(out), max_rows)
    targets = [("html", Path(out))]
    if csv_path:
        targets.append(("csv", Path(csv_path)))
    if sections_csv:
        targets.append(("sections_csv", Path(sections_csv)))
    if json_path and not to_stdout:
        targets.append(("json", Path(json_path)))
    for name, target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)  # as `run` creates its folder
            write(FLEET_WRITERS, name, doc, target)
        except OSError as exc:
            fail(f"cannot write {target}: {exc.strerror or exc}")
    from readiness.i18n.format import word

    c = figs["counts"]
    done_key = ("aggregate_done_runs" if all_runs else "aggregate_done") + ("_db" if db_url else "")
    click.echo(terminal_text(word(lang, done_key, files=fleet.results_read, skipped=len(fleet.skipped), total=c["total"],
                                  ready=c["ready"], not_ready=c["not_ready"], unknown=c["unknown"])), err=to_stdout)
    for _, target in targets:
        click.echo(terminal_text(word(lang, "wrote", path=str(target))), err=to_stdout)
    if to_stdout:
        click.echo(json.dumps(figs, indent=2, ensure_ascii=False))
    if not fleet.runs:
        fail(f"no readable results were found in {source} (the report says so; nothing to aggregate)")


# --- collection: tokens, upload --------------------------------------------------------------


@serve.group("token")
def token_group() -> None:
    """Upload tokens (one per site), site links for the self-test page and read tokens for the collector."""


@token_group.command("add")
@_DB_OPTION
@click.option("--site", metavar="NAME", help="The site this upload token (or site link) submits results for (as agents label it with --site).")
@click.option("--read", "read_token", is_flag=True, help="A read token instead (fleet page, API and /metrics from other machines).")
@click.option("--link", is_flag=True, help="A site link instead: the self-test page opened with it puts that site's browser results into the database.")
@click.option("--base-url", metavar="URL", help="With --link: the server's address as people reach it (https://HOST:PORT), to print the whole link.")
def token_add(db_url: str | None, site: str | None, read_token: bool, link: bool, base_url: str | None) -> None:
    """Create a token and print it once (only its hash is kept).

    An upload token (--site NAME) lets that site's agents upload; a site link (--link --site NAME)
    lets browser self-test results labelled NAME in; a read token (--read) reads the fleet.
    """
    if read_token and link:
        raise click.UsageError("give --read or --link, not both")
    if link and not site:
        fail("a site link needs the site it is for: give --site NAME")
    if read_token == bool(site):
        raise click.UsageError("give --site NAME for an upload token, or --read for a read token")
    if base_url is not None and not link:
        raise click.UsageError("--base-url goes with --link")
    import re

    base = (base_url or "").strip().rstrip("/")
    if base_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base):
        raise click.BadParameter("an address such as https://test.example.org:8443", param_hint="--base-url")
    site = (site or "").strip()
    if len(site) > 200 or not site and not read_token:
        raise click.BadParameter("a site name of 1 to 200 characters", param_hint="--site")
    from readiness.collector.store import Unavailable

    store = _store(db_url, create=True)
    try:
        tok, secret = store.add_token("read" if read_token else "link" if link else "upload", site)
    except Unavailable as exc:
        fail(str(exc))
    if read_token:
        click.echo(f"New read token (id {tok.id}), shown only now: give it as 'Authorization: Bearer TOKEN' "
                   "(Prometheus: authorization.credentials) to read from other machines.", err=True)
    elif link:
        from urllib.parse import urlencode

        click.echo(f"New site link for site {site!r} (id {tok.id}), shown only now: send people of that site the "
                   f"self-test page's address with this ending; their results then go into the database.", err=True)
        click.echo(f"{base}/?{urlencode({'site': site, 'key': secret})}", err=True)
    else:
        click.echo(f"New upload token for site {site!r} (id {tok.id}), shown only now: put it in a file on that "
                   "site's agents (readiness run --token-file FILE).", err=True)
    click.echo(secret)


@token_group.command("list")
@_DB_OPTION
def token_list(db_url: str | None) -> None:
    """List tokens: id, kind, site, first characters, created, revoked."""
    from readiness.collector.store import Unavailable

    store = _store(db_url, create=False)
    try:
        rows = store.list_tokens()
    except Unavailable as exc:
        fail(str(exc))
    for t in rows:
        state = f"revoked {t.revoked:%Y-%m-%d %H:%M}Z" if t.revoked else "live"
        click.echo(f"{t.id:>4}  {t.kind:6}  {t.hint}…  created {t.created:%Y-%m-%d %H:%M}Z  {state}  {t.site}")
    if not rows:
        click.echo("no tokens yet (readiness serve token add --site NAME)", err=True)


@token_group.command("revoke")
@_DB_OPTION
@click.argument("token_id", metavar="[ID]", required=False, type=click.IntRange(1))
@click.option("--site", metavar="NAME", help="Revoke every upload token and site link of this site.")
def token_revoke(db_url: str | None, token_id: int | None, site: str | None) -> None:
    """Revoke a token by its id (see `token list`), or all upload tokens and site links of a site."""
    if (token_id is None) == (site is None):
        raise click.UsageError("give a token ID or --site NAME")
    from readiness.collector.store import Unavailable

    store = _store(db_url, create=False)
    try:
        n = store.revoke_tokens(token_id=token_id, site=site)
    except Unavailable as exc:
        fail(str(exc))
    if n == 0:
        fail("no live token matched; nothing revoked (see `readiness serve token list`)")
    click.echo(f"revoked {n} token{'s' if n != 1 else ''}; results sent with {'them' if n != 1 else 'it'} are not taken in from now on")


def _send_spool(url: str, token_file: str | None, spool: str | None, files: tuple[str, ...], attempts: int,
                quiet: bool = False, resolver: Any = None, lang: str = "en", own: str | None = None,
                summary: bool = False) -> int:
    """Spool ``files``, then send everything waiting; print what happened. With ``own`` (a run's
    id): its outcome goes in the run's summary (stdout when ``summary``), and the return is 1 when
    that upload failed, else 0; without: ``readiness upload``'s exit code."""
    from readiness.unattended import upload as up

    def say(message: str) -> None:
        if not quiet:
            click.echo(terminal_text(f"  upload: {message}"), err=True)

    try:
        token = up.read_token(token_file)
        folder = up.spool_dir(spool)
        for f in files:
            up.enqueue(f, folder)
        report = up.send_all(url, token, folder, attempts=attempts, log=say, resolver=resolver, lang=lang)
    except up.UploadError as exc:
        fail(str(exc))
    failed = False
    if own:
        line, outcome = up.own_line(report, own, url, folder, lang)
        failed = outcome in (up.QUARANTINED, up.HELD)
        if summary or outcome != up.STORED:
            click.echo(terminal_text(line), err=not summary)
    for line, problem in up.other_lines(report, url, folder, lang, skip_run=own):
        if problem or not quiet:
            click.echo(terminal_text(f"readiness: {line}"), err=True)
    note = up.quarantine_note(folder, lang)
    if note and not quiet:
        click.echo(terminal_text(f"readiness: {note}"), err=True)
    return int(failed) if own else report.exit_code


@main.command()
@click.argument("url", metavar="[URL]", required=False)
@click.argument("files", metavar="[RESULT.json...]", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--token-file", metavar="FILE", help="File holding the site's upload token (else $READINESS_UPLOAD_TOKEN or the configuration).")
@click.option("--spool-dir", metavar="DIR", help="Where results wait to be sent (default: a per-user state folder; $READINESS_SPOOL_DIR).")
@click.option("--attempts", type=click.IntRange(1, 20), default=5, show_default=True, help="Tries per result while the collector cannot be reached (waits grow, with jitter).")
@click.option("--proxy", metavar="URL|direct", help="Proxy for the upload (default: as `run`: the configuration, else the OS's settings, PAC included).")
@click.option("--pac-url", metavar="URL", help="Proxy auto-configuration file to use instead of the OS's.")
@click.option("--lang", metavar="|".join(LANGS), help="Language of the messages (default: the configuration's, else en).")
@click.option("--quarantined", "list_quarantined", is_flag=True, help="List the results set aside (refused by the collector, or not sendable) with their reasons; send nothing.")
@click.option("--drop-quarantined", is_flag=True, help="Delete the results set aside in quarantine; send nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Say only what went wrong.")
@_config_option
@click.pass_context
def upload(ctx: click.Context, url: str | None, files: tuple[str, ...], spool_dir: str | None, attempts: int, quiet: bool,
           list_quarantined: bool, drop_quarantined: bool, config_file: str | None, **_typed: Any) -> None:
    """Send every result waiting in the spool (and the RESULT files given) to a collector at URL
    (default: the configured upload_url).

    Newest first; a result leaves the spool only when the collector says it stored it (stored
    once, however often sent). A result the collector refuses (too large, not valid, another
    site's) is set aside in the spool's quarantine folder with its reason, and blocks nothing.
    A redirect is never followed. Exit code: 0 all sent, 1 some still wait (collector not
    reachable; run again later), 2 refused now (the reason is printed).
    """
    from readiness.measure.proxies import ProxyResolver
    from readiness.unattended import upload as up

    cfg = _config(ctx, ("proxy", "pac_url", "token_file", "lang"), config_file)
    if list_quarantined or drop_quarantined:
        folder = up.spool_dir(spool_dir)
        try:
            lines = up.quarantine_lines(folder, cfg.lang, drop=drop_quarantined)
        except up.UploadError as exc:
            fail(str(exc))
        for line in lines:
            click.echo(terminal_text(line))
        sys.exit(0)
    url = url or cfg.upload_url
    if not url:
        raise click.UsageError("give the collector's URL (or set upload_url in the configuration)")
    try:
        up.results_url(url)
    except up.UploadError as exc:
        fail(str(exc))
    sys.exit(_send_spool(url, str(cfg.token_file) if cfg.token_file else None, spool_dir, files, attempts, quiet,
                         resolver=ProxyResolver(proxy=cfg.proxy, pac_url=cfg.pac_url), lang=cfg.lang))


def entry() -> None:  # pragma: no cover - exercised through the console script
    main()


if __name__ == "__main__":  # pragma: no cover
    main()
