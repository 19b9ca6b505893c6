"""What every command shares: exit codes, the one-line error, number and port types, and the
few option values that several commands turn into package objects (the installed checks, a
requirement list, an output folder, the run configuration, the collector's database).

Only click is imported at module level: ``readiness --help`` must stay fast, so the package is
imported inside the functions that need it (heavy: numpy, OpenCV, SQLAlchemy, Jinja2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import click

from readiness.i18n import languages
from readiness.textsafe import terminal_text

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
            number: float | None = float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or not (math.isfinite(number) and self.low <= number <= self.high):
            from readiness.cli.usage import bad_value  # only for a value refused

            raise bad_value(param.get_error_hint(ctx) if param is not None else None,
                            "not_number" if number is None else "number_out_of_range", value=value,
                            low=self.low, high=self.high)
        return number


PORT = click.IntRange(0, 65535)


def load_checks() -> Any:
    from readiness.plugins import load_plugins

    plugins = load_plugins()
    return plugins


def warn_plugins(plugins: Any, quiet: bool = False) -> None:
    if quiet:
        return
    for w in plugins.warnings:
        click.echo(f"warning: {w}", err=True)


def load_list(profile: str | None, requirements: str | None, plugins: Any, lang: str | None = None) -> Any:
    """The requirement list named or given; a list that cannot be used exits 2 with its file,
    line and why, in ``lang`` (None: the configuration's language)."""
    from readiness.judge.requirements import ProfileError, load_profile

    if profile and requirements:
        from readiness.cli.usage import usage_error

        raise usage_error("profile_and_requirements")
    try:
        return load_profile(profile, requirements, checks=plugins.checks, broken=plugins.broken)
    except ProfileError as exc:
        fail(exc.text(lang or message_lang()))


def output_dir(path: str | None) -> Path:
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


def parse_sets(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``--set CHECK.KEY=VALUE``; the value is read as TOML (numbers, true/false, "text", [lists]).
    Validated with the rest of the configuration (``config.load_config``)."""
    from readiness.judge.requirements import toml_loads, tomllib

    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, eq, raw = item.partition("=")
        cname, dot, skey = key.strip().partition(".")
        if not eq or not dot or not skey:
            from readiness.cli.usage import bad_value

            raise bad_value("--set", "not_check_setting", item=item)
        try:
            value = toml_loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # plain text without quotes
        out.setdefault(cname, {})[skey] = value
    return out


def typed_config(ctx: click.Context, names: tuple[str, ...], config_file: str | None, sets: tuple[str, ...] = (),
            plugins: Any = None, interactive: bool = False) -> Any:
    """The run configuration from files, environment and what was typed (only options the user
    gave on the command line count as command-line values); a wrong value anywhere exits 2."""
    from click.core import ParameterSource

    from readiness.i18n.format import word
    from readiness.run.config import ConfigError, asked_language, load_config

    typed = {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE}
    langs: list[str] = []

    def warn(said: Any) -> None:  # in the language the configuration names, looked up once a warning comes
        if not langs:
            langs.append(asked_language(typed, os.environ, config_file) or "en")
        click.echo(word(langs[0], "config.warning", text=said.text(langs[0])), err=True)

    try:
        return load_config(typed, parse_sets(sets), checks=plugins.checks if plugins else None,
                           broken=plugins.broken if plugins else None, config_file=config_file,
                           warn=warn, interactive=interactive)
    except ConfigError as exc:  # in the language the configuration asks for, where it can be read
        fail(exc.text(exc.lang or "en"))




def message_lang(typed: str | None = None) -> str:
    """The language of a command's messages when it has no ``--lang`` of its own: ``typed`` (a
    ``--lang`` given to the run it sets up), else the configuration's (files, READINESS_LANG),
    else English. A configuration that cannot be used still gives the language it names, where
    that can be read (the command says the rest)."""
    if typed:
        return typed
    from readiness.run.config import ConfigError, load_config

    try:
        return load_config({}).lang or "en"
    except ConfigError as exc:
        return exc.lang or "en"


def config_option(fn: Any) -> Any:
    return click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
                        help="Read settings from this TOML file too (above the user and system files).")(fn)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting_inputs(outputs: list[tuple[Path, str]], inputs: list[Any]) -> None:
    """No output may replace an input of the same command, nor another output."""
    given = [i for i in inputs if i]
    for n, (target, what) in enumerate(outputs):
        for source in given:
            if same_file(target, source):
                fail(f"{what} {target} is an input of this command ({source}); it would be replaced. "
                     "Choose another file.")
        for other, other_what in outputs[:n]:
            if same_file(target, other):
                fail(f"{what} and {other_what} are the same file ({target}); choose two files.")



DB_ENV = "READINESS_DB"


def span_seconds(text: str, hint: str) -> float:
    """A time span option (``30s``, ``2m``, ``12h``, ``3d``, ``2w``, as ``--since`` and ``--expires`` take) in seconds."""
    from readiness.collector.access import parse_span  # no server extra needed: plain text

    try:
        return parse_span(text).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def open_store(url: str | None, create: bool) -> Any:
    """The collector's database; ``create``: make or upgrade its schema (the server, token
    commands), else it must exist already (readers)."""
    if not url:
        fail(f"give the collector's database: --db URL or {DB_ENV} (sqlite:///PATH/readiness.db or postgresql://...)")
    try:
        from readiness.collector.engine import StoreError, Unavailable
        from readiness.collector.store import Store
    except ImportError as exc:
        fail(f"the collector needs the server extra: pip install 'readiness[server]' ({exc})")
    try:
        store = Store(url, create=create)
        store.migrate() if create else store.require_schema()
    except (StoreError, Unavailable) as exc:
        fail(str(exc))
    return store


DB_OPTION = click.option("--db", "db_url", metavar="URL", envvar=DB_ENV, show_envvar=True,
                          help="The collector's database: sqlite:///PATH/readiness.db or postgresql://USER@HOST/DB.")


def setting_options(fn: Any) -> Any:
    """One click option per run setting that has one, made from the settings table
    (``readiness.settings``): its name, short form, metavar, help and true/false spelling."""
    from readiness.settings import SETTINGS

    for s in reversed(SETTINGS):  # decorators apply bottom-up: the table's order is --help's
        if not s.option:
            continue
        long = "--" + s.name.replace("_", "-")
        names = [long + (f"/{s.negative}" if s.negative else "")] + ([s.short] if s.short else [])
        if s.kind == "bool":
            extra: dict[str, Any] = {"default": False} if s.negative else {"is_flag": True}
        else:
            extra = {"metavar": "|".join(LANGS) if s.kind == "lang" else (s.metavar or None),
                     **({"multiple": True} if s.kind == "urls" else {})}
        fn = click.option(*names, s.name, help=s.option, **extra)(fn)
    return fn
