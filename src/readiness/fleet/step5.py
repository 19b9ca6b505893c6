"""The step-5 analysis of the fleet: "analyse the technical prerequisites — equipment, network,
subscriptions, security and support — in the organisation and at those you meet".

A section of the fleet figures (``aggregate --json``, the fleet report, the CSV): pure
functions of the collected rows, deciding nothing. The judge already gave each requirement's
verdict; here they are grouped the way the guide asks, with the action list that answers "what
to fix first" (``actions.plan_actions``) and partner organisations apart.

Each kept row (``Run``) brings its labels, verdicts, metric values (the clients installed and
their versions among them) and a few facts read from its result by :func:`facts_of` — the
services it reached, who measured it (the agent or the browser self-test) and its profile's
support contact. Nothing personal is among them.

Which section a requirement belongs under, and which yes/no facts the security section counts,
the checks say of themselves (``Check.section``, ``Metric.section``, ``Metric.security_fact``):
read here from the loaded plugins (``run.plugins.described``), so a third-party check's
requirements land in the section it names, with no change here.

Partner organisations: rows measured by the browser self-test whose site label is not a site
of the organisation's own agents, and rows of any site named with ``--partner``. They are
shown in their own section and left out of the action list (their fixes are theirs to make).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from readiness.check import SECTIONS as MEASURED_SECTIONS
from readiness.fleet.actions import Req, Unit, plan_actions
from readiness.i18n.format import word
from readiness.measure.inventory import CLIENTS
from readiness.plugins import described
from readiness.versions import version_key

FAIL, WARN, UNKNOWN, PASS = "FAIL", "WARN", "UNKNOWN", "PASS"
SECTIONS = (*MEASURED_SECTIONS, "support")
_MAX_SERVICES = 20  # a result may list anything; the fleet keeps a bounded, known shape
_MAX_NAME = 80


def section_of(metric: str) -> str:
    """The guide's heading a requirement belongs under: the one its check declares."""
    return described().section_of(metric)


def facts_of(result: Any, judgement_profile: dict[str, Any] | None,
             service_reporters: Iterable[str]) -> dict[str, Any]:
    """The few facts the step-5 sections need from one result, bounded and JSON-safe.
    ``service_reporters``: the checks whose details list meeting services (``Check.reports_services``)."""
    facts: dict[str, Any] = {}
    host = result.host if isinstance(result.host, dict) else {}
    facts["by"] = "browser" if host.get("measured_by") == "browser" else "agent"
    for check in service_reporters:
        rec = result.checks.get(check)
        if rec is None or rec.status != "ok" or not isinstance(rec.details, dict):
            continue
        services = {}
        listed = rec.details.get("services")
        for svc in listed[:_MAX_SERVICES] if isinstance(listed, list) else []:
            if isinstance(svc, dict) and isinstance(svc.get("name"), str):
                reach = svc.get("reachable")
                udp = svc.get("udp_media")
                services[svc["name"][:_MAX_NAME]] = [reach if isinstance(reach, bool) else None,
                                                     udp if isinstance(udp, bool) else None]
        facts[f"{check}.services"] = services
    for check, rec in result.checks.items():  # what a check's figures were measured to (chart titles say so)
        target = rec.details.get("target") if rec.status == "ok" and isinstance(rec.details, dict) else None
        if isinstance(target, str) and target:
            facts[f"{check}.target"] = target[:_MAX_NAME]
    support = _support_of(judgement_profile)
    if support:
        facts["support"] = support
    return facts


def _support_of(profile: Any) -> dict[str, Any]:
    """A profile's [support] as read from a result: known keys, text only (a file may hold anything)."""
    raw = profile.get("support") if isinstance(profile, dict) else None
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {k: v[:_MAX_NAME * 4] for k in ("name", "phone", "email", "web", "hours")
                           if isinstance(v := raw.get(k), str)}
    for lang, texts in raw.items():
        if isinstance(texts, dict) and len(lang) <= 8:
            own = {k: v[:_MAX_NAME * 4] for k in ("name", "hours") if isinstance(v := texts.get(k), str)}
            if own:
                out[lang] = own
    return out


def _unit_key(run: Any) -> str:
    return "/".join(run.key)


def partner_sites(runs: Sequence[Any], named: Iterable[str] = ()) -> set[str]:
    """Sites of partner organisations: those named, and browser-only sites no agent measured."""
    agent_sites = {r.site for r in runs if getattr(r, "facts", {}).get("by", "agent") == "agent"}
    browser_sites = {r.site for r in runs if getattr(r, "facts", {}).get("by") == "browser" and r.site}
    return set(named) | (browser_sites - agent_sites)


def organisation(runs: Iterable[Any], theirs: set[str]) -> list[Any]:
    """The organisation's own rooms and computers as its agents measured them: not a partner's
    (``theirs``: :func:`partner_sites`), not a browser self-test. What the fleet's tiles and
    distributions count, and the total of the action list's "ready after this step"."""
    return [r for r in runs if r.site not in theirs and getattr(r, "facts", {}).get("by", "agent") != "browser"]


def _req_rows(runs: Sequence[Any], reqs: Sequence[Any], lang: str) -> dict[str, list[dict[str, Any]]]:
    """Per section, each requirement with how many units pass, miss or could not show it."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SECTIONS}
    counts = [dict.fromkeys((PASS, WARN, FAIL, UNKNOWN), 0) for _ in reqs]
    for statuses, n in verdict_patterns(runs)[0]:
        for i, s in statuses.items():
            if s in counts[i]:
                counts[i][s] += n
    for i, req in enumerate(reqs):
        c = counts[i]
        if not sum(c.values()):
            continue
        out[section_of(req.metric)].append({
            "index": i, "metric": req.metric, "label": req.text("label", lang) or req.metric, "severity": req.severity,
            "fix": req.text("fix", lang), "source": req.source, **c})
    for rows in out.values():  # what fails first; what could not be measured after it, counted apart
        rows.sort(key=lambda row: (-(row[FAIL] + row[WARN]), -row[UNKNOWN], row["metric"]))
    return out


def verdict_patterns(runs: Iterable[Any]) -> tuple[list[tuple[Any, int]], dict[int, int]]:
    """The distinct sets of verdicts among ``runs`` (10 000 rooms have a few hundred), each
    with how many runs have it; and each run's (by ``id``) index among them: what counts
    verdicts per requirement reads, instead of every run's."""
    index: dict[tuple[tuple[Any, ...], tuple[str, ...]], int] = {}
    patterns: list[list[Any]] = []
    of: dict[int, int] = {}
    for r in runs:
        statuses = r.statuses
        key = (tuple(statuses), tuple(statuses.values()))
        k = index.get(key)
        if k is None:
            k = index[key] = len(patterns)
            patterns.append([statuses, 0])
        patterns[k][1] += 1
        of[id(r)] = k
    return [(p[0], p[1]) for p in patterns], of


def _services(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Per site and service: units that measured it, could reach it, and got UDP media through."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for r in runs:
        facts = getattr(r, "facts", {})
        seen: dict[str, Any] = {}  # each service once per unit, whichever checks tried it
        for key in sorted(k for k in facts if k.endswith(".services") and isinstance(facts[k], dict)):
            seen.update(facts[key])
        for name, (reach, udp) in seen.items():
            row = table.setdefault((r.site, name), {"site": r.site, "service": name, "units": 0, "reachable": 0,
                                                    "udp_ok": 0, "udp_tested": 0})
            row["units"] += 1
            row["reachable"] += reach is True
            if udp is not None:
                row["udp_tested"] += 1
                row["udp_ok"] += udp
    return [table[k] for k in sorted(table, key=lambda k: (k[0] == "", k[0].casefold(), k[1].casefold()))]


def _clients(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """Per client: units that looked, units where it is installed, the versions seen, per site."""
    fixes = described().fixes  # a client is what a check installs (and updates) as the fix of a metric
    version_of = {subject: metric for metric, (kind, subject) in fixes.items() if kind == "update" and subject}
    keys: dict[str, tuple[int, ...] | None] = {}
    out = []
    for installed_metric, (kind, key) in fixes.items():
        if kind != "install" or not key:
            continue
        c = CLIENTS.get(key, {"title": key, "kind": "client"})
        looked = installed = 0
        versions: list[str] = []
        by_site: dict[str, int] = {}
        version_metric = version_of.get(key, "")
        for r in runs:
            there = r.values.get(installed_metric)
            if type(there) is not bool:
                continue
            looked += 1
            if there:
                installed += 1
                by_site[r.site] = by_site.get(r.site, 0) + 1
                v = r.values.get(version_metric)
                if isinstance(v, str) and (keys[v] if v in keys else keys.setdefault(v, version_key(v))) is not None:
                    versions.append(v)
        if not looked:
            continue
        versions.sort(key=keys.__getitem__)  # each distinct version parsed once (10 000 rooms, a few versions)
        out.append({"client": key, "title": c["title"], "kind": c["kind"], "looked": looked, "installed": installed,
                    "oldest": versions[0] if versions else None, "newest": versions[-1] if versions else None,
                    "by_site": dict(sorted(by_site.items()))})
    return out


def _security(runs: Sequence[Any], lang: str) -> list[dict[str, Any]]:
    """Each security fact the checks declare: units where it is yes, no, or not told. Counted, not judged."""
    rows = []
    told = described()
    for metric in told.security_facts:
        code = metric.partition(".")[2]
        key = f"step5.fact.{code}"
        label = word(lang, key)
        label = told.descriptions[metric] if label == key else label  # a check without words of its own
        yes = no = 0
        for r in runs:
            v = r.values.get(metric)
            if v is True:
                yes += 1
            elif v is False:
                no += 1
        rows.append({"fact": code, "metric": metric, "label": label, "yes": yes, "no": no,
                     "not_told": len(runs) - yes - no})
    return rows


def _support(runs: Sequence[Any], rejudged: dict[str, Any] | None) -> dict[str, Any]:
    contacts: list[dict[str, Any]] = []
    if rejudged and _support_of(rejudged):
        contacts.append(_support_of(rejudged))
    else:
        for r in runs:
            s = getattr(r, "facts", {}).get("support")
            if s and s not in contacts:
                contacts.append(s)
    without = 0 if rejudged and rejudged.get("support") else sum(1 for r in runs if not getattr(r, "facts", {}).get("support"))
    return {"contacts": contacts[:10], "units_without_contact": without}


def _partner_rows(runs: Sequence[Any], reqs: Sequence[Any], lang: str) -> list[dict[str, Any]]:
    by_site: dict[str, list[Any]] = {}
    for r in runs:
        by_site.setdefault(r.site, []).append(r)
    out = []
    for site in sorted(by_site, key=str.casefold):
        members = by_site[site]
        # what fails apart from what could not be measured (a browser cannot see the software):
        # an item never measured is never listed as failing
        counted: dict[str, dict[int, int]] = {FAIL: {}, UNKNOWN: {}}
        for r in members:
            for i, s in r.statuses.items():
                if s in counted and reqs[i].severity == "required":
                    counted[s][i] = counted[s].get(i, 0) + 1

        def top(c: dict[int, int]) -> list[dict[str, Any]]:
            return [{"label": reqs[i].text("label", lang) or reqs[i].metric, "units": c[i]}
                    for i in sorted(c, key=lambda i: (-c[i], reqs[i].metric))[:5]]

        out.append({"site": site, "units": len(members),
                    "ready": sum(1 for r in members if r.verdict_group == "ready"),
                    "not_ready": sum(1 for r in members if r.verdict_group == "not_ready"),
                    "unknown": sum(1 for r in members if r.verdict_group == "unknown"),
                    "failing": top(counted[FAIL]), "not_measured": top(counted[UNKNOWN]),
                    "services": _services(members)})
    return out


def analysis(runs: Sequence[Any], reqs: Sequence[Any], lang: str = "en", partners: Iterable[str] = (),
             rejudged: dict[str, Any] | None = None, *, theirs: set[str] | None = None) -> dict[str, Any]:
    """The step-5 sections, the action list and the partner organisations, as plain data.
    ``theirs``: the partner sites when the caller has them already (``partner_sites(runs, partners)``)."""
    partner = partner_sites(runs, partners) if theirs is None else theirs
    own = [r for r in runs if r.site not in partner]
    theirs = [r for r in runs if r.site in partner]
    keys = [_unit_key(r) for r in own]
    units = [Unit(key=k, site=r.site, room=r.room, host=r.hostname, statuses=r.statuses,
                  by=r.facts.get("by", "agent")) for k, r in zip(keys, own)]
    planned = plan_actions(units, [Req(q.metric, q.severity == "required") for q in reqs])
    by_browser = f" ({word(lang, 'fleet_by_browser')})"  # a room's browser row beside its agent's
    labels = {k: (r.room or r.hostname or r.run_id) + (by_browser if r.room and r.facts.get("by") == "browser"
                                                       else "") for k, r in zip(keys, own)}
    actions = []
    for a in planned:
        d = a.to_dict()
        majority = a.by_majority()  # the requirement most of its rooms fail first: its advice is shown
        d["labels"] = [reqs[i].text("label", lang) or reqs[i].metric for i in majority]
        d["fix"] = next((reqs[i].text("fix", lang) for i in majority if reqs[i].text("fix", lang)), "")
        d["subject_title"] = CLIENTS.get(a.subject, {}).get("title", a.subject)
        d["where"] = [labels[k] for k in a.units[:12]]
        d["section"] = section_of(reqs[majority[0]].metric)
        actions.append(d)
    reqrows = _req_rows(own, reqs, lang)
    org = organisation(own, partner)
    return {
        "sections": {
            "equipment": {"requirements": reqrows["equipment"]},
            "network": {"requirements": reqrows["network"],
                        "site_root_causes": [a for a in actions if a["site"]]},
            "subscriptions": {"requirements": reqrows["subscriptions"], "services": _services(own),
                              "clients": _clients(own)},
            "security": {"requirements": reqrows["security"], "facts": _security(own, lang)},
            "support": _support(own, rejudged),
        },
        # the organisation's own rooms and computers as the tiles count them (partners and browser rows apart)
        "units": len(org),
        "ready_before": sum(1 for r in org if r.verdict_group == "ready"),
        "actions": actions,
        "combination": _combination(actions),
        "partners": {"sites": _partner_rows(theirs, reqs, lang), "units": len(theirs)},
    }


def _combination(actions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """When no single fix makes any room or computer ready: the first step that does, and the
    steps it needs with it ({"steps": [1, 2, 3], "ready": n}); None when the first step does."""
    blocking = [a for a in actions if not a["advice"]]
    if not blocking or blocking[0]["makes_ready"]:
        return None
    first = next((a for a in blocking if a["makes_ready"]), None)
    if first is None:
        return None
    return {"steps": [*first["together_with"], first["rank"]], "ready": first["makes_ready"]}


def csv_rows(a: dict[str, Any]) -> list[list[Any]]:
    """The same sections as one long table for a spreadsheet: section, site, item, figures."""
    header = ["section", "rank", "site", "item", "subject", "units", "ready_gained", "ready_after", "yes", "no", "not_told",
              "pass", "warn", "fail", "unknown", "detail"]
    rows: list[list[Any]] = [header]

    def row(**kw: Any) -> None:
        rows.append([kw.get(h, "") for h in header])

    for act in a["actions"]:
        row(section="action", rank=act["rank"], site=act["site"] or "", item=act["kind"], subject=act["subject_title"],
            units=act["units"], ready_gained=act["makes_ready"],
            ready_after="" if act["ready_after"] is None else act["ready_after"], detail="; ".join(act["labels"]))
    for name in ("equipment", "network", "subscriptions", "security"):
        for r in a["sections"][name]["requirements"]:
            row(section=name, item=r["metric"], subject=r["label"], units=r[PASS] + r[WARN] + r[FAIL] + r[UNKNOWN],
                **{"pass": r[PASS], "warn": r[WARN], "fail": r[FAIL], "unknown": r[UNKNOWN]})
    for s in a["sections"]["subscriptions"]["services"]:
        row(section="service", site=s["site"], item=s["service"], units=s["units"], yes=s["reachable"],
            detail=f"udp {s['udp_ok']}/{s['udp_tested']}")
    for c in a["sections"]["subscriptions"]["clients"]:
        row(section="client", item=c["client"], subject=c["title"], units=c["looked"], yes=c["installed"],
            no=c["looked"] - c["installed"], detail=" – ".join(v for v in (c["oldest"], c["newest"]) if v))
    for f in a["sections"]["security"]["facts"]:
        row(section="security_fact", item=f["metric"], yes=f["yes"], no=f["no"], not_told=f["not_told"])
    for c in a["sections"]["support"]["contacts"]:
        row(section="support", subject=c.get("name", ""), detail=" · ".join(str(c[k]) for k in ("phone", "email", "web", "hours") if c.get(k)))
    for p in a["partners"]["sites"]:
        row(section="partner", site=p["site"], units=p["units"], yes=p["ready"], no=p["not_ready"], not_told=p["unknown"],
            detail="; ".join(f"{f['label']} ({f['units']})" for f in p["failing"]))
    return rows
