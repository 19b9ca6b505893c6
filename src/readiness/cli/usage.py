"""Usage errors in the language the command's configuration asks for.

Click writes its usage errors ("No such option", "Missing argument", "'x' is not a valid
integer") in English. A Swedish employee who mistypes an option of ``readiness run`` reads them
in Swedish: ``_Group`` hands every ``click.UsageError`` to ``in_language``, which gives one that
says the same in the language asked for (the command line's ``--lang``, READINESS_LANG, the
configuration files: ``run.config.asked_language``, read leniently). English is click's own
text, unchanged.

The project's own usage errors are catalog words (``usage_error``, ``bad_value``); click's are
recognised by their messages (click 8), each read into its parts and said again. A message not
recognised keeps its English detail inside the translated frame (tests/test_cli_usage.py holds
each recognised message to its words, so a click that words one differently fails there).

Imported only when a usage error happens: ``readiness --help`` stays fast.
"""

from __future__ import annotations

import re
from typing import IO, Any

import click

from readiness.i18n.format import word
from readiness.textsafe import terminal_text

# click's own messages (click 8, English), each matched whole: the catalog key that says it
_MESSAGES = [(re.compile(p, re.S), key) for p, key in (
    (r"No such option '(?P<name>[^']*)'\.", "no_such_option"),
    (r"No such command '(?P<name>[^']*)'\.", "no_such_command"),
    (r"Option '(?P<name>[^']*)' requires an argument\.", "needs_value"),
    (r"Option '(?P<name>[^']*)' requires (?P<n>\d+) arguments\.", "needs_values"),
    (r"Option '(?P<name>[^']*)' does not take a value\.", "takes_no_value"),
    (r"Got unexpected extra arguments? \((?P<args>.*)\)", "extra_arguments"),
    (r"Missing command\.", "missing_command"),
)]
# what click's parameter types say of a value (``BadParameter``'s message)
_DETAILS = [(re.compile(p, re.S), key) for p, key in (
    (r"'(?P<value>.*)' is not a valid integer( range)?\.", "not_integer"),
    (r"'(?P<value>.*)' is not a valid float( range)?\.", "not_number"),
    (r"'(?P<value>.*)' is not a valid boolean\.", "not_boolean"),
    (r"(?P<value>.*) is not in the range (?P<range>.*)\.", "not_in_range"),
    (r"'(?P<value>.*)' is not one of (?P<choices>.*)\.", "not_choice"),
    (r"'(?P<value>.*)' is not (?P<choices>'[^']*')\.", "not_choice"),
    (r"(File|Directory|Path) '(?P<name>.*)' does not exist\.", "path_missing"),
    (r"(File|Directory|Path) '(?P<name>.*)' is a directory\.", "path_is_folder"),
    (r"(File|Directory|Path) '(?P<name>.*)' is a file\.", "path_is_file"),
    (r"(File|Directory|Path) '(?P<name>.*)' is not readable\.", "path_not_readable"),
    (r"(File|Directory|Path) '(?P<name>.*)' is not writable\.", "path_not_writable"),
)]


class Said(click.UsageError):
    """A usage error of the project's own: its catalog key and values, so it can be said in
    any language; its English text is what click shows by default."""

    def __init__(self, key: str, hint: str | None = None, ctx: click.Context | None = None, **fill: Any) -> None:
        # the parameter as click names one: '--set', or '-q' / '--quiet' as given
        self.key, self.fill = key, fill
        self.hint = hint if not hint or hint.startswith("'") else f"'{hint}'"
        super().__init__(self.said("en"), ctx)

    def said(self, lang: str) -> str:
        text = word(lang, f"usage.{self.key}", **self.fill)
        return word(lang, "usage.invalid_value", name=self.hint, detail=text) if self.hint else text


def usage_error(key: str, **fill: Any) -> Said:
    """A usage error in catalog words (``usage.<key>``), to raise."""
    return Said(key, **fill)


def bad_value(hint: str | None, key: str, **fill: Any) -> Said:
    """The value given to the option ``hint`` cannot be used (``usage.<key>`` says why), to raise."""
    return Said(key, hint, **fill)


def _hint(exc: click.UsageError) -> str:
    """The parameter an error is about, as click names it ('--attempts', 'RESULT.json')."""
    hint = getattr(exc, "param_hint", None)
    param = getattr(exc, "param", None)
    if hint is None and param is not None:
        hint = param.get_error_hint(exc.ctx)
    if isinstance(hint, (list, tuple)):
        hint = " / ".join(f"'{h}'" for h in hint)
    elif hint:
        hint = hint if hint.startswith("'") else f"'{hint}'"
    return hint or ""


def _matched(text: str, patterns: list[tuple[re.Pattern[str], str]], lang: str) -> str | None:
    for pattern, key in patterns:
        m = pattern.fullmatch(text.strip())
        if m:
            return word(lang, f"usage.{key}", **m.groupdict())
    return None


def message(exc: click.UsageError, lang: str) -> str:
    """What the error says, without click's frame (usage line, hint, "Error:"), in ``lang``."""
    if lang == "en":
        return exc.format_message()
    if isinstance(exc, Said):
        return exc.said(lang)
    if isinstance(exc, click.MissingParameter):
        kind = exc.param_type or (exc.param.param_type_name if exc.param is not None else "parameter")
        return word(lang, "usage.missing_argument" if kind == "argument" else "usage.missing_option", name=_hint(exc))
    if isinstance(exc, click.BadParameter):
        detail, hint = _matched(exc.message, _DETAILS, lang) or exc.message, _hint(exc)
        return word(lang, "usage.invalid_value", name=hint, detail=detail) if hint else detail
    said = _matched(exc.message, _MESSAGES, lang)
    if said is None:
        return exc.format_message()
    if isinstance(exc, click.NoSuchOption) and exc.possibilities:
        said += " " + word(lang, "usage.did_you_mean", names=", ".join(f"'{p}'" for p in exc.possibilities))
    return said


class _InLanguage(click.UsageError):
    """``exc`` shown in ``lang``: the usage line, the hint to --help and the message."""

    def __init__(self, exc: click.UsageError, lang: str) -> None:
        super().__init__(message(exc, lang), exc.ctx)
        self.exit_code = exc.exit_code
        self.lang = lang

    def show(self, file: IO[Any] | None = None) -> None:
        file = file or click.get_text_stream("stderr")
        ctx, lang = self.ctx, self.lang
        if ctx is not None:
            usage = ctx.get_usage().replace("Usage:", word(lang, "usage.usage"), 1)
            hint = ""
            if ctx.command.get_help_option(ctx) is not None:
                helps = ctx.command.get_help_option_names(ctx)
                hint = word(lang, "usage.try_help", command=ctx.command_path, option=max(helps, key=len)) + "\n"
            click.echo(f"{usage}\n{hint}", file=file, color=ctx.color)
        # what the user typed is in it: control characters shown as escapes, as every other error line
        click.echo(terminal_text(word(lang, "usage.error", message=self.format_message())), file=file,
                   color=ctx.color if ctx is not None else None)


def asked_lang(args: list[str]) -> str:
    """The language a command line asks for: its ``--lang`` (where it names a language), else
    the configuration's (``--config FILE`` given, READINESS_LANG, the files), else English."""
    import os

    from readiness.i18n import languages
    from readiness.run.config import asked_language

    given: dict[str, str] = {}
    for i, arg in enumerate(args):
        for name in ("--lang", "--config"):
            if arg == name and i + 1 < len(args):
                given.setdefault(name, args[i + 1])
            elif arg.startswith(name + "="):
                given.setdefault(name, arg.split("=", 1)[1])
    typed = given.get("--lang")
    if typed in languages():
        return typed
    return asked_language({}, os.environ, given.get("--config")) or "en"


def in_language(exc: click.UsageError, args: list[str]) -> click.UsageError:
    """``exc`` as it is shown in the language ``args`` (the command line) asks for."""
    if isinstance(exc, _InLanguage):
        return exc
    lang = asked_lang(args)
    if lang == "en" and not isinstance(exc, Said):  # click's own words, as click shows them
        return exc
    return _InLanguage(exc, lang)
