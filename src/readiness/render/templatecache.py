"""Compiled report templates kept between runs, so ``readiness run`` does not compile them each time.

Jinja compiles a template to Python code at its first use in a process; for the report's
templates that was about a fifth of a quick run (``bench/startup.py``). This cache keeps the
compiled code in the user's cache folder (platformdirs), one file per template, keyed by Jinja
with the template's name and a checksum of its source, so a changed template is compiled again.

A cache file is code this process will run, so it is read only when it is a regular file of a
bounded size that belongs to this user and that no one else may write, in a folder no one else
may write (POSIX; on Windows the user's profile folder is private already). It is written through
the one atomic writer. The cache is only a saving: any failure to read or write it compiles the
template as before and says nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import jinja2
from platformdirs import user_cache_path

from readiness.atomic import read_regular, write_atomic

_MAX_BYTES = 4 * 1024 * 1024  # the largest compiled template is about 200 kB


def _private(st: os.stat_result) -> bool:
    if os.name != "posix":
        return True
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class TemplateCache(jinja2.BytecodeCache):
    """Jinja's bytecode cache in ``folder`` (default: the user's cache folder / templates)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else user_cache_path("readiness") / "templates"

    def _file(self, bucket: Any) -> Path:
        return self.folder / (hashlib.sha256(bucket.key.encode()).hexdigest()[:32] + ".jinja")

    def load_bytecode(self, bucket: Any) -> None:
        path = self._file(bucket)
        try:
            if not _private(os.stat(self.folder, follow_symlinks=False)) or \
                    not _private(os.stat(path, follow_symlinks=False)):
                return
            data = read_regular(path, _MAX_BYTES)
        except (OSError, ValueError):
            return
        try:
            bucket.bytecode_from_string(data)
        except Exception:  # a damaged file: compile as if there were none  # noqa: BLE001
            bucket.reset()

    def dump_bytecode(self, bucket: Any) -> None:
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(os.stat(self.folder, follow_symlinks=False)):
                return
            write_atomic(self._file(bucket), bucket.bytecode_to_string())
        except (OSError, ValueError):
            return
