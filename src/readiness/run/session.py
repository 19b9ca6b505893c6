"""One run from start to finish: plan the checks, run them, build the result, judge, write.

Sits between the CLI (which parses options) and the engine pieces it calls in order:
runner -> result -> judge -> render (``render.writers``: the result JSON and the HTML report,
both through the one atomic writer). Holds no words: the summary is ``render.report``'s. Kept apart from ``cli.py`` so the same run can be
driven from Python (tests, a service wrapper) without click.
"""

from __future__ import annotations

import math
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from readiness import __version__
from readiness.check import RunChoices, Said
from readiness.i18n.format import word
from readiness.judge.requirements import Profile
from readiness.judge.diagnose import finding_text
from readiness.judge.verdicts import Judgement, exit_code, judge
from readiness.redact import redact_secrets, redact_text
from readiness.render.report import summary_text
from readiness.render.writers import RUN_WRITERS, RunDocument, render, write_all_or_none
from readiness.result import CheckRecord, MAX_DEPTH, MAX_JUDGED, Result, new_run_id, result_stem, utc_now
from readiness.plugins import Plugins
from readiness.run.runner import Planned, run_all


class WriteError(Exception):
    """The result could not be written (and so neither file was)."""


MAX_ERROR, MAX_TITLE, MAX_WARNING = 20000, 500, 4000  # the result schema's maxLength: what is written can be read


def _shallow(value: Any, levels: int) -> Any:
    """``value`` with anything nested deeper than ``levels`` replaced by "…" (readers refuse deep documents)."""
    if isinstance(value, dict):
        return {k: _shallow(v, levels - 1) for k, v in value.items()} if levels > 0 else "…"
    if isinstance(value, list):
        return [_shallow(v, levels - 1) for v in value] if levels > 0 else "…"
    return value


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


WRITTEN: list[Path] = []  # files this process has written, so an interrupt after them does not say "nothing"


@dataclass
class RunOptions:
    profile: Profile
    output_dir: Path
    only: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    options: RunChoices = field(default_factory=RunChoices)  # what the checks see (ctx.options)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # validated check settings
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
    """The checks to run, with settings merged (defaults < profile < configuration: files,
    environment, --set); and a record for each wanted check whose plugin failed to load, so
    the report says why it is missing."""
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

    def say(check: str, message: str) -> None:  # the runner's and the checks' words in the run's language
        if progress is not None:
            if message == "started":
                message = word(opts.lang, "progress_started")
            elif isinstance(message, Said):
                text = word(opts.lang, f"progress.{message.step}", **message.args)
                message = message if text == f"progress.{message.step}" else text
            progress(check, message)

    def done(rec: CheckRecord) -> None:
        if progress is not None:
            found = rec.details.get("findings") if rec.status == "error" and isinstance(rec.details, dict) else None
            facts = [finding_text(f, opts.lang) for f in found or [] if isinstance(f, dict) and isinstance(f.get("code"), str)]
            tail = f" — {facts[0] if facts else rec.error}" if rec.error else ""
            progress(rec.name, word(opts.lang, "progress_done", status=word(opts.lang, f"check_status_{rec.status}"),
                                    seconds=round(rec.duration_s, 1)) + tail)

    records = run_all(planned, opts.options, say if progress is not None else None, done)
    records.update(missing)
    for rec in records.values():  # no URL is recorded with its credentials or query, whatever a check put there
        rec.details = _shallow(redact_secrets(rec.details), MAX_DEPTH - 4)
        for entry in rec.metrics.values():  # a value readers would refuse is no measurement
            v = entry.get("value")
            if isinstance(v, float) and not (math.isfinite(v) and abs(v) <= MAX_JUDGED) or \
                    isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_JUDGED:
                entry["value"] = None
        rec.error = _clip(redact_text(rec.error), MAX_ERROR) if rec.error else rec.error
        rec.title = _clip(rec.title, MAX_TITLE)
    result = Result(
        run_id=new_run_id(), started_utc=started, finished_utc=utc_now(), host=host_facts(),
        labels={k: v for k, v in opts.labels.items() if v}, profile=opts.profile.summary(), checks=records,
        tool_version=__version__, warnings=[_clip(redact_text(w), MAX_WARNING) for w in plugins.warnings][:500],
    )
    j = judge(result, opts.profile, only_checks=set(opts.only) if opts.only else None)
    result.judgement = j.to_dict()
    result.coverage = j.coverage.to_dict() if j.coverage else None

    doc = RunDocument(result, j, opts.lang)
    json_path = opts.output_dir / f"{result_stem(result)}.json"
    outputs: list[tuple[Path, str | bytes]] = [(json_path, render(RUN_WRITERS, "json", doc))]
    html_path = None
    if opts.write_html:
        html_path = opts.output_dir / f"{result_stem(result)}.html"
        outputs.append((html_path, render(RUN_WRITERS, "html", doc)))
    try:
        write_all_or_none(outputs)  # a result never without its report: both files or neither
    except OSError as exc:  # a full disk, a share gone away: said plainly by the CLI, not as an internal error
        raise WriteError(f"cannot write the result to {opts.output_dir}: {exc.strerror or exc}; "
                         "nothing was written") from exc
    WRITTEN.extend(path for path, _ in outputs)
    return Outcome(result, j, json_path, html_path, exit_code(j))
