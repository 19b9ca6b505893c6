"""The run configuration (config.py) through the CLI, as IT would deploy it: a system file, a
user file, --config, READINESS_* variables and the command line, in that order of precedence;
every wrong value exits 2 naming file:line or the variable, before anything is measured."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from readiness.run.config import ConfigError, load_config, parse_duration

from conftest import FIXTURE_PROFILES, Cli, validate_result


@pytest.fixture
def homes(tmp_path: Path, plugin_env: dict[str, str]) -> tuple[Cli, Path, Path, dict[str, str]]:
    """A CLI whose system and user config folders (platformdirs on Linux: XDG_CONFIG_DIRS and
    XDG_CONFIG_HOME) are empty folders of this test; no READINESS_* from outside leaks in."""
    env = {k: v for k, v in plugin_env.items() if not k.startswith("READINESS_") or k == "READINESS_STRICT"}
    system = tmp_path / "etc xdg"
    user = tmp_path / "hem" / "Åsa Öberg" / ".config"
    env["XDG_CONFIG_DIRS"] = str(system)
    env["XDG_CONFIG_HOME"] = str(user)
    (system / "readiness").mkdir(parents=True)
    (user / "readiness").mkdir(parents=True)
    return Cli(env=env, cwd=tmp_path), system / "readiness" / "config.toml", user / "readiness" / "config.toml", env


def show(cli: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, tuple]:
    out = cli("config", "show", "--json", *args, env=env)
    assert out.returncode == 0, out.stderr
    return {s["name"]: (s["value"], s["source"]) for s in json.loads(out.stdout)["settings"]}


def test_precedence_cli_over_env_over_config_over_user_over_system(homes, tmp_path):
    cli, system, user, env = homes
    system.write_text('site = "Stockholm"\nroom = "sys-room"\nlabel = "sys-label"\nlang = "sv"\njitter = "30m"\n'
                      'server = "http://sys.example:8080"\n', encoding="utf-8")
    user.write_text('room = "user-room"\nlabel = "user-label"\nserver = "http://user.example:8080"\n', encoding="utf-8")
    named = tmp_path / "named.toml"
    named.write_text('label = "named-label"\n\n[checks.latency]\nduration_s = 2\n', encoding="utf-8")
    env = dict(env, READINESS_LABEL="env-label", READINESS_SERVER="https://env.example",
               READINESS_CHECKS__LATENCY__DURATION_S="3")
    got = show(cli, "--config", str(named), env=env)
    assert got["site"] == ("Stockholm", f"{system}:1 (system file)")
    assert got["room"] == ("user-room", f"{user}:1 (user file)")
    assert got["label"] == ("env-label", "READINESS_LABEL")
    assert got["server"] == ("https://env.example", "READINESS_SERVER")
    assert got["lang"] == ("sv", f"{system}:4 (system file)")
    assert got["jitter"] == (1800.0, f"{system}:5 (system file)")
    assert got["checks.latency.duration_s"] == (3, "READINESS_CHECKS__LATENCY__DURATION_S")
    assert got["profile"] == ("video-call", "default")
    # without the variable, the --config file's own line is named
    del env["READINESS_CHECKS__LATENCY__DURATION_S"]
    assert show(cli, "--config", str(named), env=env)["checks.latency.duration_s"] == (2, f"{named}:4 (config file)")


def test_run_uses_the_configuration_and_the_command_line_wins(homes, tmp_path):
    cli, system, user, env = homes
    results = tmp_path / "Delad mapp" / "Mötesrum Å"  # spaces and Swedish letters
    system.write_text(f"output_dir = {json.dumps(str(results))}\nsite = \"Malmö\"\nroom = \"4.12\"\n"
                      f"requirements = {json.dumps(str(FIXTURE_PROFILES / 'fixture.toml'))}\n", encoding="utf-8")
    env = dict(env, READINESS_CHECKS__FIXTURE_FAST__VALUE="3", READINESS_NO_SOUND="yes")
    out = cli("run", "--room", "5.01", "--check", "fixture_fast", "--no-open", "--json", env=env)
    assert out.returncode == 0, out.stderr
    data = validate_result(out.stdout)
    assert data["labels"] == {"site": "Malmö", "room": "5.01"}
    assert data["checks"]["fixture_fast"]["metrics"]["value_ms"]["value"] == 3  # env beat the profile's 7
    assert data["checks"]["fixture_fast"]["details"]["options"] == {"no_sound": True, "output_dir": str(results)}
    assert len(list(results.glob("*.json"))) == 1


def test_a_profile_on_a_higher_level_replaces_requirements_below(homes, tmp_path):
    cli, system, user, env = homes
    system.write_text(f"requirements = {json.dumps(str(FIXTURE_PROFILES / 'fixture.toml'))}\n", encoding="utf-8")
    got = show(cli, env=dict(env, READINESS_PROFILE="meeting-room"))
    assert got["profile"] == ("meeting-room", "READINESS_PROFILE")
    assert got["requirements"] == (None, "default")


def test_relative_paths_in_a_file_are_read_from_its_folder(homes, tmp_path):
    cli, system, user, env = homes
    (user.parent / "lists").mkdir()
    (user.parent / "lists" / "vår lista.toml").write_text((FIXTURE_PROFILES / "fixture.toml").read_text())
    user.write_text('requirements = "lists/vår lista.toml"\n', encoding="utf-8")
    assert show(cli)["requirements"][0] == str(user.parent / "lists" / "vår lista.toml")


@pytest.mark.parametrize("text, line, words", [
    ('site = "x"\nlang = "de"\n', 2, "lang: 'de' is not one of en, sv"),
    ('site = "x"\n\nsitee = "y"\n', 3, "unknown setting 'sitee'"),
    ('jitter = "soon"\n', 1, "is not a duration"),
    ('no_sound = "yes"\n', 1, "is not true or false"),
    ('server = "ftp://x"\n', 1, "server must be an http:// or https:// URL (like http://host:8080), not 'ftp://x'"),
    ('profile = "boardroom"\n', 1, "no shipped profile 'boardroom'"),
    ('token_file = "missing.txt"\n', 1, "no such file"),
    ('[checks.latency]\nduration_s = 1\ntargets = ["stun.example.org:3478", "stun.example.org:port"]\n', 3,
     "checks.latency.targets[1]: 'stun.example.org:port': the port is not a number"),
    ('[checks.connectivity]\nservices = [{name = "Teams", tcp = ["teams.microsoft.com:443"]},\n'
     '  {name = "Zoom", tcp = ["zoom.us:99999"]}]\n', 2, "checks.connectivity.services[1]: tcp: 'zoom.us:99999': port 99999"),
    ('[checks.connectivity]\nservices = [{name = "Teams", tpc = ["teams.microsoft.com:443"]}]\n', 2,
     "unknown key(s) tpc"),
    ('[checks.webcam]\nfps = 30\n', 2, "no check named 'webcam'"),
    ('[checks.latency]\nduration = 5\n', 2, "check 'latency' has no setting 'duration'"),
    ('site = "x"\nroom = \n', 2, "is not valid TOML"),
])
def test_a_wrong_value_in_a_file_names_file_and_line_before_anything_runs(homes, tmp_path, text, line, words):
    cli, system, user, env = homes
    user.write_text(text, encoding="utf-8")
    out_dir = tmp_path / "out"
    out = cli("run", "--no-open", "-o", str(out_dir), env=env)
    assert out.returncode == 2
    assert out.stderr.startswith(f"readiness: {user}:{line}: ") and words in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert not out_dir.exists() or not list(out_dir.iterdir())  # nothing was measured or written


@pytest.mark.parametrize("var, value, words", [
    ("READINESS_JITTER", "a while", "READINESS_JITTER: 'a while' is not a duration"),
    ("READINESS_QUIET", "perhaps", "READINESS_QUIET: 'perhaps' is not true or false"),
    ("READINESS_CHECKS__LATENCY__TARGETS", '["ok.example:3478", 5]', "READINESS_CHECKS__LATENCY__TARGETS: checks.latency.targets[1]: 5 is not"),
    ("READINESS_CHECKS__LATENCY", "5", "READINESS_CHECKS__<CHECK>__<SETTING>"),
    ("READINESS_CONFIG", "/nonexistent/readiness.toml", "READINESS_CONFIG: /nonexistent/readiness.toml: no such file"),
])
def test_a_wrong_variable_is_named(homes, var, value, words):
    cli, system, user, env = homes
    out = cli("run", "--no-open", env=dict(env, **{var: value}))
    assert out.returncode == 2 and words in out.stderr, out.stderr


def test_command_line_values_are_checked_the_same_way(homes, tmp_path):
    cli, system, user, env = homes
    for args, words in [(("--jitter", "3 parsecs"), "--jitter: '3 parsecs' is not a duration"),
                        (("--set", "latency.targets=[\"x:0\"]"), "--set: checks.latency.targets[0]: 'x:0': port 0"),
                        (("--server", "ftp://teams"), "--server must be an http:// or https:// URL"),
                        (("--server", "http://srv:99999"), "--server must be a URL like http://host:8080, not 'http://srv:99999'")]:
        out = cli("run", "--no-open", *args, env=env)
        assert out.returncode == 2 and words in out.stderr, (args, out.stderr)


def test_a_bare_server_host_means_http_as_before(homes):
    cli, system, user, env = homes
    assert show(cli, env=dict(env, READINESS_SERVER="mätserver.example:8080"))["server"][0] == "mätserver.example:8080"


def test_an_unknown_variable_is_a_warning_not_silence(homes):
    cli, system, user, env = homes
    out = cli("config", "show", env=dict(env, READINESS_STIE="Umeå"))
    assert out.returncode == 0
    assert "warning: READINESS_STIE is not a readiness setting" in out.stderr


def test_config_show_text_lists_files_and_sources(homes):
    cli, system, user, env = homes
    system.write_text('room = "4.12"\n', encoding="utf-8")
    out = cli("config", "show", env=env)
    assert out.returncode == 0
    assert f"# read: {system}" in out.stdout and f"# not present: {user}" in out.stdout
    assert f'room         = "4.12"    # {system}:1 (system file)' in out.stdout


def test_jitter_waits_at_most_the_limit(homes):
    cli, system, user, env = homes
    out = cli("run", "--jitter", "1s", "--check", "fixture_fast", "--requirements", str(FIXTURE_PROFILES / "fixture.toml"),
              "--no-open", "-o", "out", env=env)
    assert out.returncode == 0, out.stderr
    waited = [line for line in out.stderr.splitlines() if "waiting" in line]
    assert waited and 0 <= float(waited[0].split()[1]) <= 1


def test_durations():
    assert parse_duration("15m") == 900 and parse_duration("30s") == 30 and parse_duration("1h") == 3600
    assert parse_duration(90) == 90 and parse_duration("250ms") == 0.25
    for bad in ("-1m", "25h", True, "m"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_load_config_from_python_without_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "none2"))
    cfg = load_config({"site": "Kiruna"}, env={"READINESS_ROOM": "B2", "READINESS_KEEP_AUDIO": "1"})
    assert (cfg.site, cfg.room, cfg.keep_audio) == ("Kiruna", "B2", True)
    assert cfg.choices(tmp_path).keep_audio and cfg.choices(tmp_path).get("output_dir") == str(tmp_path)
    with pytest.raises(ConfigError, match="READINESS_LANG"):
        load_config(env={"READINESS_LANG": "fi"})
    assert os.environ.get("READINESS_ROOM") is None


def test_the_readme_configuration_example_loads(homes, tmp_path):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Scheduled on every meeting-room PC.**"):]
    example = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    cli, system, user, env = homes
    system.write_text(example, encoding="utf-8")
    got = show(cli, env=env)
    assert got["profile"][0] == "meeting-room" and got["site"][0] == "Stockholm"
    assert got["output_dir"][0] == r"\\fs01.myndighet.local\readiness$\results"


def test_settings_for_a_plugin_that_failed_to_load_warn_and_do_not_stop_the_run(homes):
    cli, system, user, env = homes
    user.write_text("[checks.fixture_broken]\nlevel = 3\n", encoding="utf-8")
    out = cli("config", "show", env=env)
    assert out.returncode == 0, out.stderr
    assert f"warning: {user}:2: settings for check 'fixture_broken' are not checked: its plugin failed to load" in out.stderr


def test_schedule_status_without_the_scheduler_is_one_line(homes):
    cli, system, user, env = homes
    out = cli("schedule", "status", "--via", "cron", env=dict(env, PATH="/nonexistent"))
    assert out.returncode == 2 and out.stderr == "readiness: crontab is not available on this computer (Debian/Ubuntu: apt install cron)\n"


def test_labels_are_held_to_the_schema_length_from_every_source(homes):
    cli, system, user, env = homes
    import json

    from readiness.run.config import MAX_LABEL
    from readiness.schema import schema_text

    # one declaration of the limit (the CLI had its own copy): the schema's, which readers hold to
    labels = json.loads(schema_text())["properties"]["labels"]["properties"]
    assert {labels[k]["maxLength"] for k in ("site", "room", "label")} == {MAX_LABEL}
    system.write_text(f'room = "{"r" * (MAX_LABEL + 1)}"\n', encoding="utf-8")
    out = cli("config", "show", env=env)
    assert out.returncode == 2 and f"{system}:1: room must be at most {MAX_LABEL} characters" in out.stderr
    system.write_text("")
    out = cli("config", "show", env=dict(env, READINESS_SITE="s" * (MAX_LABEL + 1)))
    assert out.returncode == 2 and f"READINESS_SITE must be at most {MAX_LABEL} characters" in out.stderr


def test_a_profile_list_setting_is_checked_item_by_item_too(homes, tmp_path):
    cli, system, user, env = homes
    prof = tmp_path / "lista.toml"
    prof.write_text((FIXTURE_PROFILES / "fixture.toml").read_text(encoding="utf-8")
                    + '\n[checks.latency]\ntargets = ["stun.example.org:3478", "stun.example.org:70000"]\n', encoding="utf-8")
    line = prof.read_text(encoding="utf-8").splitlines().index("[checks.latency]") + 2
    out = cli("run", "--requirements", str(prof), "--no-open", "-o", str(tmp_path / "out"), env=env)
    assert out.returncode == 2, out.stderr
    assert f"{prof}:{line}: checks.latency.targets[1]: 'stun.example.org:70000': port 70000 is outside 1-65535" in out.stderr


def test_upload_url_takes_several_collectors_as_a_list_or_with_commas(homes, tmp_path):
    cli, system, user, env = homes
    system.write_text('upload_url = ["https://c1.example:8443", "https://c2.example:8443"]\n', encoding="utf-8")
    assert show(cli, env=env)["upload_url"][0] == "https://c1.example:8443,https://c2.example:8443"
    env2 = dict(env, READINESS_UPLOAD_URL="http://a.example:8080, http://b.example:8080")
    assert show(cli, env=env2)["upload_url"] == ("http://a.example:8080,http://b.example:8080", "READINESS_UPLOAD_URL")
    system.write_text('site = "x"\nupload_url = ["https://c1.example:8443", "ftp://c2.example"]\n', encoding="utf-8")
    bad = cli("config", "show", env=env)
    assert bad.returncode == 2 and "config.toml:2" in bad.stderr and "ftp://c2.example" in bad.stderr


@pytest.mark.parametrize("where_lang", ["user file", "variable", "option"])
def test_a_broken_configuration_is_told_in_the_language_it_asks_for(homes, tmp_path, where_lang):
    """Real faults in each source; the language comes from wherever it is named (a Swedish
    room PC's user file, READINESS_LANG, --lang), read even when another setting is wrong."""
    cli, system, user, env = homes
    args: tuple[str, ...] = ()
    if where_lang == "user file":
        user.write_text('lang = "sv"\n', encoding="utf-8")
    elif where_lang == "variable":
        env = dict(env, READINESS_LANG="sv")
    else:
        args = ("--lang", "sv")
    faults = [  # (a fault, what the Swedish line says, the same in English)
        ({"READINESS_SERVER": "ftp://sthlm.example"}, None,
         "READINESS_SERVER måste vara en http://- eller https://-adress (som http://host:8080), inte 'ftp://sthlm.example'",
         "READINESS_SERVER must be an http:// or https:// URL"),
        ({"READINESS_JITTER": "90h"}, None, "'90h' måste vara mellan 0 och 24 timmar", "'90h' must be between 0 and 24 hours"),
        ({}, 'jitter = "soon"\n', "jitter: 'soon' är ingen tidslängd som 30s, 15m eller 1h",
         "jitter: 'soon' is not a duration like 30s, 15m or 1h"),
        ({}, 'rum = "4.12"\n', "okänd inställning 'rum'", "unknown setting 'rum'"),
        ({}, 'site = "Malmö\n', "är ingen giltig TOML", "is not valid TOML"),
        ({}, 'profile = "video-call"\nrequirements = "x.toml"\n', "ange profile eller requirements, inte båda",
         "give profile or requirements, not both"),
        ({"READINESS_CHECKS__LATENCY": "2"}, None, "READINESS_CHECKS__<KONTROLL>__<INSTÄLLNING>",
         "READINESS_CHECKS__<CHECK>__<SETTING>"),
        ({"READINESS_CHECKS__LATENCY__SAMPEL": "2"}, None, "READINESS_CHECKS__LATENCY__SAMPEL: kontrollen 'latency' har "
         "ingen inställning 'sampel'", "check 'latency' has no setting 'sampel'"),
    ]
    named = tmp_path / "named.toml"
    for extra, text, swedish, english in faults:
        opts = args
        if text is not None:
            named.write_text(text, encoding="utf-8")
            opts = (*args, "--config", str(named))
        out = cli("run", "--no-open", "--check", "fixture_fast", *opts, env=dict(env, **extra))
        said = [line for line in out.stderr.splitlines() if not line.startswith("warning: check plugin")]
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert len(said) == 1 and said[0].startswith("readiness: ") and swedish in said[0], out.stderr
        # and in English where nothing names a language
        if where_lang != "user file":
            plain = cli("run", "--no-open", "--check", "fixture_fast", *(o for o in opts if o not in ("--lang", "sv")),
                        env={k: v for k, v in dict(env, **extra).items() if k != "READINESS_LANG"})
            assert plain.returncode == 2 and english in plain.stderr, plain.stderr


def test_a_language_that_is_not_there_is_itself_the_error_in_english(homes):
    cli, system, user, env = homes
    user.write_text('lang = "fi"\nsite = "Helsinki"\n', encoding="utf-8")
    out = cli("config", "show", env=env)
    assert out.returncode == 2 and "'fi' is not one of en, sv" in out.stderr, out.stderr


def test_a_warning_while_the_configuration_is_read_is_in_its_language(homes):
    cli, system, user, env = homes
    system.write_text('lang = "sv"\n', encoding="utf-8")
    out = cli("config", "show", env=dict(env, READINESS_STIE="Malmö"))  # a misspelt variable: warned, not fatal
    assert out.returncode == 0, out.stderr
    assert "varning: READINESS_STIE är ingen inställning för readiness; hoppas över" in out.stderr, out.stderr
    out = cli("config", "show", env=dict(env, READINESS_STIE="Malmö", READINESS_LANG="en"))
    assert "warning: READINESS_STIE is not a readiness setting; ignored" in out.stderr, out.stderr
