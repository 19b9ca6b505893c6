"""The action planner ("what to fix first"): a pure function, tested on judged rows built here."""

from __future__ import annotations

from readiness.fleet.actions import Req, Unit, action_kind, plan_actions, site_root_causes

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
