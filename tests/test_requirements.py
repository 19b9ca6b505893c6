"""Strict requirement lists: every mistake names file and line, and nothing runs (exit 2)."""

from __future__ import annotations

import pytest

from readiness.plugins import load_plugins
from readiness.judge.requirements import ProfileError, load_profile, parse_profile, shipped_profiles

GOOD_REQ = """
[[requirement]]
metric = "system.ram_total_gb"
min = 4
severity = "required"
why = "w"
fix = "f"
source = "s"
"""


def parse(text: str):
    plugins = load_plugins()
    return parse_profile(text, "my.toml", plugins.checks, plugins.broken)


def error_of(text: str) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        parse(text)
    return info.value


@pytest.mark.parametrize("name", list(shipped_profiles()))
def test_shipped_profiles_load_and_cite_sources(name):
    plugins = load_plugins()
    prof = load_profile(name, checks=plugins.checks, broken=plugins.broken)
    assert prof.requirements
    for r in prof.requirements:
        assert r.source.startswith("https://"), r.metric
        assert r.translations.get("sv", {}).get("fix"), f"{name}: {r.metric} has no Swedish advice"


def test_a_good_profile_parses():
    prof = parse('name = "mine"\n[checks.system]\nsample_s = 0.5\n' + GOOD_REQ)
    assert prof.name == "mine" and prof.check_settings == {"system": {"sample_s": 0.5}}
    assert prof.requirements[0].min == 4 and prof.requirements[0].line == 5
    assert len(prof.sha256) == 64


@pytest.mark.parametrize(
    "text, line, words",
    [
        ('name = "x"\ncolour = "red"\n', 2, "unknown key 'colour'"),
        ('name = "x"\n' + GOOD_REQ.replace('fix = "f"', 'fix = "f"\nthreshold = 3'), 9, "unknown key 'threshold'"),
        ('name = "x"\n' + GOOD_REQ.replace("system.ram_total_gb", "system.ram_gb"), 4, "provides no metric 'ram_gb'"),
        ('name = "x"\n' + GOOD_REQ.replace("system.ram_total_gb", "nosuch.metric"), 4, "no check named 'nosuch'"),
        ('name = "x"\n' + GOOD_REQ.replace("min = 4", 'min = "four"'), 5, "must be a number"),
        ('name = "x"\n' + GOOD_REQ.replace("min = 4", "min = 4\nmax = 2"), 5, "larger than max"),
        ('name = "x"\n' + GOOD_REQ.replace("min = 4", ""), 3, "needs a bound"),
        ('name = "x"\n' + GOOD_REQ.replace('"required"', '"critical"'), 6, "severity must be"),
        ('name = "x"\n' + GOOD_REQ.replace('fix = "f"\n', ""), 3, "needs a non-empty 'fix'"),
        ('name = "x"\n' + GOOD_REQ.replace("system.ram_total_gb", "system.vpn_active"), 5, "yes/no metric"),
        ('name = "x"\n[checks.system]\nsample_s = 1\nsampel = 2\n', 4, "has no setting 'sampel'"),
        ('name = "x"\n[checks.system]\nsample_s = "slow"\n', 3, "is not valid"),
        ('name = "x"\n[checks.system]\nbudget_s = -1\n', 3, "positive number"),
        ('name = "x"\n[checks.webcam]\n', 2, "no check named 'webcam'"),
        ('name = "x"\n[[requirement]\n', 2, "not valid TOML"),
        ('title = "no name"\n', None, "needs a name"),
    ],
)
def test_mistakes_name_file_and_line(text, line, words):
    err = error_of(text)
    assert words in err.message
    assert err.origin == "my.toml"
    assert err.line == line, str(err)


@pytest.mark.parametrize("text, swedish", [
    ('name = "x"\ncolour = "red"\n', "okänd nyckel 'colour'"),
    ('name = "x"\n' + GOOD_REQ.replace("system.ram_total_gb", "system.ram_gb"), "kontrollen 'system' ger inget mått 'ram_gb'"),
    ('name = "x"\n' + GOOD_REQ.replace("min = 4", "min = 4\nmax = 2"), "min (4) är större än max (2)"),
    ('name = "x"\n' + GOOD_REQ.replace('fix = "f"\n', ""), "behöver en 'fix' som inte är tom"),
    ('name = "x"\n[checks.system]\nsampel = 2\n', "har ingen inställning 'sampel'"),
    ('name = "x"\n[[requirement]\n', "ingen giltig TOML"),
    ('title = "no name"\n', "profilen behöver ett name"),
])
def test_each_mistake_is_said_in_swedish_with_the_same_file_and_line(text, swedish):
    err = error_of(text)
    assert swedish in err.text("sv")
    assert err.text("sv").split(": ")[0] == str(err).split(": ")[0]  # the same file:line
    assert str(err) == err.text("en") and swedish not in str(err)


def test_a_bad_list_is_refused_in_the_language_asked_for_by_each_command(cli, tmp_path):
    bad = tmp_path / "dålig lista.toml"
    bad.write_text('name = "x"\n' + GOOD_REQ.replace("system.ram_total_gb", "system.ram_gb"), encoding="utf-8")
    said = "metric 'system.ram_gb': kontrollen 'system' ger inget mått 'ram_gb'"
    run = cli("run", "--lang", "sv", "--requirements", str(bad), "--no-open", "-o", str(tmp_path / "out"))
    assert run.returncode == 2 and f"{bad}:4: {said}" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()  # nothing ran
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    agg = cli("aggregate", str(fleet), "--lang", "sv", "--requirements", str(bad), "-o", str(tmp_path / "f.html"))
    assert agg.returncode == 2 and said in agg.stderr, agg.stderr
    assert not (tmp_path / "f.html").exists()
    english = cli("aggregate", str(fleet), "--requirements", str(bad), "-o", str(tmp_path / "f.html"))
    assert english.returncode == 2 and "check 'system' provides no metric 'ram_gb'" in english.stderr, english.stderr


def test_cli_refuses_a_bad_profile_before_running_anything(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n' + GOOD_REQ.replace("system.ram_total_gb", "system.ram_gb"))
    out = cli("run", "--requirements", str(bad), "--no-open", "-o", str(tmp_path / "out"))
    assert out.returncode == 2
    assert f"{bad}:4: metric 'system.ram_gb'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cli_unknown_profile_and_missing_file(cli, tmp_path):
    out = cli("run", "--profile", "hd-room", "--no-open")
    assert out.returncode == 2 and "shipped: audio-call, meeting-room, video-call" in out.stderr
    out = cli("run", "--requirements", str(tmp_path / "none.toml"), "--no-open")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_profiles_command_lists_the_shipped_ones(cli):
    out = cli("profiles")
    assert out.returncode == 0
    assert "video-call (default)" in out.stdout and "meeting-room" in out.stdout and "audio-call" in out.stdout
    shown = cli("profiles", "--show", "meeting-room")
    assert shown.stdout == shipped_profiles()["meeting-room"]


def test_a_requirement_may_name_its_service():
    good = parse('name = "x"\n[[requirement]]\nmetric = "latency.rtt_median_ms"\nservice = "Microsoft Teams"\n'
                 'max = 100\nseverity = "required"\nwhy = "w"\nfix = "f"\nsource = "s"\n')
    req = good.requirements[0]
    assert req.service == "Microsoft Teams" and req.to_dict()["service"] == "Microsoft Teams"
    err = error_of('name = "x"\n[[requirement]]\nmetric = "latency.rtt_median_ms"\nservice = 3\n'
                   'max = 100\nseverity = "required"\nwhy = "w"\nfix = "f"\nsource = "s"\n')
    assert ":4:" in str(err) and "'service' must name a service" in str(err)
