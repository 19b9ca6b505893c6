"""Plugin discovery through the readiness.checks entry points, with real fixture distributions."""

from __future__ import annotations

import json

from conftest import FIXTURE_PROFILES


def test_builtin_system_check_is_an_entry_point(cli):
    out = cli("checks", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["checks"]}
    metrics = {m["name"]: m["unit"] for m in rows["system"]["metrics"]}
    assert metrics["system.ram_total_gb"] == "GB"
    assert metrics["system.cpu_cores"] == "cores"


def test_third_party_plugins_are_listed_with_metrics_and_units(plugin_cli):
    out = plugin_cli("checks")
    assert out.returncode == 0, out.stderr
    assert "fixture_fast.value_ms [ms]" in out.stdout
    assert "fixture_fast.flag [yes/no]" in out.stdout
    assert "system.cpu_cores [cores]" in out.stdout  # built-ins still there beside plugins


def test_broken_plugin_is_a_warning_naming_it_and_the_rest_works(plugin_cli, tmp_path):
    out = plugin_cli("checks", "--json")
    assert out.returncode == 0
    warnings = json.loads(out.stdout)["warnings"]
    assert any("'fixture_broken'" in w and "broken on purpose" in w for w in warnings), warnings
    assert any("'fixture_not_a_check'" in w and "not a subclass" in w for w in warnings), warnings
    run = plugin_cli("run", "--requirements", str(FIXTURE_PROFILES / "fixture.toml"), "--no-open", "-o", str(tmp_path / "out"))
    assert run.returncode == 0, run.stderr
    assert "'fixture_broken'" in run.stderr and "failed to load" in run.stderr
    assert "Traceback" not in run.stderr


def test_requirement_on_a_broken_plugin_is_unknown_not_a_crash(plugin_cli, tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text(
        'name = "p"\n[[requirement]]\nmetric = "fixture_broken.x"\nmin = 1\nseverity = "required"\n'
        'why = "w"\nfix = "f"\nsource = "s"\n'
    )
    out = plugin_cli("run", "--requirements", str(profile), "--no-open", "-o", str(tmp_path / "o"), "--json")
    assert out.returncode == 1, out.stderr
    doc = json.loads(out.stdout)
    item = doc["judgement"]["items"][0]
    assert item["status"] == "UNKNOWN"
    assert "could not be loaded" in item["reason"] and "broken on purpose" in item["reason"]
    assert doc["checks"]["fixture_broken"]["status"] == "error"


def test_a_check_naming_an_unknown_section_is_a_warning_naming_it(plugin_cli):
    out = plugin_cli("checks", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert any("'fixture_nowhere'" in w and "'plumbing'" in w and "equipment" in w for w in doc["warnings"]), doc
    assert "fixture_nowhere" not in {r["name"] for r in doc["checks"]}
    assert "fixture_fast" in {r["name"] for r in doc["checks"]}
