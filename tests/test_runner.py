"""The wrapper every check runs in: errors, time budgets, killable child processes, concurrency.

All with real fixture plugins: real threads, real child processes, real sleeps and blocks.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from conftest import validate_result
from readiness.plugins import load_plugins
from readiness.run.runner import Planned, run_all, run_one


def planned(name: str, **settings) -> Planned:
    plugins = load_plugins()
    cls = plugins.checks[name]
    merged = cls.default_settings() | settings
    budget = float(merged.pop("budget_s", cls.budget_s))
    return Planned(name=name, cls=cls, spec=plugins.specs[name], settings=merged, budget_s=budget)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child not yet reaped shows as a zombie; that is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.usefixtures("with_fixture_plugins")
class TestWrapper:
    def test_an_exception_becomes_status_error_with_its_message(self):
        rec = run_one(planned("fixture_raises"), {})
        assert rec.status == "error"
        assert rec.error == "ZeroDivisionError: fixture divided by zero"
        assert "ZeroDivisionError" in rec.details["traceback"]
        assert rec.metrics == {}

    def test_a_check_error_is_a_plain_message_without_traceback(self):
        rec = run_one(planned("fixture_explains"), {})
        assert rec.status == "error"
        assert rec.error == "no fixture device found"
        assert "traceback" not in rec.details

    def test_sleeping_forever_in_python_times_out_at_its_budget(self):
        t0 = time.monotonic()
        rec = run_one(planned("fixture_sleeps", budget_s=0.5), {})
        took = time.monotonic() - t0
        assert rec.status == "timeout"
        assert "0.5 s budget" in rec.error
        assert 0.5 <= took < 1.5
        assert 0.5 <= rec.duration_s < 1.5

    def test_blocking_forever_in_a_child_is_killed_at_its_budget(self, tmp_path):
        pid_file = tmp_path / "child.pid"
        rec = run_one(planned("fixture_blocks", pid_file=str(pid_file), budget_s=0.5), {})
        assert rec.status == "timeout"
        assert "process was stopped" in rec.error
        pid = int(pid_file.read_text())
        assert pid != os.getpid()
        assert not pid_alive(pid), "the hung child process must be gone"

    def test_isolated_check_measures_in_another_process_and_reports_progress(self):
        said = []
        rec = run_one(planned("fixture_isolated"), {}, progress=lambda name, msg: said.append((name, msg)))
        assert rec.status == "ok"
        assert rec.metrics["pid"]["value"] != os.getpid()
        assert ("fixture_isolated", "measuring in the child") in said

    def test_units_come_from_the_declaration_and_undeclared_metrics_are_dropped(self):
        rec = run_one(planned("fixture_fast", value=3), {"server": "x"})
        assert rec.metrics == {"value_ms": {"value": 3, "unit": "ms"}, "flag": {"value": True, "unit": ""}}
        assert rec.details["dropped_metrics"] == ["undeclared (not declared by the check)"]
        assert rec.details["options"] == {"server": "x"}


@pytest.mark.usefixtures("with_fixture_plugins")
def test_independent_checks_run_concurrently():
    t0 = time.monotonic()
    recs = run_all([planned("fixture_slow_a", seconds=1.0), planned("fixture_slow_b", seconds=1.0)], {})
    wall = time.monotonic() - t0
    a, b = recs["fixture_slow_a"].metrics, recs["fixture_slow_b"].metrics
    # Their measured intervals overlap: each started before the other ended.
    assert a["started"]["value"] < b["ended"]["value"] and b["started"]["value"] < a["ended"]["value"]
    assert wall < 1.9  # serial would take 2 s or more


@pytest.mark.usefixtures("with_fixture_plugins")
def test_checks_sharing_a_resource_run_one_after_another_in_order():
    recs = run_all([planned("fixture_serial_1", seconds=0.3), planned("fixture_serial_2", seconds=0.3)], {})
    first, second = recs["fixture_serial_2"].metrics, recs["fixture_serial_1"].metrics  # order 0 before 1
    assert first["ended"]["value"] <= second["started"]["value"]


def test_cli_records_all_three_failures_and_keeps_going(plugin_cli, tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text(
        'name = "misbehaving"\n[checks.fixture_sleeps]\nbudget_s = 0.5\n[checks.fixture_blocks]\nbudget_s = 0.5\n'
        '[checks.fixture_raises]\n[checks.fixture_fast]\n'
    )
    t0 = time.monotonic()
    out = plugin_cli("run", "--requirements", str(profile), "--no-open", "-o", str(tmp_path / "out"), "--json", timeout=60)
    took = time.monotonic() - t0
    doc = validate_result(out.stdout)
    status = {name: c["status"] for name, c in doc["checks"].items()}
    assert status == {"fixture_sleeps": "timeout", "fixture_blocks": "timeout", "fixture_raises": "error", "fixture_fast": "ok"}
    # no requirements: nothing was judged, and nothing judged is not ready (never a bare PASS)
    assert out.returncode == 1 and doc["judgement"]["overall"] == "UNKNOWN" and doc["judgement"]["ready"] is False
    assert "Traceback" not in out.stderr
    assert took < 15  # the hung checks did not hang the agent
    saved = list((tmp_path / "out").glob("*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["run_id"] == doc["run_id"]
