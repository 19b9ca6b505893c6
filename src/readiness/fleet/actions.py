"""What to fix first: failing requirements grouped into actions, ranked by how many rooms and
computers each action makes ready.

Part of the fleet report (step 5 of the travel-free-meetings guide). A pure function over
judged fleet rows: it reads verdicts, never measures and never judges — the judge already
did. Three ideas:

- **One action, many requirements.** Requirements that one fix answers are one action: every
  camera requirement is "the camera", RTT, jitter and loss are "the network path". A
  requirement that could not be judged (UNKNOWN) is its own kind of action: "measure again",
  since nobody can know what to buy for it — except a client's version where the client is
  not installed: installing it is the fix.
- **Site-level root cause.** When every unit (room or computer) of a site fails the same
  network item, the cause is the site's link or firewall, not each room: that becomes one
  action scoped to the site ("open the UDP media ports at Göteborg: all 4 rooms fail there").
- **Ranked greedily by readiness gained.** Actions are taken in the order that makes the most
  units ready at each step: a unit becomes ready once every action it needs is taken. Ties go
  to the action needed by the units closest to ready (fewest fixes left), then to the one that
  touches more units. So the first line is the single fix that turns the most rooms green, the
  second the best next one given the first, and so on; where no single fix readies anything,
  the first lines are the fixes of the rooms closest to ready, and the step that completes
  them names the steps it needs with it (``together_with``: every earlier step any unit it
  readies needs, so doing exactly those steps readies them all). Each step carries how many
  units are ready once it and every step above it are done (``ready_after``, counting those
  already ready). Readiness is counted over the agent's units only, as the fleet's tiles count
  the organisation: a browser self-test row is in an action (and its advice), not in its count.
- **Advice from the majority.** Each action counts, per requirement, how many of its units fail
  it — the agent's units apart from browser self-test rows — so the fix shown for "the camera"
  is the one most of its rooms need, and a browser row arriving cannot change it.

Only blocking verdicts (FAIL or UNKNOWN of a required item) make actions; a WARN is advice,
listed after them by how many units it touches.

Which fix answers which metric the checks say (``Check.fix``, ``Metric.fix``), read from the
loaded plugins (``run.plugins.described``); the kinds' words are ``step5.action.<kind>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from readiness.plugins import described

FAIL, WARN, UNKNOWN = "FAIL", "WARN", "UNKNOWN"
NETWORK_KINDS = ("udp_ports", "reach", "network_path", "bandwidth")


@dataclass(frozen=True)
class Unit:
    """One judged room or computer: its labels and the verdict of each requirement (by index)."""

    key: str
    site: str
    room: str
    host: str
    statuses: Mapping[int, str]
    by: str = "agent"  # "browser": a self-test page row, counted apart (advice, readiness)


@dataclass(frozen=True)
class Req:
    """What the planner needs of a requirement: its metric and whether it is required."""

    metric: str
    required: bool


@dataclass
class Action:
    kind: str  # see action_kind(); the catalogs hold the words (action_<kind>)
    subject: str  # a client key, a check name, or ""
    site: str | None  # set when the action is a site's root cause
    requirements: list[int]  # indexes of the requirements it answers
    units: list[str]  # keys of the units that need it
    advice: bool = False  # WARN only: nothing becomes ready by it
    makes_ready: int = 0  # units ready once this and the actions before it are done
    rank: int = 0
    sites: dict[str, int] = field(default_factory=dict)  # site -> units that need it there
    ready_after: int | None = None  # units ready once this step and all above are done (None: advice)
    together_with: list[int] = field(default_factory=list)  # ranks of earlier steps its newly ready units need too
    failing: dict[int, list[int]] = field(default_factory=dict)  # requirement -> [agent units, browser units] failing it

    def by_majority(self) -> list[int]:
        """Its requirements, the one most of its (agent) units fail first; then browser rows,
        then the list's order."""
        return sorted(self.requirements, key=lambda i: (-self.failing[i][0], -self.failing[i][1], i))

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "kind": self.kind, "subject": self.subject, "site": self.site,
                "advice": self.advice, "makes_ready": self.makes_ready, "ready_after": self.ready_after,
                "together_with": self.together_with, "units": len(self.units),
                "sites": dict(sorted(self.sites.items())), "requirements": self.by_majority(),
                "failing": {str(i): self.failing[i] for i in self.by_majority()}, "unit_keys": self.units}


def action_kind(metric: str, status: str) -> tuple[str, str]:
    """(kind, subject) of the fix for ``metric`` missing its bound with ``status``."""
    if status == UNKNOWN:
        return "measure", metric.partition(".")[0]
    return described().fix_of(metric)


def site_root_causes(units: Sequence[Unit], reqs: Sequence[Req]) -> dict[tuple[str, str], set[int]]:
    """(site, network kind) -> the requirement indexes every unit of that site fails.

    Needs two units or more at the site: one room failing says nothing about the site.
    """
    return _site_root_causes(units, reqs, _Patterns(reqs))


class _Patterns:
    """What the planner reads of a unit's verdicts, worked out once per distinct set of verdicts
    (10 000 rooms have a few hundred): its network failures (``site_root_causes``) and, per
    failing or warning item, the action that answers it (``plan_actions``)."""

    def __init__(self, reqs: Sequence[Req]) -> None:
        self.reqs = reqs
        self.kinds: dict[tuple[str, str], tuple[str, str]] = {}  # (metric, status) -> action_kind
        self.seen: dict[tuple[tuple[int, ...], tuple[str, ...]], tuple[frozenset[int], list[tuple[str, str, int, bool]]]] = {}

    def kind(self, i: int, s: str) -> tuple[str, str]:
        metric = self.reqs[i].metric
        got = self.kinds.get((metric, s))
        if got is None:
            got = self.kinds[(metric, s)] = action_kind(metric, s)
        return got

    def of(self, statuses: Mapping[int, str]) -> tuple[frozenset[int], list[tuple[str, str, int, bool]]]:
        """(the network items it fails, [(kind, subject, item, blocking)] in item order)."""
        pattern = (tuple(statuses), tuple(statuses.values()))
        got = self.seen.get(pattern)
        if got is None:
            got = self.seen[pattern] = self._work(statuses)
        return got

    def _work(self, statuses: Mapping[int, str]) -> tuple[frozenset[int], list[tuple[str, str, int, bool]]]:
        reqs, kind = self.reqs, self.kind
        network = frozenset(i for i, s in statuses.items() if s == FAIL and reqs[i].required
                            and kind(i, s)[0] in NETWORK_KINDS)
        # a client that is not there has no version to show: its version's UNKNOWN is the install
        missing = {kind(i, s)[1] for i, s in statuses.items() if s == FAIL and kind(i, s)[0] == "install"}
        items = []
        for i, s in sorted(statuses.items()):
            blocking = reqs[i].required and s in (FAIL, UNKNOWN)
            if not blocking and s not in (FAIL, WARN):
                continue  # PASS, or an unknown recommended item (not a fix, not blocking)
            k, subject = kind(i, s)
            if k == "measure":
                fix, client = kind(i, FAIL)
                if fix == "update" and client in missing:
                    k, subject = "install", client
            items.append((k, subject, i, blocking))
        return network, items


def _site_root_causes(units: Sequence[Unit], reqs: Sequence[Req], patterns: _Patterns
                      ) -> dict[tuple[str, str], set[int]]:
    by_site: dict[str, list[Unit]] = {}
    for u in units:
        if u.site:
            by_site.setdefault(u.site, []).append(u)
    out: dict[tuple[str, str], set[int]] = {}
    for site, members in by_site.items():
        if len(members) < 2:
            continue
        common: frozenset[int] | None = None
        for u in members:
            failing = patterns.of(u.statuses)[0]
            common = failing if common is None else common & failing
            if not common:
                break
        for i in common or ():
            out.setdefault((site, patterns.kind(i, FAIL)[0]), set()).add(i)
    return out


def plan_actions(units: Iterable[Unit], reqs: Sequence[Req]) -> list[Action]:
    """The actions that make units ready, most readiness gained first; then advice (WARN)."""
    units = list(units)
    patterns = _Patterns(reqs)
    roots = _site_root_causes(units, reqs, patterns)
    actions: dict[tuple[str, str, str | None, bool], Action] = {}
    needs: dict[str, set[tuple[str, str, str | None, bool]]] = {}

    members: dict[tuple[str, str, str | None, bool], set[str]] = {}  # an action's units, to look up

    for u in units:
        browser = u.by == "browser"
        for kind, subject, i, blocking in patterns.of(u.statuses)[1]:
            site = u.site if blocking and i in roots.get((u.site, kind), ()) else None
            key = (kind, subject, site, not blocking)
            a = actions.get(key)
            if a is None:
                a = actions[key] = Action(kind=kind, subject=subject, site=site, requirements=[], units=[],
                                          advice=not blocking)
                members[key] = set()
            failing = a.failing.get(i)
            if failing is None:
                a.requirements.append(i)
                failing = a.failing[i] = [0, 0]
            failing[browser] += 1
            held = members[key]
            if u.key not in held:
                held.add(u.key)
                a.units.append(u.key)
                a.sites[u.site] = a.sites.get(u.site, 0) + 1
            if blocking:
                needs.setdefault(u.key, set()).add(key)

    # candidates in a fixed name order, so equal scores always rank the same way
    pending = sorted((k for k in actions if not k[3]), key=lambda k: (k[0], k[1], k[2] or ""))
    done: set[tuple[str, str, str | None, bool]] = set()
    ready: set[str] = set()
    order: list[Action] = []

    # readiness is counted over the organisation's units as its agents measured them (the fleet
    # tiles' definition): a browser self-test row shapes an action's advice, never its count
    counted = {u.key for u in units if u.by != "browser"}
    # per action, its counted units grouped by what each needs (units that need the same steps
    # become ready together): the scores below count groups, not units
    frozen: dict[frozenset[Any], frozenset[Any]] = {}
    groups: dict[tuple[str, str, str | None, bool], dict[frozenset[Any], int]] = {}
    for k in pending:
        g: dict[frozenset[Any], int] = {}
        for uk in actions[k].units:
            if uk in counted:
                need = frozenset(needs[uk])
                need = frozen.setdefault(need, need)
                g[need] = g.get(need, 0) + 1
        groups[k] = g

    def score(k: tuple[str, str, str | None, bool]) -> tuple[int, int, int]:
        """Units it makes ready now; how near to ready its nearest unit not ready is (minus the
        fixes that unit still lacks); units it touches."""
        gained, nearest = 0, 1 << 30
        for need, n in groups[k].items():
            left = len(need - done)
            if left:  # not ready yet (a counted unit is ready once all it needs is done)
                if left == 1:  # k is the one step it lacks
                    gained += n
                nearest = min(nearest, left)
        return gained, -nearest, len(actions[k].units)

    ready_count = sum(1 for u in units if u.key in counted and u.key not in needs)  # nothing blocking: ready already
    rank_of: dict[tuple[str, str, str | None, bool], int] = {}
    while pending:
        # max keeps the first of equals
        best = max(pending, key=score)
        pending.remove(best)
        done.add(best)
        rank_of[best] = len(order) + 1
        newly = [uk for uk in actions[best].units if uk in counted and uk not in ready and needs[uk] <= done]
        ready.update(newly)
        ready_count += len(newly)
        a = actions[best]
        a.makes_ready, a.ready_after = len(newly), ready_count
        # every other step any of them needed: this step and those make all of them ready (the
        # first one's needs alone can leave out a step another of them needs)
        a.together_with = sorted({rank_of[k] for uk in newly for k in needs[uk] if k != best})
        order.append(a)
    advice = sorted((a for k, a in actions.items() if k[3]), key=lambda a: (-len(a.units), a.kind, a.subject))
    for rank, a in enumerate(order + advice, start=1):
        a.rank = rank
    return order + advice
