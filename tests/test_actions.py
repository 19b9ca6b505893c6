"""The action planner ("what to fix first"): a pure function, tested on judged rows built here."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from readiness.fleet.actions import Req, Unit, action_kind, plan_actions, site_root_causes
from readiness.fleet.step5 import _combination

REQS = [
    Req("camera.height_px", True),                  # 0
    Req("camera.fps", True),                        # 1
    Req("connectivity.udp_media_reachable", True),  # 2
    Req("software.teams_version", True),            # 3
    Req("software.teams_installed", True),          # 4
    Req("latency.rtt_median_ms", True),             # 5
    Req("system.ram_total_gb", False),              # 6 (recommended)
    Req("security.firewall_on", True),              # 7
]


def unit(key: str, site: str, fails: dict[int, str], room: str = "") -> Unit:
    statuses = {i: "PASS" for i in range(len(REQS))} | fails
    return Unit(key=key, site=site, room=room or key, host=key, statuses=statuses)


def test_requirements_one_fix_answers_are_one_action() -> None:
    assert action_kind("camera.height_px", "FAIL") == action_kind("camera.fps", "FAIL") == ("camera", "")
    assert action_kind("software.teams_version", "FAIL") == ("update", "teams")
    assert action_kind("software.teams_installed", "FAIL") == ("install", "teams")
    assert action_kind("software.os_supported", "FAIL") == ("update_os", "")
    assert action_kind("camera.fps", "UNKNOWN") == ("measure", "camera")  # nobody can buy a fix for "not measured"


def test_site_root_cause_needs_every_unit_of_the_site() -> None:
    units = [unit(f"gbg{i}", "Göteborg", {2: "FAIL"}) for i in range(4)]
    units += [unit("sthlm1", "Stockholm", {2: "FAIL"}), unit("sthlm2", "Stockholm", {})]
    units += [unit("lund1", "Lund", {2: "FAIL"})]  # one room says nothing about a site
    assert site_root_causes(units, REQS) == {("Göteborg", "udp_ports"): {2}}
    actions = plan_actions(units, REQS)
    site = next(a for a in actions if a.site == "Göteborg")
    assert (site.kind, len(site.units), site.makes_ready) == ("udp_ports", 4, 4)
    rest = next(a for a in actions if a.kind == "udp_ports" and a.site is None)
    assert sorted(rest.units) == ["lund1", "sthlm1"] and rest.sites == {"Stockholm": 1, "Lund": 1}


def test_ranked_by_units_made_ready_greedily() -> None:
    units = (
        [unit(f"cam{i}", "A", {0: "FAIL", 1: "FAIL"}) for i in range(6)]          # camera alone: 6 ready
        + [unit(f"teams{i}", "B", {3: "FAIL"}) for i in range(3)]                 # Teams update alone: 3
        + [unit(f"both{i}", "C", {0: "FAIL", 3: "FAIL"}, room=f"c{i}") for i in range(5)]  # need both
        + [unit("fw", "D", {7: "FAIL", 6: "WARN"})]                                # firewall: 1; RAM is advice
    )
    actions = plan_actions(units, REQS)
    blocking = [a for a in actions if not a.advice]
    # camera touches 11 units and readies 6; then Teams readies its 3 plus the 5 needing both
    assert [(a.kind, a.subject, a.makes_ready, len(a.units)) for a in blocking] == [
        ("camera", "", 6, 11), ("update", "teams", 8, 8), ("firewall", "", 1, 1)]
    assert sorted(blocking[0].requirements) == [0, 1]
    assert sum(a.makes_ready for a in blocking) == 15  # every unit ends up ready: nothing is lost
    advice = [a for a in actions if a.advice]
    assert [(a.kind, a.makes_ready, a.units) for a in advice] == [("computer", 0, ["fw"])]
    assert [a.rank for a in actions] == [1, 2, 3, 4]


def test_unknown_is_measure_again_and_recommended_unknown_is_nothing() -> None:
    units = [unit("u1", "A", {0: "UNKNOWN", 1: "UNKNOWN"}), unit("u2", "A", {6: "UNKNOWN"})]
    actions = plan_actions(units, REQS)
    assert [(a.kind, a.subject, a.units, a.makes_ready) for a in actions] == [("measure", "camera", ["u1"], 1)]


def test_ready_units_make_no_actions_and_order_is_stable() -> None:
    assert plan_actions([unit("ok", "A", {})], REQS) == []
    units = [unit("a", "S", {7: "FAIL"}), unit("b", "S", {4: "FAIL"})]
    first = [(a.kind, a.subject) for a in plan_actions(units, REQS)]
    assert first == [(a.kind, a.subject) for a in plan_actions(list(reversed(units)), REQS)]
    assert first == [("firewall", ""), ("install", "teams")]  # equal gain and reach: by name


def test_missing_client_version_unknown_is_the_install() -> None:
    units = [unit("ws", "A", {4: "FAIL", 3: "UNKNOWN"})]  # Teams not installed, so its version is unknown
    actions = plan_actions(units, REQS)
    assert [(a.kind, a.subject, sorted(a.requirements), a.makes_ready) for a in actions] == [("install", "teams", [3, 4], 1)]


def test_the_readiness_column_counts_cumulatively_from_the_units_already_ready() -> None:
    units = ([unit("ok1", "A", {}), unit("ok2", "A", {})]                       # ready already
             + [unit(f"cam{i}", "A", {0: "FAIL"}) for i in range(3)]             # camera alone
             + [unit("fw", "B", {7: "FAIL"}), unit("ram", "B", {6: "WARN"})])     # firewall; RAM is advice
    actions = plan_actions(units, REQS)
    assert [(a.kind, a.makes_ready, a.ready_after) for a in actions] == [
        ("camera", 3, 6), ("firewall", 1, 7), ("computer", 0, None)]  # 3 ready (a WARN is ready), +3, +1


def test_when_no_single_fix_readies_anything_the_combination_is_named() -> None:
    # every unit needs two fixes: none alone makes any ready
    units = [unit("r1", "A", {0: "FAIL", 2: "FAIL"}), unit("r2", "A", {0: "FAIL", 5: "FAIL"}),
             unit("r3", "B", {7: "FAIL", 3: "FAIL"})]
    actions = plan_actions(units, REQS)
    got = [(a.rank, a.kind, a.makes_ready, a.ready_after, a.together_with) for a in actions]
    # the camera is needed by two of the units closest to ready: first; then each completes a unit
    assert got[0] == (1, "camera", 0, 0, [])
    assert got[1] == (2, "network_path", 1, 1, [1]) and got[2] == (3, "udp_ports", 1, 2, [1])
    assert got[3:] == [(4, "firewall", 0, 2, []), (5, "update", 1, 3, [4])]


def test_an_actions_advice_follows_most_of_its_agent_rooms_and_not_browser_rows() -> None:
    agents = [unit(f"a{i}", "A", {0: "FAIL"}) for i in range(3)] + [unit("a9", "A", {1: "FAIL"})]
    [camera] = plan_actions(agents, REQS)
    assert camera.by_majority()[0] == 0  # three rooms fail the height, one the frame rate
    browsers = [Unit(key=f"b{i}", site="A", room=f"b{i}", host=f"b{i}", by="browser",
                     statuses={i2: "PASS" for i2 in range(len(REQS))} | {1: "FAIL"}) for i in range(6)]
    [camera] = plan_actions(browsers + agents, REQS)  # more browser rows than agent rows, and first
    assert camera.by_majority()[0] == 0 and camera.failing == {0: [3, 0], 1: [1, 6]}
    [camera] = plan_actions(browsers, REQS)  # browser rows alone: theirs is the advice
    assert camera.by_majority() == [1]


# --- property: the steps an action names really make the units it counts ready ----------------

STATUSES = st.sampled_from(["PASS", "PASS", "FAIL", "WARN", "UNKNOWN"])
UNITS = st.lists(st.tuples(st.dictionaries(st.integers(0, len(REQS) - 1), STATUSES, max_size=len(REQS)),
                           st.sampled_from(["A", "B", "C", ""]), st.sampled_from(["agent", "agent", "browser"])),
                 min_size=1, max_size=12)


def _fleet(drawn: list) -> list[Unit]:
    return [Unit(key=f"u{n}", site=site, room=f"r{n}", host=f"h{n}", by=by,
                 statuses={i: "PASS" for i in range(len(REQS))} | fails) for n, (fails, site, by) in enumerate(drawn)]


def _ready_with(units: list[Unit], actions: list, steps: set[int]) -> set[str]:
    """The agent units ready once exactly ``steps`` (ranks) are done: every blocking action listing them is among them."""
    return {u.key for u in units if u.by != "browser"
            and {a.rank for a in actions if not a.advice and u.key in a.units} <= steps}


@settings(max_examples=400, deadline=None)
@given(UNITS)
def test_the_steps_an_action_names_make_the_units_it_counts_ready(drawn: list) -> None:
    units = _fleet(drawn)
    actions = plan_actions(units, REQS)
    before = _ready_with(units, actions, set())
    for a in actions:
        if a.advice:
            continue
        named = {a.rank, *a.together_with}
        assert all(r < a.rank for r in a.together_with)
        # itself and the steps it is "with": at least the units it says it makes ready
        assert len(_ready_with(units, actions, named) - before) >= a.makes_ready, (a.rank, a.together_with)
        # and this step with every step above it: exactly the cumulative column
        assert len(_ready_with(units, actions, set(range(1, a.rank + 1)))) == a.ready_after
    combination = _combination([a.to_dict() for a in actions])
    if combination is not None:  # "No single fix …: steps X together make n ready"
        assert combination["ready"] > 0
        assert len(_ready_with(units, actions, set(combination["steps"])) - before) >= combination["ready"]


def test_a_step_completing_units_names_every_step_any_of_them_needs() -> None:
    # the Teams install readies u1 first; UDP then readies u0 (UDP alone) and u2 (UDP and the
    # install): the UDP step is "with step 1", though the first of the two it readies needs no other
    units = [unit("u0", "A", {2: "FAIL"}), unit("u1", "A", {4: "FAIL"}), unit("u2", "A", {2: "FAIL", 4: "FAIL"})]
    got = [(a.rank, a.kind, a.makes_ready, a.ready_after, a.together_with) for a in plan_actions(units, REQS)]
    assert got == [(1, "install", 1, 1, []), (2, "udp_ports", 2, 3, [1])]


def test_browser_rows_are_in_an_action_but_not_in_its_readiness_count() -> None:
    agents = [unit("a1", "A", {0: "FAIL"}), unit("a2", "A", {})]
    browser = Unit(key="b1", site="A", room="a2", host="b1", by="browser",
                   statuses={i: "PASS" for i in range(len(REQS))} | {0: "FAIL"})
    [camera] = plan_actions(agents + [browser], REQS)
    assert sorted(camera.units) == ["a1", "b1"] and (camera.makes_ready, camera.ready_after) == (1, 2)
