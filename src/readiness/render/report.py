"""The run report: one result, as judged, laid out for a person — in the browser (HTML) and on
the terminal (the summary). Never decides anything: the judge has.

Sits at the end of the pipeline (measure → judge → render). Both views are built from one
``view`` of the judgement, so they say the same thing in the same order:

1. the verdict word, and for a partial run which areas were checked ("Partial check: System
   only — 1 of 7 areas checked");
2. root causes first: one line per check that could not measure, with its cause and what to
   do about *that*; the requirements it leaves unknown are counted under it, not repeated;
3. then what is wrong, FAIL before WARN before UNKNOWN, the tiers of one metric (≥ 1.2
   required, ≥ 4 recommended) as one line with both bounds, identical advice given once.

Templates live in ``templates/`` (package ``readiness.templates``), words in the catalogs
(``render.format``). Autoescaping is on for everything: labels, host and device names from a
result are shown as text, never as markup. The page loads nothing from anywhere: CSS is
inline, charts are inline SVG, a camera snapshot (only with ``--snapshot``) is a ``data:``
image; source URLs become links only when they are http or https.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from readiness.judge.diagnose import (Diagnosis, check_title, checked_areas, describe, diagnose, finding_text,
                                      needed_areas, reconcile)
from readiness.judge.verdicts import FAIL, PARTIAL, UNKNOWN, Judgement, Verdict
from readiness.result import Result
from readiness.render.charts import line_chart
from readiness.i18n.format import (catalog, detail_key, detail_value, format_bound, format_value, languages, measured_text,
                                   number, unit_text, when, word)

# Detail keys with a view of their own (or none) in the per-check section.
_SPECIAL_DETAILS = {"charts", "diagnosis", "findings", "snapshot_jpeg_b64", "traceback", "dropped_metrics"}


def _load_template(name: str) -> str:
    return resources.files("readiness.templates").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    from readiness.render.templatecache import TemplateCache  # imports jinja2 too: only when a page is made

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,  # everything, whatever the file name: results hold hostile strings too
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=TemplateCache(),  # compiled once per template version, not at every run
    )
    env.globals.update(format_value=format_value, format_bound=format_bound, measured_text=measured_text,
                       line_chart=line_chart, number=number, word=word, when=when, unit_text=unit_text,
                       link_url=link_url, finding_texts=finding_texts, check_title=check_title,
                       unknown_count=unknown_count, profile_title=profile_title,
                       detail_key=detail_key, detail_value=detail_value, metric_label=metric_label)
    env.filters["scalar"] = _is_scalar
    return env


def template_words(lang: str) -> dict[str, Any]:
    return {"lang": lang, "t": catalog(lang)}


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def link_url(text: Any) -> str | None:
    """``text`` when it is an http(s) URL a link may point to; None for anything else
    (``javascript:``, ``data:``, ``file:`` stay plain text)."""
    if not isinstance(text, str) or any(c.isspace() or ord(c) < 32 for c in text.strip("\n")):
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return text if parts.scheme in ("http", "https") and parts.netloc else None


def profile_title(profile: Any, lang: str) -> str:
    """A shipped profile's title in ``lang`` (catalog ``profile_title.<name>``), else its own."""
    if not isinstance(profile, dict):
        return ""
    name = str(profile.get("name") or "")
    own = str(profile.get("title") or name)
    titles = catalog(lang).get("profile_title", {})
    return titles.get(name, own) if isinstance(titles, dict) else own


def metric_label(check: str, name: str, j: Judgement, lang: str) -> str:
    """A measured figure's name for a reader: its requirement's label (without a tier's bound),
    else the catalog's word for the key, else the key (a metric no requirement judges)."""
    for v in j.items:
        if v.requirement.metric == f"{check}.{name}" and v.requirement.service is None:
            label = v.requirement.text("label", lang)
            if label:
                return _plain_label(label)
    return detail_key(name, lang)


def finding_texts(details: Any, lang: str) -> list[str]:
    """A check's facts in words: ``findings`` (codes with arguments, the words from the
    catalog's ``finding`` table) and, from checks not yet converted, plain ``diagnosis`` lines."""
    out: list[str] = []
    if not isinstance(details, dict):
        return out
    for f in details.get("findings") or []:
        if isinstance(f, dict) and isinstance(f.get("code"), str):
            out.append(finding_text(f, lang))
    for d in details.get("diagnosis") or []:
        if isinstance(d, str):
            out.append(d)
    return out


@dataclass
class Cause:
    """A cause that left requirements unmeasured (a diagnosis without a requirement to name)."""

    check: str
    title: str  # the checks it touches, by name
    cause: str
    advice: str  # "" when the same advice was already given above
    unknown: int  # requirements left unknown by it
    diagnosis: Diagnosis | None = None


@dataclass
class Line:
    """One requirement that is not met, by metric (its tiers, e.g. required ≥ 1.2 and recommended
    ≥ 4, on one line), with the cause behind it when it has one and what that cause folds in."""

    status: str
    label: str
    measured: str
    needs: str
    fix: str | None  # None when the same advice was already given above
    items: list[Verdict] = field(default_factory=list)
    cause: str = ""  # the cause in words ("" for a missed bound: the figure says it)
    unknown: int = 0  # requirements of the same cause left unknown, folded under this line
    diagnosis: Diagnosis | None = None


@dataclass
class View:
    verdict: str
    headline: str
    explain: str
    coverage: str | None  # "Partial check: System only — 1 of 7 areas checked"
    causes: list[Cause]
    lines: list[Line]
    measured_areas: list[str] = field(default_factory=list)  # areas that measured something they were asked
    areas: list[str] = field(default_factory=list)  # the areas the requirement list needs
    word_key: str = ""  # the verdict's words: "PARTIAL_advice" when a partial run found advice to give


def _plain_label(label: str) -> str:
    """"Memory (8 GB)" -> "Memory": a tiered metric's line names the metric, not one tier."""
    return label.split(" (")[0].strip() or label


def _line(result: Result, d: Diagnosis, j: Judgement, lang: str) -> Line:
    lead = d.lead
    words = describe(d, result, lang)
    same = (lead.requirement.metric, lead.requirement.service)
    # the lead's metric with all its tiers (PASS ones too): "≥ 1.2 (required); ≥ 4 (recommended)"
    tiers = sorted([v for v in j.items if (v.requirement.metric, v.requirement.service) == same],
                   key=lambda v: v.requirement.severity != "required")
    needs = "; ".join(f"{format_bound(v.requirement, v.unit, lang)} ({word(lang, v.requirement.severity)})"
                      if len(tiers) > 1 else format_bound(v.requirement, v.unit, lang) for v in tiers)
    label = lead.requirement.text("label", lang) or lead.requirement.metric
    measured = measured_text(lead.requirement, lead.value, lead.unit, lang) if lead.status != UNKNOWN else "—"
    folded = [v for v in d.folded if (v.requirement.metric, v.requirement.service) != same]
    return Line(lead.status, _plain_label(label) if len(tiers) > 1 else label, measured, needs, words.advice,
                tiers, words.cause, sum(1 for v in folded if v.status == UNKNOWN), d)


def view(result: Result, j: Judgement, lang: str = "en") -> View:
    """What both the terminal and the HTML say, in the order they say it: the diagnoses
    (``judge.diagnose``), one per cause, laid out; nothing here decides a cause."""
    j = reconcile(result, j)  # no PASS beside a finding that outranks it
    verdict = j.verdict
    found = diagnose(result, j)
    checked = checked_areas(result, j, found)  # the one count of areas checked: this line, the facts, the page
    needed = needed_areas(j)
    coverage = None
    if j.coverage is not None and j.coverage.partial:
        titles = [check_title(c, lang, result.checks[c].title if c in result.checks else "") for c in checked]
        coverage = word(lang, "partial_headline", checks=", ".join(titles) or "—", n=len(checked), total=len(needed))
    causes: list[Cause] = []
    lines: list[Line] = []
    given: set[str] = set()
    for d in found:
        if d.lead is None:
            words = describe(d, result, lang)
            entry: Cause | Line = Cause(d.checks[0], words.title, words.cause, words.advice, len(d.items), d)
            causes.append(entry)
            key = "advice"
        else:
            entry = _line(result, d, j, lang)
            lines.append(entry)
            key = "fix"
        text = getattr(entry, key)
        if text in given:  # identical advice given once
            setattr(entry, key, "" if key == "advice" else None)
        elif text:
            given.add(text)
    explain = f"explain_{verdict}"
    if coverage is not None and verdict != FAIL and result.host.get("measured_by") == "browser":
        explain = "explain_PARTIAL_browser"  # the rest needs the agent, not another --check
    # a partial run with no fault but advice to give (a WARN, an unknown recommended item) does not
    # say "no fault found" above that advice
    key = f"{verdict}_advice" if verdict == PARTIAL and (causes or lines) else verdict
    return View(verdict, word(lang, f"verdict_{key}"), word(lang, explain), coverage, causes, lines,
                checked, needed, key)


def unknown_count(n: int, lang: str) -> str:
    return word(lang, "n_unknown_one") if n == 1 else word(lang, "n_unknown", n=n)


def summary_text(result: Result, j: Judgement, lang: str, paths: list[Path]) -> str:
    """The terminal summary: the verdict, root causes, what to fix, where the files are.
    An offline run without devices fits one screen."""
    v = view(result, j, lang)
    profile = profile_title(j.profile, lang)  # a shipped list by its title in the reader's language
    out = [f"{word(lang, 'terminal_' + (v.word_key or v.verdict))}  ({profile})"]
    if v.coverage:
        out.append(f"  {v.coverage}")
    for c in v.causes:
        out.append(f"  {word(lang, 'cannot_check')} {c.title}: {c.cause} "
                   f"({unknown_count(c.unknown, lang)})")
        if c.advice:
            out.append(f"      → {c.advice}")
    for ln in v.lines:
        status = word(lang, f"status_{ln.status}")
        if ln.cause:  # a cause behind it: the cause says why, and what it left unknown is counted under it
            more = f" ({unknown_count(ln.unknown, lang)})" if ln.unknown else ""
            out.append(f"  {status:9} {ln.label}: {ln.measured} — {ln.cause}{more}")
        else:
            out.append(f"  {status:9} {ln.label}: {ln.measured} — {word(lang, 'needs')} {ln.needs}")
        if ln.fix:
            out.append(f"      → {ln.fix}")
    contact = support_line(j.profile.get("support") if isinstance(j.profile, dict) else None, v.verdict, lang)
    if contact:
        out.append(contact)
    for p in paths:
        kind = "report" if p.suffix == ".html" else "result"
        out.append(f"{word(lang, kind)}: {p}")
    return "\n".join(out)


def support_line(sup: Any, verdict: str, lang: str) -> str:
    """"Not ready? Contact IT service desk: +46 8 …, it@example.org" from a profile's [support];
    "" when there is none. Text from a result file: printed through the terminal-safe writer."""
    if not isinstance(sup, dict):
        return ""
    own = sup.get(lang) if isinstance(sup.get(lang), dict) else {}
    name = own.get("name") or sup.get("name") or ""
    hours = own.get("hours") or sup.get("hours") or ""
    ways = [str(sup[k]) for k in ("phone", "email", "web") if isinstance(sup.get(k), str)]
    if not ways:
        return ""
    head = word(lang, "support.ready" if verdict in ("PASS", "WARN") else "support.not_ready")
    text = f"{head} {name}".strip() + ": " + ", ".join(ways)
    return text + (f" ({hours})" if isinstance(hours, str) and hours else "")


def render_report(result: Result, judgement: Judgement, lang: str = "en") -> str:
    """The workstation report for one result, as judged by ``judgement``."""
    if lang not in languages():
        lang = "en"
    template = environment().get_template("report.html")
    judgement = reconcile(result, judgement)
    return template.render(r=result, j=judgement, v=view(result, judgement, lang), special=_SPECIAL_DETAILS,
                           **template_words(lang))


