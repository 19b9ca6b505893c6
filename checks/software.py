"""The software check: meeting clients and browsers installed (and their versions), and the
operating system with whether its vendor still supports it.

A built-in check plugin (entry point ``software``). Reads what the OS keeps (``inventory.py``)
and the end-of-support table (``os_support.py``); judges nothing: "Teams older than the
organisation's minimum" is a ``min_version`` requirement in a profile, "OS out of support" an
``expect = true`` on ``os_supported``. Records only the clients it looks for, never a list of
other software, a user name or a file name.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from readiness.check import Check, CheckContext, CheckError, Measurement, Metric, Setting
from readiness.measure.inventory import CLIENTS, Probe, installed_clients, os_info
from readiness.measure.os_support import TableError, load_table, support_status
from readiness.versions import newest


def _client_metrics() -> tuple[Metric, ...]:
    out = []
    for key, c in CLIENTS.items():
        out.append(Metric(f"{key}_installed", "", f"{c['title']} is installed", kind="bool", fix="install",
                          fix_subject=key))
        out.append(Metric(f"{key}_version", "", f"{c['title']}: newest installed version", kind="version",
                          section="security", fix="update", fix_subject=key))  # an outdated client is a security matter; which are there is not
    return tuple(out)


def os_version_text(os_: dict[str, Any]) -> str | None:
    """The OS version as a comparable version string (Windows as it reports itself: 10.0.<build>.<UBR>)."""
    if os_.get("system") == "windows":
        return f"10.0.{os_['full_build']}" if os_.get("full_build") else None
    return os_.get("version") or None


class SoftwareCheck(Check):
    name = "software"
    title = "Software and operating system"
    description = "Meeting clients and browsers installed, their versions; the OS and its vendor support."
    section = "subscriptions"
    metrics = _client_metrics() + (
        Metric("os_version", "", "operating system version (Windows: 10.0.<build>.<revision>)", kind="version",
               section="security", fix="update_os"),
        Metric("os_supported", "", "the OS version still gets security updates from its vendor", kind="bool",
               section="security", security_fact=True, fix="update_os"),
        Metric("os_support_days_left", "days", "days until the vendor's security updates end", section="security",
               fix="update_os"),
    )
    settings = {
        "root": Setting("", "where the file system starts (default: /); for reading a mounted disk image", str),
        "os_support_table": Setting("", "a newer OS end-of-support table (TOML, as the shipped one)", str),
        "os_support": Setting([], "extra end-of-support entries: {system, version | build, end | "
                                  "supported_when_taken, source, name, family}", list),
    }
    budget_s = 30.0  # Windows' reg query over the uninstall keys can take seconds on a cold cache

    def run(self, ctx: CheckContext, probe: Probe | None = None, today: Any = None) -> Measurement:
        if probe is None:
            root = ctx.settings.get("root") or "/"
            if not Path(root).is_dir():
                raise CheckError(f"software.root: {root} is not a folder")
            probe = Probe(root=Path(root))
        try:
            table = load_table(ctx.settings.get("os_support_table") or None, ctx.settings.get("os_support") or [])
        except TableError as exc:
            raise CheckError(str(exc)) from None
        today = today or datetime.now(timezone.utc).date()

        ctx.say("looking for meeting clients and browsers", step="software_looking")
        found, sources = installed_clients(probe)
        metrics: dict[str, Any] = {}
        clients: dict[str, Any] = {}
        for key, c in CLIENTS.items():
            copies = found.get(key, [])
            if copies:
                metrics[f"{key}_installed"] = True
                version = newest([x["version"] for x in copies if x["version"]])
                if version:
                    metrics[f"{key}_version"] = version
                clients[key] = {"title": c["title"], "kind": c["kind"], "version": version, "copies": copies}
            elif sources:  # absent where we could look; with nothing readable it stays unknown
                metrics[f"{key}_installed"] = False

        os_ = os_info(probe)
        status = support_status(os_, table, today)
        version = os_version_text(os_)
        if version:
            metrics["os_version"] = version
        if status["supported"] is not None:
            metrics["os_supported"] = status["supported"]
        if status["days_left"] is not None:
            metrics["os_support_days_left"] = status["days_left"]
        findings = []
        if status["basis"] == "table_stale":
            findings.append({"code": "os_support_table_stale", "args": {"taken": status["table"]["taken"],
                                                                        "age_days": status["table"]["age_days"]}})
        elif status["basis"] == "not_in_table":
            findings.append({"code": "os_not_in_support_table", "args": {"os": _os_label(os_)}})
        elif status["supported"] is False:
            findings.append({"code": "os_support_ended", "args": {"os": _os_label(os_), "end": status["entry"]["end"]}})
        if not sources:
            findings.append({"code": "no_software_inventory", "args": {"system": probe.system}})
        details = {"os": os_, "os_support": status, "clients": clients, "sources": sources, "findings": findings}
        return Measurement(metrics=metrics, details=details)


def _os_label(os_: dict[str, Any]) -> str:
    return " ".join(str(x) for x in (os_.get("name"), os_.get("version") or os_.get("build")) if x)
