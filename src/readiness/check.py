"""The check plugin API: what a check declares and what it returns.

Sits at the bottom of the pipeline (measure -> result -> judge -> render). A check only
*measures*: it returns metric values and JSON-safe details. It never holds a threshold
and never decides pass or fail; that is the requirement list's job (``requirements.py``).

A plugin is a subclass of :class:`Check`, registered under the entry-point group
``readiness.checks``. The built-in checks in ``checks/`` are registered the same way.

This module must stay cheap to import: the CLI imports it on every start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Callable, ClassVar, Iterator

from readiness.settings import SETTINGS

METRIC_KINDS = ("number", "bool", "version")


@dataclass(frozen=True)
class Metric:
    """A metric a check provides. ``name`` carries its unit (``upload_mbps``, ``rtt_p95_ms``)."""

    name: str
    unit: str
    description: str
    # "number" (judged by min/max), "bool" (judged by expect) or "version": a version string such
    # as "24295.605.3225.8804", judged by min_version and compared as a version (versions.py)
    kind: str = "number"

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {METRIC_KINDS}")


@dataclass(frozen=True)
class Setting:
    """A setting a check accepts from a profile's ``[checks.<name>]`` table or ``--set``."""

    default: Any
    help: str
    type: type | tuple[type, ...] | None = None  # None: type of the default
    # For a list setting: checks one item, returns what is wrong with it (or None). Run when
    # the profile, config file or --set is loaded, so a bad item stops the run before it starts.
    items: Callable[[Any], str | None] | None = None

    def item_problem(self, value: Any) -> str | None:
        """What is wrong with the first bad item of a list value, as "[i]: message"; else None."""
        if self.items is None or not isinstance(value, list):
            return None
        for i, item in enumerate(value):
            problem = self.items(item)
            if problem:
                return f"[{i}]: {problem}"
        return None

    def accepts(self, value: Any) -> bool:
        expected = self.type or type(self.default)
        if expected is float:
            expected = (int, float)
        if isinstance(value, bool) and expected not in (bool, (bool,)):
            # bool is an int in Python; a profile saying `duration_s = true` is a mistake.
            return isinstance(expected, tuple) and bool in expected
        return isinstance(value, expected)


@dataclass
class Measurement:
    """What a check returns: metric values by name, plus JSON-safe details.

    A metric that could not be measured is simply left out (or set to None): the judge
    then reports UNKNOWN for it, never PASS.
    """

    metrics: dict[str, float | int | bool | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class CheckError(Exception):
    """A failure the check could explain in plain words ("no microphone found").

    The runner records the message as the check's error; no traceback is shown. With ``code``
    (and facts as keyword arguments) the failure is also a finding, ``{"code": ..., "args":
    {...}}`` in the record's details, so the report says it in the reader's language (catalog
    key ``finding.<code>``); the message stays for logs and older readers.
    """

    def __init__(self, message: str = "", code: str | None = None, **facts: Any) -> None:
        super().__init__(message)
        self.finding = {"code": code, "args": facts} if code else None


class CheckSkipped(CheckError):
    """The check chose not to measure (e.g. ``--no-sound`` in a room in use); status ``skipped``."""


class _Choices(Mapping):
    """Read-only mapping access to the choices, so ``ctx.options.get("server")`` in existing
    plugins keeps working."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "RunChoices":
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown run option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**dict(values))

    def __getitem__(self, key: str) -> Any:
        if key in self.__dataclass_fields__:  # type: ignore[attr-defined]
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)  # type: ignore[attr-defined]


# The run's shared choices a check may read (``ctx.options``), typed and read-only: one field per
# run setting marked ``to_checks`` in ``readiness.settings`` (server: a SiteServer, parsed and
# checked once, its STUN port known; proxy: a URL or "direct", None: the OS's settings; pac_url;
# microphone, speaker, camera; no_sound, interactive, keep_audio, snapshot; output_dir: the
# results folder as text). Built from the validated run configuration (``readiness.run.config``).
RunChoices = make_dataclass(
    "RunChoices", [(s.name, s.type, field(default=s.default)) for s in SETTINGS if s.to_checks],
    bases=(_Choices,), frozen=True)
RunChoices.__module__ = __name__  # pickled by name into isolated checks' child processes
RunChoices.__doc__ = "The run's shared choices a check may read (``ctx.options``), typed and read-only."


@dataclass
class CheckContext:
    """What a check gets to run with. Picklable: isolated checks receive it in a child process.

    ``settings`` holds the check's settings with defaults applied and profile, config file,
    environment and ``--set`` values merged in. ``options`` holds the run's shared choices
    (:class:`RunChoices`: ``server``, ``proxy``, ``pac_url``, ``microphone``, ``speaker``, ``camera``, ``no_sound``,
    ``interactive``, ``keep_audio``, ``snapshot``, ``output_dir``); a plain dict given here is
    turned into one, so an unknown option name fails at once.
    """

    settings: dict[str, Any]
    options: RunChoices
    budget_s: float
    progress: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.options, RunChoices):
            self.options = RunChoices.from_mapping(self.options or {})

    def say(self, message: str) -> None:
        """Report progress (shown on stderr by the CLI). Silently ignored in a child process."""
        if self.progress is not None:
            try:
                self.progress(message)
            except Exception:  # a broken progress sink must not break a measurement
                pass


class Check:
    """Base class of every check plugin.

    Subclasses set the class attributes and implement :meth:`run`. ``run`` may raise
    :class:`CheckError` with a plain message, or any exception (recorded as an error).

    - ``isolated``: run in a child process killed at the budget. Use it for anything that
      calls native drivers (camera, audio), whose calls can block forever.
    - ``resource``: checks naming the same resource run one after another, in ``order``;
      e.g. the network checks share ``"network"`` so idle latency is measured before a
      bandwidth test loads the link. Checks with different resources run concurrently.
    - ``budget_s``: default time budget; a profile may override it with ``budget_s``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    metrics: ClassVar[tuple[Metric, ...]] = ()
    settings: ClassVar[dict[str, Setting]] = {}
    isolated: ClassVar[bool] = False
    resource: ClassVar[str | None] = None
    order: ClassVar[int] = 0
    budget_s: ClassVar[float] = 10.0

    def run(self, ctx: CheckContext) -> Measurement:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def metric(cls, name: str) -> Metric | None:
        for m in cls.metrics:
            if m.name == name:
                return m
        return None

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {key: s.default for key, s in cls.settings.items()}
