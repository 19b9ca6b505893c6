"""``readiness serve --print-unit``: the unit it prints is checked by systemd's own tools
(``systemd-analyze verify`` loads it as systemd would, the ExecStart program included;
``systemd-analyze security --offline`` scores its exposure)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support import need, need_tool
from test_server import certificate  # noqa: F401 - the fixture: a self-signed certificate

UNIT = "readiness-collector.service"


def _unit(cli, tmp_path: Path, *args: str) -> tuple[Path, str]:
    need(shutil.which("readiness") is not None, "the readiness console script is not installed (pip install -e .)")
    done = cli("serve", "--print-unit", *args)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "units"
    folder.mkdir(exist_ok=True)
    path = folder / UNIT
    path.write_text(done.stdout)
    return path, done.stdout


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([need_tool("systemd-analyze"), "verify", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_the_printed_unit_passes_systemd_analyze_verify_and_is_hardened(cli, tmp_path):
    path, text = _unit(cli, tmp_path, "--keep-days", "90", "--public-read")
    done = _verify(path)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    d = _directives(text)
    exec_start = d["ExecStart"][0].split()
    assert Path(exec_start[0]) == Path(shutil.which("readiness")).resolve() and exec_start[1] == "serve"
    assert exec_start[exec_start.index("--db") + 1] == "sqlite:////var/lib/readiness/readiness.db"
    assert "--keep-days" in exec_start and exec_start[exec_start.index("--keep-days") + 1] == "90"
    assert "--public-read" in exec_start and "--http-port" not in exec_start  # only what was typed
    for key, value in (("DynamicUser", "yes"), ("StateDirectory", "readiness"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                       ("PrivateDevices", "yes"), ("CapabilityBoundingSet", ""), ("AmbientCapabilities", ""),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")):
        assert d[key] == [value], key
    assert "@system-service" in d["SystemCallFilter"]
    score = subprocess.run([need_tool("systemd-analyze"), "security", "--offline=true", str(path)],
                           capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", score.stdout)
    assert found, score.stdout[-500:] + score.stderr
    assert float(found.group(1)) <= 2.0  # "OK" on systemd's scale of 0 (locked down) to 10 (exposed)


def test_a_port_below_1024_gets_only_the_capability_to_bind_it(cli, tmp_path):
    path, text = _unit(cli, tmp_path, "--http-port", "443", "--stun-port", "3478")
    assert _verify(path).returncode == 0
    d = _directives(text)
    assert d["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"] and d["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


def test_tls_files_reach_the_service_as_credentials_and_odd_paths_are_quoted(cli, tmp_path, certificate):
    cert, key = certificate
    odd = tmp_path / "self test %d $HOME"
    path, text = _unit(cli, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), "--results-dir", str(odd))
    done = _verify(path)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    d = _directives(text)
    assert d["LoadCredential"] == [f"tls-cert:{Path(cert).resolve()}", f"tls-key:{Path(key).resolve()}"]
    assert "--tls-cert %d/tls-cert --tls-key %d/tls-key" in d["ExecStart"][0]
    assert f'"{tmp_path}/self test %%d $$HOME"' in d["ExecStart"][0]  # systemd would expand % and $
    assert d["ReadWritePaths"] == [f'"{tmp_path}/self test %%d $$HOME"']


def test_verify_catches_a_unit_whose_program_is_missing(cli, tmp_path):
    """The check above can fail: the same unit with a program that is not there does not pass."""
    path, text = _unit(cli, tmp_path)
    broken = text.replace(str(Path(shutil.which("readiness")).resolve()), str(tmp_path / "no-such-readiness"))
    path.write_text(broken)
    assert _verify(path).returncode != 0


@pytest.mark.parametrize("args, why", [
    (("--db", "postgresql://collector:secret@db.example/readiness"), "PGPASSWORD"),
    (("--db", "sqlite:///relative/readiness.db"), "absolute path"),
])
def test_options_that_cannot_make_a_safe_unit_are_plain_errors(cli, args, why):
    done = cli("serve", "--print-unit", *args)
    assert done.returncode == 2 and why in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr and done.stdout == ""


INJECTED = "\nExecStartPre=/bin/sh -c 'id > /tmp/owned'"


@pytest.mark.parametrize("option, value", [
    ("--org", "Acme" + INJECTED),
    ("--results-dir", "/srv/results" + INJECTED),
    ("--db", "sqlite:////srv/readiness.db" + INJECTED),
    ("--trusted-proxy", "127.0.0.2" + INJECTED),
    ("--requirements", "/etc/readiness/own.toml" + INJECTED),
    ("--tls-cert", "/etc/ssl/cert.pem" + INJECTED),
    ("--org", "Acme\rExecStartPre=/bin/true"),
    ("--org", "Acme\u2028ExecStartPre=/bin/true"),
    ("--org", "Acme\x1b]0;x\x07"),
])
def test_a_line_break_or_control_character_in_any_value_is_refused_not_quoted(cli, option, value):
    """A newline inside quotes still ends the unit's line: the rest would be a directive of its own
    (an ExecStartPre= run as root). Every value is refused in one plain line; no unit printed."""
    done = cli("serve", "--print-unit", option, value)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert "control character" in done.stderr and option in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("args, swedish", [
    (("--db", "sqlite:///relative/readiness.db"), "ange SQLite-databasen som en absolut sökväg"),
    (("--db", "postgresql://collector:secret@db.example/readiness"), "alla användare kan läsa en enhetsfil"),
    (("--org", "Acme" + INJECTED), "--org får inte innehålla en radbrytning"),
])
def test_a_refused_unit_is_said_in_the_configured_language(cli, args, swedish):
    import os

    done = cli("serve", "--print-unit", *args, env=dict(os.environ, READINESS_LANG="sv"))
    assert done.returncode == 2 and swedish in done.stderr and done.stdout == "", done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
