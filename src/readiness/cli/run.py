"""``readiness run``: measure this computer, judge it, write the result and report, and send it
to a collector when one is configured. Options are parsed here (through the configuration
table in ``readiness.run.config``); ``readiness.run.session.run_session`` does the run."""

from __future__ import annotations

import sys
from typing import Any

import click

from readiness.cli.common import (EXIT_ERROR, config_option, fail, load_checks, load_list, output_dir, setting_options,
                                  typed_config, warn_plugins)
from readiness.settings import SETTINGS
from readiness.cli.upload import send_spool
from readiness.textsafe import terminal_text

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


# the run settings a file or variable can also hold: what was typed of them joins the configuration
_CONFIG_OPTIONS = tuple(s.name for s in SETTINGS if s.config)


@click.command()
@setting_options
@click.option("--check", "-c", "only", metavar="NAME", multiple=True, help="Run only this check (repeatable); the verdict is then partial (exit 3 when no fault is found).")
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON on stdout instead of the summary.")
@click.option("--open/--no-open", "open_report", default=None, help="Open the report in the browser (default: when run interactively).")
@click.option("--set", "sets", metavar="CHECK.KEY=VALUE", multiple=True, help="Override a check setting, e.g. latency.duration_s=10.")
@config_option
@click.pass_context
def run(ctx: click.Context, only: tuple[str, ...], as_json: bool, open_report: bool | None, interactive: bool,
        sets: tuple[str, ...], config_file: str | None, **_typed: Any) -> None:
    """Measure this computer and judge it against a requirement list.

    Writes a result (JSON) and a report (HTML) into the output folder and prints a summary.
    Settings also come from configuration files and READINESS_* variables (see `readiness
    config show`); what is typed here wins.
    """
    from readiness.run.session import RunOptions, WriteError, run_session

    plugins = load_checks()
    cfg = typed_config(ctx, _CONFIG_OPTIONS, config_file, sets, plugins, interactive=interactive)
    quiet = cfg.quiet
    warn_plugins(plugins, quiet)
    prof = load_list(cfg.profile, str(cfg.requirements) if cfg.requirements else None, plugins, cfg.lang)
    unknown = [c for c in only if c not in plugins.checks and c not in plugins.broken]
    if unknown:
        from readiness.cli.usage import bad_value

        raise bad_value("--check", "no_check_named", names=", ".join(unknown), installed=", ".join(sorted(plugins.checks)))
    folder = output_dir(str(cfg.output_dir) if cfg.output_dir else None)
    if cfg.upload_url:  # a missing token or a bad URL is said now, not after minutes of measuring
        from readiness.unattended.upload import UploadError, collector_urls, read_token

        try:
            read_token(str(cfg.token_file) if cfg.token_file else None)
            collector_urls(cfg.upload_url)
        except UploadError as exc:
            fail(exc.text(cfg.lang))
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
        if send_spool(cfg.upload_url, str(cfg.token_file) if cfg.token_file else None, None,
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


def _checked_server(server: Any) -> Any:
    """``--server`` (a ``SiteServer``), proven to be a readiness serve before minutes of measuring,
    its STUN port learned (exit 2 if not)."""
    from readiness.run.target import ServerError, check_server

    try:
        return check_server(server)
    except ServerError as exc:
        fail(str(exc))


def _progress_printer() -> Any:
    def show(check: str, message: str) -> None:
        click.echo(terminal_text(f"  {check}: {message}"), err=True)

    return show
