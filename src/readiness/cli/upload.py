"""``readiness upload``: send the results waiting in the spool to a collector (``run`` sends its
own through :func:`send_spool` too), and list or drop the ones set aside in quarantine. The
logic and the words are in ``readiness.unattended.upload``; this module prints them."""

from __future__ import annotations

import sys
from typing import Any

import click

from readiness.cli.common import LANGS, config_option, fail, typed_config
from readiness.textsafe import terminal_text

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


def send_spool(url: str, token_file: str | None, spool: str | None, files: tuple[str, ...], attempts: int,
               quiet: bool = False, resolver: Any = None, lang: str = "en", own: str | None = None,
               summary: bool = False) -> int:
    """Spool ``files``, then send everything waiting; print what happened. With ``own`` (a run's
    id): its outcome goes in the run's summary (stdout when ``summary``), and the return is 1 when
    that upload failed, else 0; without: ``readiness upload``'s exit code."""
    from readiness.unattended import spool as spooling, upload as up

    def say(message: str) -> None:
        if not quiet:
            click.echo(terminal_text(f"  upload: {message}"), err=True)

    try:
        token = up.read_token(token_file)
        folder = spooling.spool_dir(spool)
        for f in files:
            spooling.enqueue(f, folder)
        report = up.send_all(url, token, folder, attempts=attempts, log=say, resolver=resolver, lang=lang)
    except up.UploadError as exc:
        fail(exc.text(lang))
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


@click.command()
@click.argument("url", metavar="[URL[,URL...]]", required=False)
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
@config_option
@click.pass_context
def upload(ctx: click.Context, url: str | None, files: tuple[str, ...], spool_dir: str | None, attempts: int, quiet: bool,
           list_quarantined: bool, drop_quarantined: bool, config_file: str | None, **_typed: Any) -> None:
    """Send every result waiting in the spool (and the RESULT files given) to a collector at URL
    (default: the configured upload_url).

    Several collectors (replicas on one database), separated by commas, are tried in order.

    Newest first; a result leaves the spool only when the collector says it stored it (stored
    once, however often sent). A result the collector refuses (too large, not valid, another
    site's) is set aside in the spool's quarantine folder with its reason, and blocks nothing.
    A redirect is never followed. Exit code: 0 all sent, 1 some still wait (collector not
    reachable; run again later), 2 refused now (the reason is printed).
    """
    from readiness.i18n.format import word
    from readiness.measure.proxies import ProxyResolver
    from readiness.unattended import spool as spooling, upload as up

    cfg = typed_config(ctx, ("proxy", "pac_url", "token_file", "lang"), config_file)
    if list_quarantined or drop_quarantined:
        folder = spooling.spool_dir(spool_dir)
        try:
            lines = up.quarantine_lines(folder, cfg.lang, drop=drop_quarantined)
        except up.UploadError as exc:
            fail(exc.text(cfg.lang))
        for line in lines:
            click.echo(terminal_text(line))
        sys.exit(0)
    url = url or cfg.upload_url
    if not url:
        fail(word(cfg.lang, "upload.err_no_url_configured"))
    try:
        up.collector_urls(url)
    except up.UploadError as exc:
        fail(exc.text(cfg.lang))
    sys.exit(send_spool(url, str(cfg.token_file) if cfg.token_file else None, spool_dir, files, attempts, quiet,
                        resolver=ProxyResolver(proxy=cfg.proxy, pac_url=cfg.pac_url), lang=cfg.lang))
