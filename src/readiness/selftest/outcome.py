"""What the self-test page says when the check is over: one verdict, how much a browser could
cover, every fault with its advice, and who keeps the result.

Sits between the judge and the page: built from the same :func:`readiness.render.report.view`
as the stored report, so the page's verdict and its advice come from one judgement and cannot
disagree (a "no fault found" beside advice saying something is wrong cannot be built: advice
is listed only for a judged FAIL, WARN or a required item left unknown, and the headline says
so whenever any is listed). Every word comes from the catalogs; the page shows it as text.
"""

from __future__ import annotations

from typing import Any

from readiness.i18n.format import word
from readiness.judge.verdicts import FAIL, PARTIAL, UNKNOWN, WARN, Judgement
from readiness.render.report import check_title, view
from readiness.result import Result


def keeper(lang: str, org: str = "") -> str:
    """Who keeps the result: the organisation whose link this is (named when the server was
    told its name), never "your organisation" — a partner is not part of it."""
    return word(lang, "selftest_keeper_org", org=org) if org else word(lang, "selftest_keeper")


def coverage_sentence(result: Result, j: Judgement, lang: str) -> str:
    """"Your browser could check 5 of 8 areas: …" with the counts taken from what measured."""
    cov = j.coverage
    if cov is None:
        return ""
    def title(c: str) -> str:
        return check_title(c, lang, result.checks[c].title if c in result.checks else "")

    checked = [c for c in cov.needed if c in cov.measured]
    rest = [c for c in cov.needed if c not in cov.measured]
    if not rest:
        return word(lang, "selftest_coverage_all", total=len(cov.needed), checked=", ".join(map(title, checked)))
    return word(lang, "selftest_coverage", n=len(checked), total=len(cov.needed),
                checked=", ".join(map(title, checked)) or "—", rest=", ".join(map(title, rest)))


def page_outcome(result: Result, j: Judgement, lang: str, org: str = "") -> dict[str, Any]:
    """The page's closing words as plain data (JSON for the page's script).

    ``problems``: every FAIL and WARN (its tiers on one line, as in the report) and every check
    that left a required item unknown, worst first, each with its advice."""
    v = view(result, j, lang)
    # a cause line names the checks it stands for ("Latency, Bandwidth"): listed when one of them
    # left a required item unknown; an unknown recommended item is for the report alone
    blocked = {check_title(x.requirement.check, lang, result.checks[x.requirement.check].title
                           if x.requirement.check in result.checks else "")
               for x in j.items if x.status == UNKNOWN and x.requirement.severity == "required"}
    problems: list[dict[str, str]] = []
    for c in v.causes:
        if blocked & set(c.title.split(", ")):
            problems.append({"status": UNKNOWN, "text": f"{word(lang, 'cannot_check')} {c.title}: {c.cause}",
                             "advice": c.advice})
    for ln in v.lines:
        if ln.status in (FAIL, WARN) or (ln.status == UNKNOWN and any(
                x.requirement.severity == "required" for x in ln.items if x.status == UNKNOWN)):
            problems.append({"status": ln.status, "text": f"{ln.label}: {ln.measured} — {word(lang, 'needs')} {ln.needs}",
                             "advice": ln.fix or ""})
    rank = {FAIL: 0, UNKNOWN: 1, WARN: 2}
    problems.sort(key=lambda p: rank[p["status"]])
    verdict = j.verdict
    headline = word(lang, f"verdict_{verdict}")
    explain_key = f"selftest_explain_{verdict}"
    if verdict == PARTIAL and problems:  # only advice (WARN): not "no fault found" above it
        headline, explain_key = word(lang, "selftest_verdict_PARTIAL_advice"), "selftest_explain_PARTIAL_advice"
    return {"verdict": verdict, "headline": headline, "explain": word(lang, explain_key),
            "coverage": coverage_sentence(result, j, lang), "problems": problems, "keeper": keeper(lang, org)}
