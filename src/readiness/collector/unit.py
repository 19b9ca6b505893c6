"""The collector as a hardened systemd service: ``readiness serve --print-unit``.

Sits beside the collector's code and is called from the ``serve`` command only: it turns the
``serve`` options a person typed into a unit file that runs that same command as a service.

The service runs as a user of its own that systemd makes when it starts (``DynamicUser``), with
no capabilities (``CAP_NET_BIND_SERVICE`` only when a port below 1024 needs it), a read-only
system, no home folders, a private /tmp and /dev, and the system calls of an ordinary service.
The one place it may write is its state folder (``StateDirectory``: ``/var/lib/readiness``),
where the SQLite database and the self-test page's results live; a folder given elsewhere is
added with ``ReadWritePaths``. A TLS key readable only by root reaches it through
``LoadCredential`` (systemd copies it into a folder only the service can read, ``%d``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from readiness.i18n.format import Worded
from readiness.textsafe import ControlCharacter, one_line, systemd_quote

UNIT_NAME = "readiness-collector.service"
STATE = Path("/var/lib/readiness")
DEFAULT_DB = f"sqlite:///{STATE}/readiness.db"
DEFAULT_RESULTS = STATE / "selftest"
ENV_FILE = "/etc/readiness/collector.env"  # optional: PGPASSWORD and the like, root-only, never in the unit
PRIVILEGED_BELOW = 1024


class UnitError(Worded):
    """Options that cannot become a safe unit: a catalog key (``unit.err_*``) and its arguments."""


def program_path(argv0: str, found: str | None) -> Path:
    """The ``readiness`` program the unit starts: the console script this command runs as, else
    the one on PATH (``found``); links followed, so the path is where it really is."""
    here = Path(argv0)
    if here.name in ("readiness", "readiness.exe") and here.is_file():
        return here.resolve()
    if found:
        return Path(found).resolve()
    raise UnitError("service_unit.err_no_program")


def hidden_by_unit(program: Path) -> bool:
    """Whether ``ProtectHome`` hides the program (pipx's default home install, a venv in ~)."""
    return any(program.is_relative_to(p) for p in (Path("/home"), Path("/root"), Path("/run/user")))


def _quote(arg: str, what: str = "") -> str:
    """One ExecStart word (see :func:`readiness.textsafe.systemd_quote`): a plain word bare, any
    other in double quotes; a line break or another control character refused (UnitError), as
    it would end the line and start one of its own (an ``ExecStartPre=`` run as root)."""
    try:
        return systemd_quote(arg, what, bare_when_plain=True)
    except ControlCharacter as exc:
        raise UnitError("service_unit.err_control", what=what or Worded("service_unit.what_value"), value=exc.shown) from None


def _one_line(value: str, what: str) -> str:
    try:
        return one_line(value, what)
    except ControlCharacter as exc:
        raise UnitError("service_unit.err_control", what=what, value=exc.shown) from None


def unit_text(program: str, options: Sequence[tuple[str, str | None]], db_url: str | None,
              results_dir: str | None, ports: Sequence[int], tls_cert: str | None = None,
              tls_key: str | None = None) -> str:
    """The unit file. ``program``: the absolute path of the ``readiness`` console script;
    ``options``: the other ``serve`` options as (option, value or None for a flag), in order."""
    if not Path(program).is_absolute():
        raise UnitError("service_unit.err_program_relative", program=repr(program))
    db = _one_line(db_url or DEFAULT_DB, "--db")
    for option, value in options:
        _one_line(value or "", option)
    for option, value in (("--results-dir", results_dir), ("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        _one_line(value or "", option)
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(db)
    except Exception:  # noqa: BLE001 - any unparsable URL: said plainly below
        raise UnitError("service_unit.err_db_url", db=repr(db)) from None
    if parsed.password:
        raise UnitError("service_unit.err_db_password", file=str(ENV_FILE))
    writable: list[Path] = []
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        if not Path(parsed.database).is_absolute():
            raise UnitError("service_unit.err_sqlite_relative", db=repr(db))
        folder = Path(parsed.database).parent
        if not folder.is_relative_to(STATE):
            writable.append(folder)
    results = Path(results_dir) if results_dir else DEFAULT_RESULTS
    if not results.is_absolute():
        raise UnitError("service_unit.err_results_relative", folder=repr(results_dir))
    if not results.is_relative_to(STATE):
        writable.append(results)
    words = [_quote(program), "serve", "--db", _quote(db), "--results-dir", _quote(str(results))]
    for option, value in options:
        words.append(option)
        if value is not None:
            words.append(_quote(value))
    credentials = []
    if tls_cert:
        credentials.append(f"LoadCredential=tls-cert:{Path(tls_cert).resolve()}")
        words += ["--tls-cert", "%d/tls-cert"]  # %d: the credentials folder
    if tls_key:
        credentials.append(f"LoadCredential=tls-key:{Path(tls_key).resolve()}")
        words += ["--tls-key", "%d/tls-key"]
    low = sorted(p for p in ports if 0 < p < PRIVILEGED_BELOW)
    caps = "CAP_NET_BIND_SERVICE" if low else ""
    lines = [
        "# readiness collector: printed by `readiness serve --print-unit`",
        f"# install: save as /etc/systemd/system/{UNIT_NAME}, then",
        f"#   systemctl daemon-reload && systemctl enable --now {UNIT_NAME.removesuffix('.service')}",
        "[Unit]",
        "Description=readiness collector and measurement server",
        "Documentation=https://pypi.org/project/readiness/",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        "ExecStart=" + " ".join(words),
        f"EnvironmentFile=-{ENV_FILE}",
        *credentials,
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=20",
        "# its own user, made by systemd while it runs; writes only to its state folder",
        "DynamicUser=yes",
        "User=readiness",
        "StateDirectory=readiness",
        "StateDirectoryMode=0750",
        f"WorkingDirectory={STATE}",
        "UMask=0077",
        *(f"ReadWritePaths={_quote(str(p))}" for p in writable),
        "ProtectSystem=strict",
        "PrivateMounts=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "PrivateUsers=" + ("no" if low else "yes"),  # a private user namespace cannot bind low ports
        "ProtectHostname=yes",
        "ProtectClock=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectProc=invisible",  # not ProcSubset=pid: the process metrics read /proc/stat
        "NoNewPrivileges=yes",
        f"CapabilityBoundingSet={caps}",
        f"AmbientCapabilities={caps}",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "KeyringMode=private",
        "DevicePolicy=closed",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
