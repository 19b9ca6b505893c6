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
  them names the steps it needs with it (``together_with``). Each step carries how many units
  are ready once it and every step above it are done (``ready_after``, counting those already
  ready).
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
    by: str = "agent"  # "browser": a self-test page row, counted apart when choosing an action's advice


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
    by_site: dict[str, list[Unit]] = {}
    for u in units:
        if u.site:
            by_site.setdefault(u.site, []).append(u)
    out: dict[tuple[str, str], set[int]] = {}
    for site, members in by_site.items():
        if len(members) < 2:
            continue
        common: set[int] | None = None
        for u in members:
            failing = {i for i, s in u.statuses.items() if s == FAIL and reqs[i].required
                       and action_kind(reqs[i].metric, s)[0] in NETWORK_KINDS}
            common = failing if common is None else common & failing
        for i in common or ():
            out.setdefault((site, action_kind(reqs[i].metric, FAIL)[0]), set()).add(i)
    return out


def plan_actions(units: Iterable[Unit], reqs: Sequence[Req]) -> list[Action]:
    """The actions that make units ready, most readiness gained first; then advice (WARN)."""
    units = list(units)
    roots = site_root_causes(units, reqs)
    actions: dict[tuple[str, str, str | None, bool], Action] = {}
    needs: dict[str, set[tuple[str, str, str | None, bool]]] = {}

    members: dict[tuple[str, str, str | None, bool], set[str]] = {}  # an action's units, to look up

    def add(key: tuple[str, str, str | None, bool], i: int, u: Unit) -> None:
        a = actions.get(key)
        if a is None:
            a = actions[key] = Action(kind=key[0], subject=key[1], site=key[2], requirements=[], units=[], advice=key[3])
            members[key] = set()
        if i not in a.requirements:
            a.requirements.append(i)
            a.failing[i] = [0, 0]
        a.failing[i][u.by == "browser"] += 1
        if u.key not in members[key]:
            members[key].add(u.key)
            a.units.append(u.key)
            a.sites[u.site] = a.sites.get(u.site, 0) + 1

    for u in units:
        # a client that is not there has no version to show: its version's UNKNOWN is the install
        missing = {action_kind(reqs[i].metric, s)[1] for i, s in u.statuses.items()
                   if s == FAIL and action_kind(reqs[i].metric, s)[0] == "install"}
        for i, s in sorted(u.statuses.items()):
            blocking = reqs[i].required and s in (FAIL, UNKNOWN)
            if not blocking and s not in (FAIL, WARN):
                continue  # PASS, or an unknown recommended item (not a fix, not blocking)
            kind, subject = action_kind(reqs[i].metric, s)
            if kind == "measure":
                fix, client = action_kind(reqs[i].metric, FAIL)
                if fix == "update" and client in missing:
                    kind, subject = "install", client
            site = u.site if blocking and (u.site, kind) in roots and i in roots[(u.site, kind)] else None
            key = (kind, subject, site, not blocking)
            add(key, i, u)
            if blocking:
                needs.setdefault(u.key, set()).add(key)

    # candidates in a fixed name order, so equal scores always rank the same way
    pending = sorted((k for k in actions if not k[3]), key=lambda k: (k[0], k[1], k[2] or ""))
    done: set[tuple[str, str, str | None, bool]] = set()
    ready: set[str] = set()
    order: list[Action] = []

    def gained(k: tuple[str, str, str | None, bool]) -> int:
        taken = done | {k}
        return sum(1 for uk in actions[k].units if uk not in ready and needs[uk] <= taken)

    def closest(k: tuple[str, str, str | None, bool]) -> int:
        """How near to ready its nearest unit is: minus the fixes that unit still lacks."""
        return -min((len(needs[uk] - done) for uk in actions[k].units if uk not in ready), default=1 << 30)

    ready_count = sum(1 for u in units if u.key not in needs)  # nothing blocking: ready already
    rank_of: dict[tuple[str, str, str | None, bool], int] = {}
    while pending:
        # max keeps the first of equals
        best = max(pending, key=lambda k: (gained(k), closest(k), len(actions[k].units)))
        pending.remove(best)
        done.add(best)
        rank_of[best] = len(order) + 1
        newly = [uk for uk in actions[best].units if uk not in ready and needs[uk] <= done]
        ready.update(newly)
        ready_count += len(newly)
        a = actions[best]
        a.makes_ready, a.ready_after = len(newly), ready_count
        if newly:  # the other steps the first of them needed (the same for all when ranked this way)
            a.together_with = sorted(rank_of[k] for k in needs[newly[0]] if k != best)
        order.append(a)
    advice = sorted((a for k, a in actions.items() if k[3]), key=lambda a: (-len(a.units), a.kind, a.subject))
    for rank, a in enumerate(order + advice, start=1):
        a.rank = rank
    return order + advice
