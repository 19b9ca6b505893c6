"""``readiness upload``: send the results waiting in the spool to a collector (``run`` sends its
own through :func:`send_spool` too)."""

from __future__ import annotations

import sys
from typing import Any

import click

from readiness.cli.common import fail

# The package is imported inside each command: `readiness --help` stays fast (numpy, OpenCV, Jinja2).


def send_spool(url: str, token_file: str | None, spool: str | None, files: tuple[str, ...], attempts: int,
                quiet: bool = False, resolver: Any = None) -> int:
    """Spool ``files``, then send everything waiting; print what happened; the exit code."""
    from readiness.unattended.upload import UploadError, enqueue, read_token, send_all, spool_dir

    def say(message: str) -> None:
        if not quiet:
            click.echo(f"  upload: {message}", err=True)

    try:
        token = read_token(token_file)
        folder = spool_dir(spool)
        for f in files:
            enqueue(f, folder)
        report = send_all(url, token, folder, attempts=attempts, log=say, resolver=resolver)
    except UploadError as exc:
        fail(str(exc))
    for path, why in report.refused:
        click.echo(f"readiness: upload of {path} refused: {why} (the file stays in {folder})", err=True)
    if report.waiting:
        click.echo(f"readiness: {report.waiting} result{'s' if report.waiting != 1 else ''} waiting in {folder} "
                   f"({report.problem}); `readiness upload` or the next run sends them", err=True)
    if report.sent and not quiet:
        click.echo(f"Uploaded {len(report.sent)} result{'s' if len(report.sent) != 1 else ''} to {url}", err=True)
    return report.exit_code


@click.command()
@click.argument("url", metavar="URL[,URL...]")
@click.argument("files", metavar="[RESULT.json...]", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--token-file", metavar="FILE", help="File holding the site's upload token (else $READINESS_UPLOAD_TOKEN).")
@click.option("--spool-dir", metavar="DIR", help="Where results wait to be sent (default: a per-user state folder; $READINESS_SPOOL_DIR).")
@click.option("--attempts", type=click.IntRange(1, 20), default=5, show_default=True, help="Tries per result while the collector cannot be reached (waits grow, with jitter).")
@click.option("--quiet", "-q", is_flag=True, help="Say only what went wrong.")
def upload(url: str, files: tuple[str, ...], token_file: str | None, spool_dir: str | None, attempts: int, quiet: bool) -> None:
    """Send every result waiting in the spool (and the RESULT files given) to a collector.

    Several collectors (replicas on one database), separated by commas, are tried in order.

    A result leaves the spool only when the collector has stored it; it is stored once, however
    often it is sent. Exit code: 0 all sent, 1 some still wait (collector not reachable; run again
    later), 2 refused (bad token, rejected result: the reason is printed and the file kept).
    """
    sys.exit(send_spool(url, token_file, spool_dir, files, attempts, quiet))
