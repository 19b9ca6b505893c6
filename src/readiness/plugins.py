"""Finding check plugins: the ``readiness.checks`` entry-point group.

Sits between the plugin API (``check.py``) and the runner. Each entry point is loaded in its
own try/except, so a broken plugin becomes a warning naming it, never a dead CLI. The
built-in checks are entry points too: nothing here knows their names.

Checks describe themselves, and the rest of the house reads those descriptions from here
(:func:`described`): the step-5 section and the fix of each metric, the fleet's key figures and
security facts, the checks that report meeting services; a check's own catalog words are handed
to the language catalogs as it loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib.metadata import entry_points

from readiness.check import SECTIONS, Check
from readiness.i18n.format import add_words

GROUP = "readiness.checks"


@dataclass
class Plugins:
    """The checks that loaded, by name, and a warning per plugin that did not."""

    checks: dict[str, type[Check]] = field(default_factory=dict)
    specs: dict[str, str] = field(default_factory=dict)  # name -> "module:attr", for child processes
    warnings: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # name -> why it failed to load

    @cached_property
    def described(self) -> "Described":
        """What the loaded checks say of themselves and their metrics (:class:`Described`)."""
        return _gather_descriptions(self.checks)


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
        problem = _description_problem(obj)
        if problem:
            found.broken[ep.name] = problem
            found.warnings.append(f"check plugin '{ep.name}' ({ep.value}) {problem}")
            continue
        found.checks[ep.name] = obj
        found.specs[ep.name] = ep.value
        if obj.catalog:
            add_words(ep.name, {lang: dict(words) for lang, words in obj.catalog.items()})
    return found


def _description_problem(cls: type[Check]) -> str | None:
    """What is wrong with what a check class says of itself (its section, its words), or None."""
    if cls.section not in SECTIONS:
        return f"names the section {cls.section!r}; it must be one of {', '.join(SECTIONS)}"
    words = cls.catalog
    if not isinstance(words, Mapping) or not all(isinstance(k, str) and isinstance(v, Mapping)
                                                 for k, v in words.items()):
        return 'has a catalog that is not {"<language>": {<words>}}'
    return None


@dataclass(frozen=True)
class Described:
    """What the loaded checks say of their metrics, keyed ``"<check>.<metric>"``."""

    check_sections: dict[str, str]  # check -> its section
    sections: dict[str, str]  # every declared metric -> its section
    key_figures: tuple[str, ...]  # in the order the fleet shows them
    security_facts: tuple[str, ...]  # check by check, in the order each declares them
    descriptions: dict[str, str]  # every declared metric -> its description (words of last resort)
    fixes: dict[str, tuple[str, str]]  # every declared metric -> (kind, subject) of its fix
    check_fixes: dict[str, tuple[str, str]]  # check -> the fix of a metric it does not declare
    service_reporters: tuple[str, ...]  # checks whose details list the meeting services they tried
    # every metric declaring its repeatability (followed over time: a room's history, "what
    # changed"), key figures first in their order, then by check and name; and its unit
    repeatability: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def section_of(self, metric: str) -> str:
        """The step-5 section a requirement on ``metric`` is shown under; "equipment" when no loaded
        check declares it (a plugin not installed here, or one that failed to load)."""
        found = self.sections.get(metric)
        if found is not None:
            return found
        return self.check_sections.get(metric.partition(".")[0], "equipment")

    def fix_of(self, metric: str) -> tuple[str, str]:
        """(kind, subject) of the fix for ``metric``; "fix <the check>" when no loaded check declares one."""
        check = metric.partition(".")[0]
        return self.fixes.get(metric) or self.check_fixes.get(check) or ("other", check)


def described() -> Described:
    """The loaded checks' descriptions (:func:`load_plugins`), gathered once per loading."""
    return load_plugins().described


def _gather_descriptions(checks: dict[str, type[Check]]) -> Described:
    sections, keys, facts, texts, fixes, units, followed = {}, [], [], {}, {}, {}, []
    for name, cls in checks.items():
        for m in cls.metrics:
            full = f"{name}.{m.name}"
            sections[full] = cls.section_of(m.name)
            fixes[full] = cls.fix_of(m.name, name)
            texts[full] = m.description
            units[full] = m.unit
            if m.repeatability is not None:
                followed.append(((m.key_figure is None, m.key_figure or 0, full), full, m.repeatability))
            if m.key_figure is not None:
                keys.append((m.key_figure, full))
            if m.security_fact:
                facts.append(full)
    return Described(check_sections={n: c.section for n, c in checks.items()}, sections=sections,
                     key_figures=tuple(full for _, full in sorted(keys)), security_facts=tuple(facts),
                     descriptions=texts, fixes=fixes,
                     check_fixes={n: c.fix_of("", n) for n, c in checks.items()},
                     service_reporters=tuple(n for n, c in checks.items() if c.reports_services),
                     repeatability={full: r for _, full, r in sorted(followed, key=lambda x: x[0])}, units=units)


def load_spec(spec: str) -> type[Check]:
    """Import ``module:attr`` (used in a child process, where entry points are not re-scanned)."""
    module, _, attr = spec.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert isinstance(obj, type) and issubclass(obj, Check)
    return obj
