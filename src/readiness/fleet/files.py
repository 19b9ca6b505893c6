"""Finding result files on a share, and why one is skipped (:class:`Why`: a reason with a code,
so the fleet report says it in its own language). Only regular files are ever opened: a FIFO or
a device on a share would block or never end."""

from __future__ import annotations

import os
import stat
from typing import Any, Callable, Iterable, Iterator

from readiness.fleet.model import MAX_FILE_BYTES
from readiness.i18n.format import word
from readiness.textsafe import has_surrogate, shown_path

class Why(str):
    """Why a file or run was skipped: the English sentence (terminal, log, CSV) that also
    carries a code and its facts, so a report says it in its reader's language (catalog
    ``skip.<code>``, ``said``). A str, so it travels from worker processes and compares as text."""

    code: str
    args: dict[str, Any]

    def __new__(cls, code: str, text: str, **args: Any) -> "Why":
        self = super().__new__(cls, text)
        self.code, self.args = code, args
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_why_of, (self.code, str(self), self.args))


def _why_of(code: str, text: str, args: dict[str, Any]) -> Why:
    """How a Why is made again from its pickle (a worker's record)."""
    return Why(code, text, **args)


def invalid(text: str) -> Why:
    """A result the border refused (``result.ResultError``): its English detail, framed."""
    return Why("invalid_result", text, detail=text)


def said(reason: str, lang: str) -> str:
    """A skip reason in ``lang``: the catalog's words for its code, else the English sentence."""
    if isinstance(reason, Why):
        key = f"skip.{reason.code}"
        text = word(lang, key, **reason.args)
        if text != key:
            return text
    return str(reason)


def _oserror(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _unreadable(exc: OSError) -> Why:
    return Why("unreadable", f"cannot read it ({_oserror(exc)})", error=_oserror(exc))


def _too_large(size: int) -> Why:
    return Why("too_large", f"too large to be a result ({size // 1048576} MB)", mb=size // 1048576)


_NOT_REGULAR = Why("not_regular", "not a regular file (a pipe, device or socket); not opened")
# a name that is not UTF-8: readable, but no report, CSV or page could name it
_NAME_NOT_TEXT = Why("name_not_text", "its name is not UTF-8 text; rename it to read it")


def iter_result_files(paths: Iterable[str | os.PathLike[str]], skip: Callable[[str, str], None],
                      other: Callable[[], None]) -> Iterator[str]:
    """Regular files to read: each file given, and every ``*.json`` under each folder given.

    Folders are walked without following links to folders (no loops on a share). Anything
    that is not a regular file (pipe, device, socket, broken link) is skipped, never opened, and
    so is a file or folder whose name is not UTF-8 text (it is listed with its bytes escaped).
    """
    for p in paths:
        p = os.fspath(p)
        try:
            st = os.stat(p)
        except OSError as exc:
            skip(p, _unreadable(exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            found = yield from _walk(p, skip, other)
            if not found:
                skip(p, Why("no_result_files", "this folder holds no result files (*.json)"))
        elif stat.S_ISREG(st.st_mode):
            if st.st_size > MAX_FILE_BYTES:
                skip(p, _too_large(st.st_size))
            else:
                yield p
        else:
            skip(p, _NOT_REGULAR)


def _walk(top: str, skip: Callable[[str, str], None], other: Callable[[], None]) -> Iterator[str]:
    found = 0
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skip(folder, Why("unlistable", f"cannot list this folder ({_oserror(exc)})", error=_oserror(exc)))
            continue
        if not entries and folder != top:
            skip(folder, Why("empty_folder", "empty folder"))
        subfolders = []
        for e in entries:
            if has_surrogate(e.name):
                skip(shown_path(e.path), _NAME_NOT_TEXT)
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    subfolders.append(e.path)
                    continue
            except OSError as exc:
                skip(e.path, _unreadable(exc))
                continue
            if not e.name.lower().endswith(".json"):
                other()
                continue
            try:
                st = e.stat()  # follows a link to its target
            except OSError as exc:
                broken = e.is_symlink()
                skip(e.path, Why("broken_link", "a link to nothing (broken link)") if broken else _unreadable(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                skip(e.path, Why("folder_link", "a link to a folder; links to folders are not followed"))
            elif not stat.S_ISREG(st.st_mode):
                skip(e.path, _NOT_REGULAR)
            elif st.st_size > MAX_FILE_BYTES:
                skip(e.path, _too_large(st.st_size))
            else:
                found += 1
                yield e.path
        stack.extend(reversed(subfolders))
    return found
