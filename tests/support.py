"""Helpers shared by the tests: skipping that CI turns into failure, and finding tools.

Tests that need root, kernel features or system packages call :func:`need`. On a developer
machine a missing capability skips the test; under CI (``READINESS_STRICT=1``, set by
``.ci/run``) the same skip is a failure, so a missing install step cannot hide.
"""

from __future__ import annotations

import os
import shutil

import pytest

STRICT = os.environ.get("READINESS_STRICT") == "1"


def need(condition: bool, why: str) -> None:
    """Skip (or, under CI, fail) the calling test unless ``condition`` holds."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required capability missing under READINESS_STRICT=1: {why}")
    pytest.skip(why)


def need_tool(name: str) -> str:
    """Path of an executable, or skip/fail naming the Debian package to install."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    need(path is not None, f"{name} is not installed (tests/run.sh installs it)")
    return path  # type: ignore[return-value]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
