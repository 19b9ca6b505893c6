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
# The headings of step 5 of the travel-free meetings guide that hold requirements (the fleet report's
# sections; its fifth, support, holds the profiles' contacts, not measurements).
SECTIONS = ("equipment", "network", "subscriptions", "security")


@dataclass(frozen=True)
class Repeatability:
    """How far two runs of the same figure on an unchanged room differ by chance: the spread of
    one run, as a share of the value (``cv_pct``, a coefficient of variation) and at least
    ``floor`` in the metric's own unit. ``source``: where the figure comes from (a bench and
    its row, a paper). A room's history calls a move "changed" only beyond this spread."""

    cv_pct: float
    floor: float
    source: str

    def spread(self, value: float) -> float:
        """One run's standard deviation around ``value``."""
        return max(abs(value) * self.cv_pct / 100.0, self.floor)


@dataclass(frozen=True)
class Metric:
    """A metric a check provides. ``name`` carries its unit (``upload_mbps``, ``rtt_p95_ms``)."""

    name: str
    unit: str
    description: str
    # "number" (judged by min/max), "bool" (judged by expect) or "version": a version string such
    # as "24295.605.3225.8804", judged by min_version and compared as a version (versions.py)
    kind: str = "number"
    # The step-5 section a requirement on this metric is shown under; None: its check's ``section``.
    section: str | None = None
    # A key figure of the fleet: its distribution is shown first, lowest rank first. None: shown
    # after the key figures, by name, when a requirement names it.
    key_figure: int | None = None
    # A yes/no fact the fleet counts in its security section whether or not a profile judges it
    # (words: catalog ``step5.fact.<name>``, else the description).
    security_fact: bool = False
    # The fix for a unit that misses a requirement on this metric, as the fleet's action list groups
    # them ("what to fix first"): a kind (words: catalog ``step5.action.<kind>``) and its subject
    # (a client's key, a metric's name, or ""). None: its check's ``fix``.
    fix: str | None = None
    fix_subject: str = ""
    # How repeatable one run's value is (``Repeatability``); a metric that declares one is followed
    # over time on a room's history page (a plot per check and unit) and in "what changed".
    repeatability: Repeatability | None = None

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {METRIC_KINDS}")
        if self.section is not None and self.section not in SECTIONS:
            raise ValueError(f"metric {self.name}: section must be one of {SECTIONS}")
        if self.security_fact and self.kind != "bool":
            raise ValueError(f"metric {self.name}: a security fact is a yes/no (kind \"bool\") metric")


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
# lang: the reader's language for what a check says to a person (--interactive); None (the
# default here) is English, the checks' own words, so a plugin that records its choices sees none.
RunChoices = make_dataclass(
    "RunChoices", [(s.name, s.type, field(default=None if s.name == "lang" else s.default))
                   for s in SETTINGS if s.to_checks],
    bases=(_Choices,), frozen=True)
RunChoices.__module__ = __name__  # pickled by name into isolated checks' child processes
RunChoices.__doc__ = "The run's shared choices a check may read (``ctx.options``), typed and read-only."


class Said(str):
    """A progress message that also carries a catalog key (``progress.<step>``) and its facts,
    so the terminal says it in the reader's language. As text it is the English message, so a
    progress sink that only prints keeps working."""

    step: str
    args: dict[str, Any]

    def __new__(cls, text: str, step: str, args: dict[str, Any] | None = None) -> "Said":
        said = super().__new__(cls, text)
        said.step, said.args = step, dict(args or {})
        return said

    def __reduce__(self) -> Any:  # crosses the pipe from an isolated check's child
        return (Said, (str(self), self.step, self.args))


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

    def say(self, message: str, step: str | None = None, **facts: Any) -> None:
        """Report progress (shown on stderr by the CLI). With ``step`` (and its facts) the terminal
        shows the catalog's words ``progress.<step>`` in the reader's language; ``message`` is
        the English text for logs and for a plugin without catalog words."""
        if self.progress is not None:
            try:
                self.progress(Said(message, step, facts) if step else message)
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
    - ``section``: the step-5 section (:data:`SECTIONS`) its requirements are shown under in the
      fleet report; a metric may name another (``Metric(..., section="network")``).
    - ``fix``: the kind of fix that answers a failure of its metrics in the fleet's action list
      (words: catalog ``step5.action.<kind>``); a metric may name another (``Metric(fix=...)``).
      None: "fix <the check>".
    - ``reports_services``: its details hold ``services``, a list of ``{"name", "reachable",
      "udp_media"}`` for the meeting services it tried; the fleet keeps them and shows which
      services work from each site (step 5, subscriptions).
    - ``catalog``: the check's own words, ``{"en": {...}, "sv": {...}}``, in the shape of the
      shipped catalogs (``readiness/i18n/en.toml``): e.g. ``{"check": {"<name>": "its title"}}``,
      ``finding.<code>``, ``step5.fact.<metric>``. They are merged beneath the shipped words: a
      check adds words, it never rewords the core's.
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
    section: ClassVar[str] = "equipment"
    fix: ClassVar[str | None] = None
    reports_services: ClassVar[bool] = False
    catalog: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def run(self, ctx: CheckContext) -> Measurement:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def metric(cls, name: str) -> Metric | None:
        for m in cls.metrics:
            if m.name == name:
                return m
        return None

    @classmethod
    def section_of(cls, metric: str) -> str:
        """The step-5 section of one of its metrics (its own ``section`` for a metric it does not declare)."""
        m = cls.metric(metric)
        return m.section if m is not None and m.section else cls.section

    @classmethod
    def fix_of(cls, metric: str, check: str) -> tuple[str, str]:
        """(kind, subject) of the fix when ``metric`` misses its bound; ``check`` is the name it is loaded by."""
        m = cls.metric(metric)
        if m is not None and m.fix:
            return m.fix, m.fix_subject
        return (cls.fix, "") if cls.fix else ("other", check)

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {key: s.default for key, s in cls.settings.items()}
