"""Finding check plugins: the ``readiness.checks`` entry-point group.

Sits between the plugin API (``check.py``) and the runner. Each entry point is loaded in its
own try/except, so a broken plugin becomes a warning naming it, never a dead CLI. The
built-in checks are entry points too: nothing here knows their names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

from readiness.check import Check

GROUP = "readiness.checks"


@dataclass
class Plugins:
    """The checks that loaded, by name, and a warning per plugin that did not."""

    checks: dict[str, type[Check]] = field(default_factory=dict)
    specs: dict[str, str] = field(default_factory=dict)  # name -> "module:attr", for child processes
    warnings: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # name -> why it failed to load


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@lru_cache(maxsize=1)
def load_plugins() -> Plugins:
    """Load every registered check once per process."""
    found = Plugins()
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name in found.checks or ep.name in found.broken:
            found.warnings.append(f"check plugin '{ep.name}' ({ep.value}) is registered twice; the first one is used")
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # any import-time failure of third-party code
            found.broken[ep.name] = _describe(exc)
            found.warnings.append(f"check plugin '{ep.name}' ({ep.value}) failed to load: {_describe(exc)}")
            continue
        if not (isinstance(obj, type) and issubclass(obj, Check)):
            found.broken[ep.name] = "not a readiness Check class"
            found.warnings.append(f"check plugin '{ep.name}' ({ep.value}) is not a subclass of readiness.check.Check")
            continue
        if obj.name and obj.name != ep.name:
            found.warnings.append(
                f"check plugin '{ep.name}' calls itself '{obj.name}'; it is known by its entry-point name '{ep.name}'"
            )
        found.checks[ep.name] = obj
        found.specs[ep.name] = ep.value
    return found


def load_spec(spec: str) -> type[Check]:
    """Import ``module:attr`` (used in a child process, where entry points are not re-scanned)."""
    module, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert isinstance(obj, type) and issubclass(obj, Check)
    return obj
