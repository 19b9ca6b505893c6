"""One run from start to finish: plan the checks, run them, build the result, judge, write.

Sits between the CLI (which parses options) and the engine pieces it calls in order:
runner -> result -> judge -> render (``render.writers``: the result JSON and the HTML report,
both through the one atomic writer). Holds no words: the summary is ``render.report``'s. Kept apart from ``cli.py`` so the same run can be
driven from Python (tests, a service wrapper) without click.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .judge import Judgement, exit_code, judge
from .plugins import Plugins
from .requirements import Profile
from .result import CheckRecord, Result, new_run_id, result_stem, utc_now
from .runner import Planned, run_all


@dataclass
class RunOptions:
    profile: Profile
    output_dir: Path
    only: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    lang: str = "en"
    write_html: bool = True


@dataclass
class Outcome:
    result: Result
    judgement: Judgement
    json_path: Path | None
    html_path: Path | None
    exit_code: int

    def summary(self, lang: str = "en") -> str:
        from .render.report import summary_text

        return summary_text(self.result, self.judgement, lang, [p for p in (self.json_path, self.html_path) if p])


def host_facts() -> dict[str, Any]:
    """Facts about the machine every result carries (the system check measures the rest)."""
    return {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def plan(opts: RunOptions, plugins: Plugins) -> tuple[list[Planned], dict[str, CheckRecord]]:
    """The checks to run, with settings merged (defaults < profile < --set); and a record for
    each wanted check whose plugin failed to load, so the report says why it is missing."""
    wanted = opts.only or opts.profile.checks()
    planned: list[Planned] = []
    missing: dict[str, CheckRecord] = {}
    for name in wanted:
        cls = plugins.checks.get(name)
        if cls is None:
            why = plugins.broken.get(name, "no such check is installed")
            missing[name] = CheckRecord(name=name, title=name, status="error", started_utc=utc_now(), duration_s=0.0,
                                        error=f"the {name} check could not be loaded: {why}")
            continue
        settings = cls.default_settings() | opts.profile.check_settings.get(name, {}) | opts.overrides.get(name, {})
        budget = float(settings.pop("budget_s", cls.budget_s))
        planned.append(Planned(name=name, cls=cls, spec=plugins.specs[name], settings=settings, budget_s=budget))
    return planned, missing


def run_session(opts: RunOptions, plugins: Plugins,
                progress: Callable[[str, str], None] | None = None) -> Outcome:
    planned, missing = plan(opts, plugins)
    started = utc_now()

    def done(rec: CheckRecord) -> None:
        if progress is not None:
            tail = f" — {rec.error}" if rec.error else ""
            progress(rec.name, f"{rec.status} ({rec.duration_s:.1f} s){tail}")

    records = run_all(planned, opts.options, progress, done)
    records.update(missing)
    result = Result(
        run_id=new_run_id(), started_utc=started, finished_utc=utc_now(), host=host_facts(),
        labels={k: v for k, v in opts.labels.items() if v}, profile=opts.profile.summary(), checks=records,
        tool_version=__version__, warnings=list(plugins.warnings),
    )
    j = judge(result, opts.profile, only_checks=set(opts.only) if opts.only else None)
    result.judgement = j.to_dict()
    result.coverage = j.coverage.to_dict() if j.coverage else None
    from .render.writers import RUN_WRITERS, RunDocument, write

    doc = RunDocument(result, j, opts.lang)
    stem = opts.output_dir / result_stem(result)
    json_path = write(RUN_WRITERS, "json", doc, stem.with_name(stem.name + ".json"))
    html_path = write(RUN_WRITERS, "html", doc, stem.with_name(stem.name + ".html")) if opts.write_html else None
    return Outcome(result, j, json_path, html_path, exit_code(j))
