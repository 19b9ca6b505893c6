"""Fixtures shared by the tests: the CLI as a real subprocess, fixture plugins on the path,
and JSON Schema validation of every result a test produces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
FIXTURE_PLUGINS = HERE / "fixtures" / "plugins"
FIXTURE_PROFILES = HERE / "fixtures" / "profiles"
SCHEMA = HERE.parent / "src" / "readiness" / "schema" / "result.schema.json"


def validate_result(data: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Validate a result document (dict, JSON text or file) against the repo's JSON Schema."""
    import jsonschema

    if isinstance(data, Path):
        data = json.loads(data.read_text(encoding="utf-8"))
    elif isinstance(data, str):
        data = json.loads(data)
    jsonschema.validate(data, json.loads(SCHEMA.read_text(encoding="utf-8")))
    return data


@pytest.fixture
def plugin_env() -> dict[str, str]:
    """Environment in which the fixture plugin distribution is importable (and so registered)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FIXTURE_PLUGINS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def with_fixture_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fixture plugins visible to this test process too (for in-process runner tests)."""
    from readiness.plugins import load_plugins

    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURE_PLUGINS), os.environ.get("PYTHONPATH", "")]))
    load_plugins.cache_clear()
    yield
    load_plugins.cache_clear()


class Cli:
    """Runs ``readiness`` as a subprocess, as a user would."""

    def __init__(self, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.env = env or dict(os.environ)
        self.cwd = cwd

    def __call__(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "readiness.cli", *args], capture_output=True, text=True,
                              timeout=timeout, env=env or self.env, cwd=self.cwd, input=input)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cwd=tmp_path)


@pytest.fixture
def plugin_cli(tmp_path: Path, plugin_env: dict[str, str]) -> Cli:
    return Cli(env=plugin_env, cwd=tmp_path)
