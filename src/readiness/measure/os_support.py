"""Is this OS version still supported by its vendor? A shipped table, never a guess.

Used by the ``software`` check. The table (``data/os_support.toml``) names for each OS version
the day its vendor's security updates end, the page that says so, and the day the table was
taken. A profile can give a newer table file (``[checks.software] os_support_table``) or extra
entries (``os_support``), which win over the shipped ones. A table older than its
``stale_after_days`` does not judge: the status is unknown and the finding says the table is
stale, because a vendor may have extended support or released versions the table lacks.
"""

from __future__ import annotations

import sys
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_ENTRY_KEYS = {"system", "version", "build", "name", "family", "end", "supported_when_taken", "source"}


class TableError(ValueError):
    """A table that cannot be used; the message names the file and the entry."""


def _entry(raw: Any, origin: str, i: int) -> dict[str, Any]:
    where = f"{origin}: os entry {i + 1}"
    if not isinstance(raw, dict):
        raise TableError(f"{where}: must be a table")
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise TableError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_ENTRY_KEYS))})")
    if not isinstance(raw.get("system"), str) or not raw["system"].strip():
        raise TableError(f"{where}: needs system = \"windows\" | \"macos\" | an os-release ID")
    if "build" in raw and not (isinstance(raw["build"], int) and not isinstance(raw["build"], bool)):
        raise TableError(f"{where}: build must be a whole number")
    if "version" in raw and not isinstance(raw["version"], str):
        raise TableError(f"{where}: version must be text, e.g. \"22.04\"")
    if "build" not in raw and "version" not in raw:
        raise TableError(f"{where}: needs a version (or, for Windows, a build)")
    end = raw.get("end")
    if end is not None and not isinstance(end, date):
        raise TableError(f"{where}: end must be a date, e.g. 2027-06-01")
    if end is None and raw.get("supported_when_taken") is not True:
        raise TableError(f"{where}: needs an end date, or supported_when_taken = true")
    if not isinstance(raw.get("source"), str) or not raw["source"].strip():
        raise TableError(f"{where}: needs the source it was taken from")
    family = raw.get("family", [])
    if not isinstance(family, list) or not all(isinstance(f, str) for f in family):
        raise TableError(f"{where}: family must be a list of names")
    return {**raw, "system": raw["system"].strip().lower(), "family": family}


def parse_table(text: str, origin: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TableError(f"{origin}: not valid TOML ({exc})") from None
    taken = data.get("taken")
    if not isinstance(taken, date):
        raise TableError(f"{origin}: needs taken = <the date the table was taken>")
    stale = data.get("stale_after_days", 365)
    if not isinstance(stale, int) or isinstance(stale, bool) or stale <= 0:
        raise TableError(f"{origin}: stale_after_days must be a positive whole number")
    entries = data.get("os", [])
    if not isinstance(entries, list):
        raise TableError(f"{origin}: entries are written as [[os]] blocks")
    return {"origin": origin, "taken": taken, "stale_after_days": stale,
            "entries": [_entry(e, origin, i) for i, e in enumerate(entries)]}


def shipped_table() -> dict[str, Any]:
    text = resources.files("readiness.data").joinpath("os_support.toml").read_text(encoding="utf-8")
    return parse_table(text, "shipped table")


def load_table(path: str | None = None, extra: list[Any] | None = None) -> dict[str, Any]:
    """The shipped table, or the file at ``path``; ``extra`` entries (from a profile) come first."""
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TableError(f"{path}: cannot read the OS support table ({getattr(exc, 'strerror', None) or exc})") from None
        table = parse_table(text, Path(path).name)
    else:
        table = shipped_table()
    if extra:
        own = [_entry(e, "profile os_support", i) for i, e in enumerate(extra)]
        table = {**table, "entries": own + table["entries"]}
    return table


def _matches(entry: dict[str, Any], os_: dict[str, Any]) -> bool:
    if entry["system"] != os_.get("system"):
        return False
    if entry["family"] and os_.get("family") not in entry["family"]:
        return False
    if "build" in entry:
        return str(entry["build"]) == str(os_.get("build", ""))
    version = str(os_.get("version", ""))
    want = entry["version"]
    # "14" matches macOS 14.6.1; "22.04" matches Ubuntu 22.04; "12" matches Debian 12
    return version == want or version.startswith(want + ".")


def support_status(os_: dict[str, Any], table: dict[str, Any], today: date) -> dict[str, Any]:
    """{"supported": True | False | None, "days_left": int | None, the entry, the table facts}.

    None when the OS is not in the table or the table is stale — unknown, never "unsupported".
    """
    age = (today - table["taken"]).days
    out: dict[str, Any] = {"table": {"origin": table["origin"], "taken": table["taken"].isoformat(),
                                     "age_days": age, "stale": age > table["stale_after_days"]},
                           "supported": None, "days_left": None}
    entry = next((e for e in table["entries"] if _matches(e, os_)), None)
    if entry is None:
        out["basis"] = "not_in_table"
        return out
    out["entry"] = {"name": entry.get("name", ""), "source": entry["source"],
                    "end": entry["end"].isoformat() if entry.get("end") else None}
    if out["table"]["stale"]:
        out["basis"] = "table_stale"
        return out
    end = entry.get("end")
    if end is None:
        out["supported"] = True  # the vendor names no end; supported when the table was taken
        out["basis"] = "supported_when_taken"
        return out
    out["days_left"] = (end - today).days
    out["supported"] = today <= end
    out["basis"] = "end_date"
    return out
