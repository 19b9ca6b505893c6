"""The collector's own configuration files (``--access``, ``--alerts``) read the same way: the
file's text (a BOM allowed), its TOML, and a one-line error naming the file for anything wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from readiness.judge.requirements import tomllib


def read_toml(path: str | Path, error: type[Exception]) -> tuple[dict[str, Any], list[str]]:
    """(the document, its lines for pointing at a key's line); ``error`` raised with "PATH: why"."""
    origin = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{origin}: cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{origin}: {exc}") from None
    return data, text.splitlines()
