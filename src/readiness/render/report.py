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

from readiness.judge.verdicts import FAIL, PASS, UNKNOWN, WARN, Judgement, Verdict
from readiness.result import Result
from readiness.render.charts import line_chart
from readiness.i18n.format import catalog, format_bound, format_value, languages, measured_text, number, unit_text, when, word

# Detail keys with a view of their own (or none) in the per-check section.
_SPECIAL_DETAILS = {"charts", "diagnosis", "findings", "snapshot_jpeg_b64", "traceback", "dropped_metrics"}
_RANK = {FAIL: 0, WARN: 1, UNKNOWN: 2, PASS: 3}


def _load_template(name: str) -> str:
    return resources.files("readiness.templates").joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,  # everything, whatever the file name: results hold hostile strings too
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(format_value=format_value, format_bound=format_bound, measured_text=measured_text,
                       line_chart=line_chart, number=number, word=word, when=when, unit_text=unit_text,
                       link_url=link_url, finding_texts=finding_texts, check_title=check_title,
                       unknown_count=unknown_count, profile_title=profile_title)
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


def check_title(name: str, lang: str, fallback: str = "") -> str:
    titles = catalog(lang).get("check", {})
    return titles.get(name) if isinstance(titles, dict) and name in titles else (fallback or name)


def finding_texts(details: Any, lang: str) -> list[str]:
    """A check's facts in words: ``findings`` (codes with arguments, the words from the
    catalog's ``finding`` table) and, from checks not yet converted, plain ``diagnosis`` lines."""
    out: list[str] = []
    if not isinstance(details, dict):
        return out
    for f in details.get("findings") or []:
        if isinstance(f, dict) and isinstance(f.get("code"), str):
            args = f.get("args") if isinstance(f.get("args"), dict) else {}
            text = word(lang, f"finding.{f['code']}", **args)
            if text == f"finding.{f['code']}":  # a plugin's code without catalog words: show the facts
                text = f["code"].replace("_", " ") + "".join(f"; {k} {v}" for k, v in args.items())
            out.append(text)
    for d in details.get("diagnosis") or []:
        if isinstance(d, str):
            out.append(d)
    return out


@dataclass
class Cause:
    """A check that could not measure what the profile needs from it."""

    check: str
    title: str
    cause: str
    advice: str
    unknown: int  # requirements left unknown by it


@dataclass
class Line:
    """One metric's verdicts (its tiers, e.g. required ≥ 1.2 and recommended ≥ 4) on one line."""

    status: str
    label: str
    measured: str
    needs: str
    fix: str | None  # None when the same advice was already given above
    items: list[Verdict] = field(default_factory=list)


@dataclass
class View:
    verdict: str
    headline: str
    explain: str
    coverage: str | None  # "Partial check: System only — 1 of 7 areas checked"
    causes: list[Cause]
    lines: list[Line]


def _cause_text(result: Result, check: str, lang: str) -> str:
    record = result.checks.get(check)
    if record is None:
        return word(lang, "cause_did_not_run")
    facts = finding_texts(record.details, lang)
    if record.status != "ok":
        if record.status == "error" and facts:  # a failure the check gave as a fact: in the reader's words
            return facts[0]
        key = {"timeout": "cause_timeout", "skipped": "cause_skipped"}.get(record.status, "cause_error")
        return word(lang, key, error=(record.error or "").strip().rstrip("."))
    return facts[0] if facts else word(lang, "cause_no_figures")


def _plain_label(label: str) -> str:
    """"Memory (8 GB)" -> "Memory": a tiered metric's line names the metric, not one tier."""
    return label.split(" (")[0].strip() or label


def view(result: Result, j: Judgement, lang: str = "en") -> View:
    """What both the terminal and the HTML say, in the order they say it."""
    verdict = j.verdict
    coverage = None
    if j.coverage is not None and j.coverage.partial:
        ran = [c for c in j.coverage.needed if c in j.coverage.ran]
        titles = [check_title(c, lang, result.checks[c].title if c in result.checks else "") for c in ran]
        coverage = word(lang, "partial_headline", checks=", ".join(titles) or "—",
                        n=len(ran), total=len(j.coverage.needed))
    # Root causes: a check with requirements it could not measure
    unknown_by_check: dict[str, int] = {}
    for v in j.items:
        if v.status == UNKNOWN:
            unknown_by_check[v.requirement.check] = unknown_by_check.get(v.requirement.check, 0) + 1
    causes: list[Cause] = []
    for check, n in unknown_by_check.items():
        record = result.checks.get(check)
        title = check_title(check, lang, record.title if record else "")
        advice = word(lang, f"unmeasured.{check}")
        if advice == f"unmeasured.{check}":
            advice = word(lang, "unmeasured_other")
        cause = _cause_text(result, check, lang)
        same = next((c for c in causes if c.cause == cause and c.advice == advice), None)
        if same is not None:  # one cause behind several checks (no network): one line
            same.title, same.unknown = f"{same.title}, {title}", same.unknown + n
            continue
        causes.append(Cause(check, title, cause, advice, n))
    given_advice: set[str] = set()
    for c in causes:  # identical advice given once
        if c.advice in given_advice:
            c.advice = ""
        given_advice.add(c.advice)
    # The rest: by metric, worst first
    def key(v: Verdict) -> tuple[str, str]:  # one metric (of one service): its tiers on one line
        return (v.requirement.metric, getattr(v.requirement, "service", None) or "")

    by_metric: dict[tuple[str, str], list[Verdict]] = {}
    for v in j.items:
        if v.status in (FAIL, WARN) or (v.status == UNKNOWN and v.requirement.check not in unknown_by_check):
            by_metric.setdefault(key(v), [])
    for v in j.items:
        if key(v) in by_metric:
            by_metric[key(v)].append(v)
    lines: list[Line] = []
    for (metric, _service), items in by_metric.items():
        bad = [v for v in items if v.status != PASS]
        worst = min(bad, key=lambda v: _RANK[v.status])
        tiers = sorted(items, key=lambda v: v.requirement.severity != "required")
        needs = "; ".join(f"{format_bound(v.requirement, v.unit, lang)} ({word(lang, v.requirement.severity)})"
                          if len(tiers) > 1 else format_bound(v.requirement, v.unit, lang) for v in tiers)
        label = worst.requirement.text("label", lang) or metric
        lines.append(Line(worst.status, _plain_label(label) if len(tiers) > 1 else label,
                          measured_text(worst.requirement, worst.value, worst.unit, lang)
                          if worst.status != UNKNOWN else (worst.reason or "—"),
                          needs, worst.requirement.text("fix", lang), items))
    lines.sort(key=lambda ln: _RANK[ln.status])
    given: set[str] = set()
    for ln in lines:
        if ln.fix in given:
            ln.fix = None
        elif ln.fix:
            given.add(ln.fix)
    explain = f"explain_{verdict}"
    if coverage is not None and verdict != FAIL and result.host.get("measured_by") == "browser":
        explain = "explain_PARTIAL_browser"  # the rest needs the agent, not another --check
    return View(verdict, word(lang, f"verdict_{verdict}"), word(lang, explain), coverage, causes, lines)


def unknown_count(n: int, lang: str) -> str:
    return word(lang, "n_unknown_one") if n == 1 else word(lang, "n_unknown", n=n)


def summary_text(result: Result, j: Judgement, lang: str, paths: list[Path]) -> str:
    """The terminal summary: the verdict, root causes, what to fix, where the files are.
    An offline run without devices fits one screen."""
    v = view(result, j, lang)
    profile = j.profile.get("name", "") if isinstance(j.profile, dict) else ""
    out = [f"{word(lang, 'terminal_' + v.verdict)}  ({profile})"]
    if v.coverage:
        out.append(f"  {v.coverage}")
    for c in v.causes:
        out.append(f"  {word(lang, 'cannot_check')} {c.title}: {c.cause} "
                   f"({unknown_count(c.unknown, lang)})")
        if c.advice:
            out.append(f"      → {c.advice}")
    for ln in v.lines:
        status = word(lang, f"status_{ln.status}")
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
    return template.render(r=result, j=judgement, v=view(result, judgement, lang), special=_SPECIAL_DETAILS,
                           **template_words(lang))


