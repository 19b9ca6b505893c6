"""The command line: ``readiness run | report | aggregate | checks | profiles | devices | serve |
config | schedule | upload``, one module per command group, each only parsing its options and
calling into the package.

Exit codes of ``run`` and ``report``: 0 ready, 1 not ready, 2 usage, configuration or internal
error, 3 partial (no fault found in what was checked, but the profile needs checks that did not
run); 130 Ctrl-C, 143 SIGTERM (handled as Ctrl-C).

Output never fails on the console's encoding (a Windows code page cannot show "→" or "≥":
such characters are replaced, the files are UTF-8 anyway), and a closed pipe (``readiness
checks | head -1``) ends the command quietly, like any Unix tool (exit 141).

Start-up must stay fast (``readiness --help`` ≤ 0.15 s): the command modules import only click
and the small foundation modules at module level; each command imports what it needs when it runs.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from readiness import __version__
from readiness.cli import config, listing, report, run, schedule, serve, upload
from readiness.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated
from readiness.textsafe import terminal_text, undecodable_argument


class _Group(click.Group):
    """Turns an unexpected exception into one plain line and exit code 2 (READINESS_DEBUG=1 shows
    it); says usage errors in the language the command line or the configuration asks for."""

    _args: list[str] = []  # the command line, for the language of a usage error

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        self._args = list(args) if args is not None else sys.argv[1:]
        return super().main(args, *rest, **kwargs)

    def _in_language(self, exc: click.UsageError) -> click.UsageError:
        from readiness.cli.usage import in_language  # only when there is a usage error

        return in_language(exc, self._args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # bytes that are not text in the system's encoding (Python keeps them as surrogates) would
        # fail in whichever writer met them first: a usage error now, naming the argument
        bad = undecodable_argument(args)
        try:
            if bad is not None:
                from readiness.cli.usage import Said

                raise Said("not_text_argument", ctx=ctx, argument=bad)
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise self._in_language(exc) from None

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
        except click.UsageError as exc:
            raise self._in_language(exc) from None
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


for command in (run.run, config.config_group, schedule.schedule_group, report.report, listing.list_checks,
                listing.list_profiles, listing.devices, serve.serve, report.aggregate, upload.upload):
    main.add_command(command)


def entry() -> None:  # pragma: no cover - exercised through the console script
    main()
