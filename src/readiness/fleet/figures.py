"""The fleet, second stage: figures computed from what ``collect`` kept.

Every function here is pure (a ``Fleet`` in, plain JSON-safe data out): what ``aggregate
--json`` writes and what the fleet report lays out. More sections are added as more such
functions, each a function of the collected data, gathered by ``figures``.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, timedelta
from typing import Any, Iterable

from readiness import __version__
from readiness.fleet.files import said
from readiness.fleet.model import FLEET_KIND, FLEET_SCHEMA_VERSION, Fleet, Run
from readiness.fleet.step5 import analysis, organisation, partner_sites, verdict_patterns
from readiness.i18n.format import format_bound
from readiness.judge.requirements import Requirement
from readiness.judge.verdicts import FAIL, PARTIAL, PASS, UNKNOWN, WARN
from readiness.plugins import described
from readiness.result import utc_now

def _counts(runs: Iterable[Run]) -> dict[str, int]:
    c = {"total": 0, "ready": 0, "not_ready": 0, "unknown": 0, "not_reporting": 0, "partial": 0, PASS: 0, WARN: 0, FAIL: 0, UNKNOWN: 0}
    for r in runs:
        c["total"] += 1
        c[r.verdict_group] += 1
        c[r.overall] += 1
        c["partial"] += r.partial
    return c


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * 10 ** exp
        if step >= raw:
            return step
    return 10 ** (exp + 1)


def _bounds(req: Requirement) -> list[tuple[str, float]]:
    return [(k, float(getattr(req, k))) for k in ("min", "max") if getattr(req, k) is not None]


def _plain_label(label: str) -> str:
    """"Memory (8 GB)" -> "Memory": the metric's name, whatever bound each requirement sets."""
    return label.split(" (")[0].strip() or label


def histogram(values: list[float], bounds: list[float], bins: int = 20) -> dict[str, Any] | None:
    """Bin ``values``; the range covers the bounds and all values up to the 99th percentile
    (the few above fall into the last bin, counted as ``above``). Widely spread positive
    values (bandwidth: 0.5 to 900 Mbit/s) get logarithmic bins, so that a bound of 1.2 is not
    lost in the first bar; ``edges`` are the bins' limits either way."""
    if not values:
        return None
    vals = sorted(values)
    n = len(vals)
    top = vals[min(n - 1, int(math.ceil(0.99 * (n - 1))))] if n >= 100 else vals[-1]
    median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    lo = min([vals[0], *bounds])
    hi = max([top, *bounds])
    positive = [v for v in (*vals[: max(1, n // 100)], *bounds) if v > 0]
    scale = "linear"
    squeezed = median - lo < (hi - lo) / 8  # half the values in the first eighth of a linear axis
    seen = Counter(vals)  # each distinct value binned once (10 000 rooms share a few hundred values)
    if vals[0] >= 0 and positive and all(b > 0 for b in bounds) and squeezed and hi / max(min(positive), 1e-9) >= 100:
        scale = "log"
        step = _nice_step((math.log10(hi) - math.log10(min(positive))) / bins)
        start = math.floor(math.log10(min(positive)) / step) * step
        count = max(1, int(math.floor((math.log10(hi) - start) / step)) + 1)
        edges = [10 ** (start + i * step) for i in range(count + 1)]
        index = [(int((math.log10(v) - start) // step) if v > 0 else 0, k) for v, k in seen.items()]
    else:
        if hi - lo <= bins and all(float(v).is_integer() for v in seen):
            step, start = 1.0, math.floor(lo)
            count = int(hi - start) + 1
        else:
            step = _nice_step((hi - lo) / bins if hi > lo else 1.0)
            start = math.floor(lo / step) * step
            count = max(1, int(math.floor((hi - start) / step)) + 1)
        edges = [start + i * step for i in range(count + 1)]
        index = [(int((v - start) // step), k) for v, k in seen.items()]
    counts = [0] * count
    above = 0
    for i, k in index:
        if i >= count:
            above += k
            i = count - 1
        counts[max(0, i)] += k
    return {"scale": scale, "edges": [round(e, 10) for e in edges], "counts": counts, "above": above, "n": n,
            "median": median, "min": vals[0], "max": vals[-1]}


def _period(span_days: int) -> str:
    return "day" if span_days <= 45 else "week" if span_days <= 400 else "month"


def _period_start(d: date, period: str) -> date:
    if period == "week":
        return d - timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    return d


def trend(per_day: dict[date, Counter]) -> dict[str, Any] | None:
    """Runs per day, week or month by verdict; None unless runs span several days."""
    if len(per_day) < 2:
        return None
    days = sorted(per_day)
    period = _period((days[-1] - days[0]).days)
    buckets: dict[date, Counter] = {}
    for d in days:
        buckets.setdefault(_period_start(d, period), Counter()).update(per_day[d])
    points = []
    for start, c in sorted(buckets.items()):
        total = sum(c.values())
        ready = c[PASS] + c[WARN]
        points.append({"period": start.isoformat(), "runs": total, "ready": ready, "not_ready": c[FAIL],
                       "unknown": c[UNKNOWN] + c[PARTIAL], "ready_pct": round(100.0 * ready / total, 1) if total else None})
    return {"period": period, "points": points}


def figures(fleet: Fleet, lang: str = "en", partners: Iterable[str] = (), rows: bool = True) -> dict[str, Any]:
    """The aggregate figures (what ``--json`` writes and the report shows); ``partners`` names
    sites of partner organisations (see ``fleet.step5``). ``rows``: with each row's state
    (``row_state``), which only the JSON holds: a page leaves them out (``with_rows`` adds them
    later, in their place)."""

    reqs = fleet.requirements
    per_req = [Counter() for _ in reqs]
    sites: dict[str, dict[str, Any]] = {}
    patterns, pattern_of = verdict_patterns(fleet.runs)
    for statuses, n in patterns:
        for i, s in statuses.items():
            per_req[i][s] += n
    # per distinct set of verdicts, the items it fails, warns of or could not measure
    flagged = [[(s, i) for i, s in statuses.items() if s == FAIL or s == WARN or s == UNKNOWN]
               for statuses, _ in patterns]
    for r in fleet.runs:
        site = sites.setdefault(r.site, {"runs": [], "rooms": {}})
        site["runs"].append(r)
        # a room's browser self-tests are a row of their own, beside its agent's (``Run.key``)
        site["rooms"].setdefault((r.room, r.facts.get("by") == "browser"), []).append(r)

    def top_failures(runs: list[Run], limit: int = 3) -> list[dict[str, Any]]:
        """What these hosts fail most often: FAIL, then WARN (advice), and only then what could
        not be measured (UNKNOWN), each counted apart: an item never measured is not listed
        above a real failure. Each entry: label, status, units."""
        counted: dict[str, Counter] = {FAIL: Counter(), WARN: Counter(), UNKNOWN: Counter()}
        for r in runs:
            for s, i in flagged[pattern_of[id(r)]]:
                counted[s][i] += 1
        top: list[dict[str, Any]] = []
        seen: set[int] = set()
        for status in (FAIL, WARN, UNKNOWN):
            for i, n in sorted(counted[status].items(), key=lambda kv: (-kv[1], kv[0])):
                if len(top) < limit and i not in seen:
                    seen.add(i)
                    top.append({"label": reqs[i].text("label", lang) or reqs[i].metric, "status": status, "units": n})
        return top

    site_rows = []
    for name in sorted(sites, key=lambda s: (s == "", s.casefold())):
        entry = sites[name]
        rooms = [{"room": room, **({"by": "browser"} if browser else {}), **_counts(runs), "failing": top_failures(runs)}
                 for (room, browser), runs in sorted(entry["rooms"].items(),
                                                     key=lambda kv: (kv[0][0] == "", kv[0][0].casefold(), kv[0][1]))]
        site_rows.append({"site": name, **_counts(entry["runs"]), "rooms": rooms})
    _with_compliance(site_rows, fleet.compliance)

    req_rows = []
    for i, req in enumerate(reqs):
        c = per_req[i]
        req_rows.append({
            "metric": req.metric, "severity": req.severity, "min": req.min, "max": req.max, "expect": req.expect,
            "label": req.text("label", lang) or req.metric, "needed": format_bound(req, fleet.units.get(req.metric), lang), "why": req.text("why", lang), "fix": req.text("fix", lang),
            "source": req.source, "unit": fleet.units.get(req.metric), "profiles": sorted(fleet.requirement_profiles[i]),
            "missed": c[FAIL] + c[WARN], FAIL: c[FAIL], WARN: c[WARN], UNKNOWN: c[UNKNOWN], PASS: c[PASS],
            "judged": sum(c.values()),
        })
    order = sorted(range(len(req_rows)), key=lambda i: (-req_rows[i]["missed"], -req_rows[i][UNKNOWN], req_rows[i]["metric"]))
    req_rows = [req_rows[i] for i in order]

    # The organisation's own rooms and computers as its agents measured them: the tiles and the
    # distributions. Browser self-tests and partner organisations are counted apart.
    partners = list(partners)
    theirs = partner_sites(fleet.runs, partners)
    org = organisation(fleet.runs, theirs)
    apart = {"browser": _counts(r for r in fleet.runs if r.site not in theirs and r.facts.get("by") == "browser"),
             "partners": _counts(r for r in fleet.runs if r.site in theirs)}
    hists = []
    metrics: dict[str, list[Requirement]] = {}
    for req in reqs:
        # numbers only; a service's requirement judges that service's own figure (latency details),
        # not the plotted one, so it names neither the chart nor a bound on it
        if req.expect is None and req.min_version is None and req.service is None:
            metrics.setdefault(req.metric, []).append(req)
    # the checks' key figures first, in their order; any other metric a requirement names follows
    keys = described().key_figures
    order = sorted(metrics, key=lambda m: (keys.index(m) if m in keys else len(keys), m))
    numbers = _numbers(org, order)
    measured_to: dict[str, Counter] = {}
    for metric in order:
        values = numbers[metric]
        bounds = []
        for req in metrics[metric]:
            for kind, b in _bounds(req):
                entry = {"kind": kind, "value": b, "severity": req.severity}
                if entry not in bounds:
                    bounds.append(entry)
        h = histogram(values, [b["value"] for b in bounds])
        if h is None:
            continue
        label = min(_plain_label(r.text("label", lang) or metric) for r in metrics[metric])
        entry = {"metric": metric, "label": label, "unit": fleet.units.get(metric), "bounds": bounds, **h}
        check = metric.partition(".")[0]  # measured to what (the services, or the site's server): the check's "target"
        targets = measured_to.get(check)
        if targets is None:  # once per check, not once per metric (a pass over every row each)
            fact = f"{check}.target"
            targets = measured_to[check] = Counter(t for r in org if isinstance(t := r.facts.get(fact), str))
        if targets:
            entry["measured_to"] = [{"target": t, "units": n} for t, n in targets.most_common(3)]
            entry["measured_to_more"] = max(0, len(targets) - 3)
        hists.append(entry)

    return {
        "kind": FLEET_KIND,
        "schema_version": FLEET_SCHEMA_VERSION,
        "tool_version": __version__,
        "generated_utc": utc_now(),
        "mode": "all-runs" if fleet.all_runs else "latest-per-check",
        "judged_by": ({"as": "profile", **fleet.rejudged_by} if fleet.rejudged_by else {"as": "stored"}),
        "inputs": {"paths": fleet.paths, "results_read": fleet.results_read, "used": len(fleet.runs),
                   "superseded": fleet.superseded, "duplicates": fleet.duplicates, "skipped": len(fleet.skipped),
                   "other_files_ignored": fleet.other_files},
        "counts": _counts(fleet.runs),
        "tiles": _counts(org),  # the organisation's rooms and computers, measured by its agents
        "apart": apart,  # browser self-tests and partner organisations: shown apart from the tiles
        "sites": site_rows,
        "requirements": req_rows,
        "histograms": hists,
        "trend": trend(fleet.per_day),
        "compliance": fleet.compliance,
        **({"rows": fleet_rows(fleet)} if rows else {}),
        "step5": analysis(fleet.runs, fleet.requirements, lang, partners, fleet.rejudged_by, theirs=theirs),
        "skipped": [{"path": s.path, "reason": said(s.reason, lang)} for s in fleet.skipped],
    }


def fleet_rows(fleet: Fleet) -> list[dict[str, Any]]:
    """Every row's state (``row_state``), as the JSON lists them."""
    stamps: dict[Any, str] = {}
    return [row_state(r, stamps) for r in fleet.runs]


def with_rows(fleet: Fleet, figs: dict[str, Any]) -> dict[str, Any]:
    """``figs`` made without the rows (``figures(..., rows=False)``) with them, where ``figures``
    puts them (before "step5"): the same JSON as figures made with them."""
    if "rows" in figs:
        return figs
    out: dict[str, Any] = {}
    for key, value in figs.items():
        if key == "step5":
            out["rows"] = fleet_rows(fleet)
        out[key] = value
    return out


def _with_compliance(site_rows: list[dict[str, Any]], comp: dict[str, Any] | None) -> None:
    """Each site row its share of rooms ready over each window and per day (the trend line);
    each room row its share of days ready (the computers without a room label of a site
    together: their days ready over their days counted)."""
    if not comp:
        return
    windows = comp["windows"]
    by_site = {s["site"]: s for s in comp["sites"]}
    per_room: dict[tuple[str, str], Counter] = {}
    names = [name for w in windows for name in (f"days_{w}", f"ready_{w}")]
    for r in comp["rooms"]:
        c = per_room.setdefault((r["site"], r["room"]), Counter())
        for name in names:
            c[name] += r[name]
    for site in site_rows:
        s = by_site.get(site["site"])
        site["compliance"] = ({**{f"ready_pct_{w}": s[f"ready_pct_{w}"] for w in windows},
                               "daily": [p["ready_pct"] for p in s["days"]]} if s else None)
        for room in site["rooms"]:
            c = per_room.get((site["site"], room["room"])) if room.get("by") != "browser" else None
            room["compliance"] = ({f"ready_pct_{w}": round(100.0 * c[f"ready_{w}"] / c[f"days_{w}"], 1)
                                   if c[f"days_{w}"] else None for w in windows} if c else None)


def _numbers(runs: list[Run], metrics: list[str]) -> dict[str, list[float]]:
    """Each metric's numbers over the runs, in one pass over the runs."""
    out: dict[str, list[float]] = {m: [] for m in metrics}
    pairs = list(out.items())
    for r in runs:
        get = r.values.get
        for metric, values in pairs:
            v = get(metric)
            if type(v) is int or type(v) is float:
                values.append(v)
    return out


def row_state(r: Run, stamps: dict[Any, str] | None = None) -> dict[str, Any]:
    """What one computer or room's state rests on: the checks counted, where each came from,
    the oldest measurement counted, and the checks its profile needs that never ran there.
    ``stamps``: times already written out (a room's checks mostly share one run's time)."""
    stamps = {} if stamps is None else stamps

    def utc(t: Any) -> str:
        text = stamps.get(t)
        if text is None:
            text = stamps[t] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        return text

    checks = {}
    made: dict[Any, dict[str, Any]] = {}  # a row's checks mostly come from one run: one entry for them
    for c, source in sorted(r.sources.items()):
        entry = made.get(source)
        if entry is None:
            h, t, rid = source
            entry = made[source] = {"hostname": h, "started_utc": utc(t), "run_id": rid}
        checks[c] = entry
    return {"site": r.site, "room": r.room, "hostname": r.hostname, "hosts": r.hosts, "verdict": r.shown_verdict,
            "last_verdict": r.verdict, "not_reporting": r.silent, "overall": r.overall, "partial": r.partial,
            "missing_checks": list(r.missing),
            "latest_utc": utc(r.started), "oldest_utc": utc(r.oldest) if r.oldest else None,
            "checks": checks}
