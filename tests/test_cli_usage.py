"""Usage errors (a mistyped option, a missing argument, a value the option cannot take) in the
language the command line or the configuration asks for: real command lines through the
installed CLI, each fault in Swedish and in English (``readiness.cli.usage``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Cli

# (the command line, what the Swedish error line says, what click's English one says)
FAULTS = [
    (("run", "--bogus"), "Fel: Det finns ingen flagga '--bogus'.", "Error: No such option '--bogus'."),
    (("aggregate", "--help-me"), "Fel: Det finns ingen flagga '--help-me'. Menade du '--help'?",
     "Error: No such option '--help-me'. Did you mean '--help'?"),
    (("bogus",), "Fel: Det finns inget kommando 'bogus'.", "Error: No such command 'bogus'."),
    (("run", "--lang"), "Fel: Flaggan '--lang' behöver ett värde.", "Error: Option '--lang' requires an argument."),
    (("run", "--quiet=yes"), "Fel: Flaggan '--quiet' tar inget värde.", "Error: Option '--quiet' does not take a value."),
    (("run", "extra", "words"), "Fel: Oväntade argument på slutet (extra words)",
     "Error: Got unexpected extra arguments (extra words)"),
    (("report",), "Fel: Argumentet 'RESULT.json' saknas.", "Error: Missing argument 'RESULT.json'."),
    (("upload", "--attempts", "x"), "Fel: Ogiltigt värde för '--attempts': 'x' är inget heltal.",
     "Error: Invalid value for '--attempts': 'x' is not a valid integer range."),
    (("upload", "--attempts", "-5"), "Fel: Ogiltigt värde för '--attempts': -5 ligger inte i intervallet 1<=x<=20.",
     "Error: Invalid value for '--attempts': -5 is not in the range 1<=x<=20."),
    (("report", "--lang", "de", "r.json"), "Fel: Ogiltigt värde för '--lang': 'de' är inte ett av 'en', 'sv'.",
     "Error: Invalid value for '--lang': 'de' is not one of 'en', 'sv'."),
    # the project's own
    (("run", "--set", "x=1"), "Fel: Ogiltigt värde för '--set': 'x=1' har inte formen KONTROLL.NYCKEL=VÄRDE",
     "Error: Invalid value for '--set': 'x=1' is not CHECK.KEY=VALUE"),
    (("run", "--check", "nope"), "Fel: Ogiltigt värde för '--check': det finns ingen kontroll som heter nope",
     "Error: Invalid value for '--check': no check named nope"),
    (("aggregate",), "Fel: ange resultatmapparna eller -filerna (PATH...) eller --db URL",
     "Error: give the result folders or files (PATH...), or --db URL"),
    (("devices", "--timeout", "abc"), "Fel: Ogiltigt värde för '--timeout': 'abc' är inget tal",
     "Error: Invalid value for '--timeout': 'abc' is not a number"),
    (("devices", "--timeout", "nan"), "Fel: Ogiltigt värde för '--timeout': nan är inget tal från 0,1 till 3\xa0600",
     "Error: Invalid value for '--timeout': nan is not a number from 0.1 to 3,600"),
    # the collector's administration
    (("serve", "token", "add", "--read", "--link"), "Fel: ange --read eller --link, inte båda",
     "Error: give --read or --link, not both"),
    (("serve", "token", "revoke"), "Fel: ange en nyckels ID eller --site NAMN", "Error: give a token ID or --site NAME"),
    (("serve", "token", "add", "--link", "--site", "x", "--base-url", "ftp://x"),
     "Fel: Ogiltigt värde för '--base-url': en adress som https://test.example.org:8443",
     "Error: Invalid value for '--base-url': an address such as https://test.example.org:8443"),
    (("serve", "token", "add", "--site", "x" * 201), "Fel: Ogiltigt värde för '--site': ett platsnamn på 1 till 200 tecken",
     "Error: Invalid value for '--site': a site name of 1 to 200 characters"),
]

ENGLISH_FRAME = ("Usage:", "Try '", "Error:", "Invalid value", "No such", "Missing", "is not")


@pytest.fixture
def clean(tmp_path: Path) -> tuple[Cli, dict[str, str]]:
    """A CLI with empty configuration folders and no READINESS_* from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("READINESS_")}
    env["XDG_CONFIG_DIRS"] = str(tmp_path / "system")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "user")
    return Cli(env=env, cwd=tmp_path), env


@pytest.mark.parametrize("args,swedish,english", FAULTS, ids=[" ".join(f[0]) for f in FAULTS])
def test_a_usage_error_is_said_in_swedish_when_the_configuration_asks_and_in_english_otherwise(clean, args, swedish,
                                                                                              english):
    cli, env = clean
    sv = cli(*args, env=dict(env, READINESS_LANG="sv"))
    assert sv.returncode == 2 and "Traceback" not in sv.stderr, sv.stderr
    assert swedish in sv.stderr, sv.stderr
    assert not any(frame in sv.stderr for frame in ENGLISH_FRAME), sv.stderr
    if "Se '" in sv.stderr:  # the usage line and the hint to --help come in Swedish too
        assert "Användning: " in sv.stderr and "för hjälp." in sv.stderr
    en = cli(*args, env=env)
    assert en.returncode == 2 and english in en.stderr, en.stderr
    assert not any(w in en.stderr for w in ("Fel:", "Användning", "Det finns")), en.stderr


def test_the_language_comes_from_the_command_line_then_the_variable_then_the_files(clean, tmp_path):
    cli, env = clean
    named = tmp_path / "named.toml"
    named.write_text('lang = "sv"\n', encoding="utf-8")
    user = tmp_path / "user" / "readiness"
    user.mkdir(parents=True)
    swedish, english = "Det finns ingen flagga '--bogus'", "No such option '--bogus'"
    said = {
        "the command's --lang": cli("report", "--lang", "sv", "r.json", "--bogus", env=env),
        "--lang=sv": cli("report", "--lang=sv", "r.json", "--bogus", env=env),
        "the named file": cli("run", "--config", str(named), "--bogus", env=env),
    }
    for where, out in said.items():
        assert out.returncode == 2 and swedish in out.stderr, (where, out.stderr)
    # the command line wins over the variable, and the variable over the user's file
    (user / "config.toml").write_text('lang = "sv"\n', encoding="utf-8")
    assert swedish in cli("run", "--bogus", env=env).stderr  # the user's file
    assert english in cli("run", "--bogus", env=dict(env, READINESS_LANG="en")).stderr
    assert english in cli("report", "--lang", "en", "r.json", "--bogus", env=dict(env, READINESS_LANG="sv")).stderr
    # a configuration that is broken elsewhere still gives its language
    (user / "config.toml").write_text('lang = "sv"\njitter = "soon"\n', encoding="utf-8")
    assert swedish in cli("run", "--bogus", env=env).stderr


def test_an_argument_that_is_not_text_is_refused_in_swedish(clean):
    _cli, env = clean
    out = subprocess.run([sys.executable, "-m", "readiness.cli", "report", b"r\xff.json"], capture_output=True,
                         env=dict(env, READINESS_LANG="sv", LC_ALL="C.UTF-8", PYTHONUTF8="1"))
    err = out.stderr.decode("utf-8", "replace")
    assert out.returncode == 2 and "Traceback" not in err, err
    assert "är inte text i systemets teckenkodning (UTF-8)" in err and "Fel:" in err, err


def test_a_control_character_in_a_value_is_shown_escaped(clean):
    cli, env = clean
    out = cli("run", "--set", "a\x1b[2J=1", env=dict(env, READINESS_LANG="sv"))
    assert out.returncode == 2 and "\x1b" not in out.stderr, repr(out.stderr)
    assert "'a\\x1b[2J=1' har inte formen KONTROLL.NYCKEL=VÄRDE" in out.stderr, out.stderr
    en = cli("run", "--set", "a\x1b[2J=1", env=env)
    assert en.returncode == 2 and "\x1b" not in en.stderr, repr(en.stderr)
    assert "Error: Invalid value for '--set': 'a\\x1b[2J=1' is not CHECK.KEY=VALUE" in en.stderr, en.stderr
    assert "Usage: " in en.stderr and "Try '" in en.stderr


def test_schedule_says_the_runs_options_mistake_in_swedish(clean):
    cli, env = clean
    out = cli("schedule", "install", "--daily", "--", "--bogus", env=dict(env, READINESS_LANG="sv"))
    assert out.returncode == 2 and "Det finns ingen flagga '--bogus'" in out.stderr, out.stderr
    assert "No such option" not in out.stderr
    own = cli("schedule", "install", "--daily", "--", "--lang", "sv", "--bogus", env=env)  # the run's own --lang
    assert own.returncode == 2 and "Det finns ingen flagga '--bogus'" in own.stderr, own.stderr
    plain = cli("schedule", "install", "--daily", "--", "--bogus", env=env)
    assert plain.returncode == 2 and "No such option '--bogus'" in plain.stderr, plain.stderr
