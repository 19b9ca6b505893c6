"""Text from files, labels or the network, made safe for the program that shows it next, and
text that is not text (unpaired surrogates) found at the borders.

Two such programs read readiness's output as more than text: a terminal (an escape sequence in
a label can move the cursor, retitle the window or hide lines) and a spreadsheet (a cell that
starts with ``=`` runs as a formula). Every line the CLI prints goes through
:func:`terminal_text`; every CSV cell through :func:`csv_cell`, written with
:data:`CSV_QUOTING` so separators inside a value stay inside it.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from typing import Any

# Every text field is quoted, so a ';' (the separator of Swedish Excel) or ',' inside a value
# can never split it into cells; numbers stay bare so spreadsheets read them as numbers.
CSV_QUOTING = csv.QUOTE_NONNUMERIC
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# a piece a spreadsheet could split off at a separator it guesses, starting like a formula
_SPLIT_FORMULA = re.compile(r"([,;\t|])(\s*)(?=[=+\-@])")


def csv_cell(value: Any) -> Any:
    """One CSV cell: yes/no as true/false, nothing as empty, numbers as they are; text that a
    spreadsheet would run as a formula, at its start or after any separator, gets a ' first."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    text = _SPLIT_FORMULA.sub(r"\1\2'", str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def terminal_text(text: str) -> str:
    """Control characters (every terminal escape sequence starts with one) shown as escapes
    such as ``\\x1b``, never sent raw; newlines and tabs kept, and so are spaces other than
    the ASCII one (the no-break space between a Swedish number's thousands, "3 600")."""
    return "".join(ch if ch in "\n\t" or (ch.isprintable() and ch not in "\u2028\u2029") or _is_space(ch)
                   else ascii(ch)[1:-1] for ch in text)


def _is_space(ch: str) -> bool:
    return unicodedata.category(ch) == "Zs"


# An unpaired UTF-16 surrogate: JSON can spell one ("\ud800"), Python's json reads it, and no
# UTF-8 writer (a file, a database, an HTTP answer) can write it. On POSIX a byte that is not
# UTF-8 in argv, the environment or a file name reaches Python as one too (surrogateescape).
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds an unpaired surrogate (so it is not Unicode text any writer takes)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def surrogate_at(data: Any) -> list[Any] | None:
    """The path (keys and indexes) of the first key or text in a parsed JSON document that holds
    an unpaired surrogate, or None. Iterative, so no document exhausts the stack."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if has_surrogate(node):
                return path
        elif isinstance(node, dict):
            for key, value in node.items():
                if has_surrogate(key):
                    return path + [key]
                stack.append((value, path + [key]))
        elif isinstance(node, list):
            stack.extend((value, path + [i]) for i, value in enumerate(node))
    return None


def undecodable_argument(args: list[str]) -> str | None:
    """The first command-line argument that is not text (bytes the system's encoding could not
    decode, which Python keeps as surrogates), shown with those bytes escaped; None when every
    one is text."""
    for arg in args:
        if has_surrogate(arg):
            try:
                return repr(arg.encode("utf-8", "surrogateescape"))[2:-1]
            except UnicodeEncodeError:  # a lone surrogate from a UTF-16 command line (Windows)
                return arg.encode("utf-8", "backslashreplace").decode("ascii", "replace")
    return None


def shown_path(path: str) -> str:
    """A file name as text any writer takes: bytes that are not UTF-8 (surrogates, as Python
    keeps them) shown as escapes such as ``\\xff``."""
    if not has_surrogate(path):
        return path
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate in a UTF-16 name (Windows)
        return path.encode("utf-8", "backslashreplace").decode("ascii", "replace")
    return raw.decode("utf-8", "backslashreplace")


class ControlCharacter(ValueError):
    """A value that would go into a file one line at a time (a systemd unit, a crontab) holds a
    line break or another control character; the message is one plain line."""


def one_line(value: str, what: str) -> str:
    """``value`` unchanged, or :class:`ControlCharacter` when it holds a control character (a
    line break, NUL, any other C0 or C1 character, DEL, a Unicode line or paragraph separator) or
    text that is not Unicode: no quoting survives a line break, so no unit file, crontab, plist or
    task XML may get a line it did not write."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
            shown = value if len(value) <= 80 else value[:77] + "..."  # the CLI prints it escaped
            refused = ControlCharacter(f"{what} may not hold a line break or another control character "
                                       f"({shown!r}); nothing was written")
            refused.shown = repr(shown)  # for callers that say it in the reader's language
            raise refused
    return value


_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_./:+,=@-]+")


def systemd_quote(arg: str, what: str = "a value", bare_when_plain: bool = False) -> str:
    """One argument for a systemd ``ExecStart=`` line, refused (:class:`ControlCharacter`) when it
    holds a control character; ``%`` and ``$`` doubled, because systemd expands specifiers and
    variables inside quotes too; in double quotes with C escapes (a plain ASCII word stays bare
    when ``bare_when_plain``)."""
    one_line(arg, what)
    text = arg.replace("%", "%%").replace("$", "$$")
    if bare_when_plain and _SYSTEMD_PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
