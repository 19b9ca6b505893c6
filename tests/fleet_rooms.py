"""Result files of meeting rooms measured by the agent, with every figure the meeting-room list
judges, so a fleet test can give each room known faults and know what each verdict must be.

``room(host, site, room, **faults)``: a result whose figures all pass the meeting-room list,
except the metrics given (``{"camera.height_px": 480}``): those take the given value.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

from readiness.judge.requirements import load_profile
from readiness.result import CheckRecord, Result
from readiness.plugins import load_plugins

NOW = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


def _passing(req: Any) -> Any:
    if req.expect is not None:
        return req.expect
    if req.min_version is not None:
        return "999.0"
    if req.min is not None:
        return req.min * 2
    return req.max / 2


def room(host: str, site: str, room_label: str, faults: dict[str, Any] | None = None, *, browser: bool = False,
         profile: str = "meeting-room", minutes: int = 0) -> Result:
    plugins = load_plugins()
    prof = load_profile(profile, checks=plugins.checks, broken=plugins.broken)
    faults = faults or {}
    t = (NOW - timedelta(minutes=minutes)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    checks: dict[str, CheckRecord] = {}
    services: dict[str, dict[str, Any]] = {}
    for req in prof.requirements:
        check, _, name = req.metric.partition(".")
        if browser and check in ("system", "connectivity", "software"):
            continue
        rec = checks.setdefault(check, CheckRecord(name=check, status="ok", started_utc=t, duration_s=1.0))
        value = faults.get(req.metric, _passing(req))
        if value is None:
            continue
        if req.service is not None:
            services.setdefault(req.service, {})[name] = faults.get(f"{req.service}:{req.metric}", _passing(req))
            continue
        if name not in rec.metrics:
            rec.metrics[name] = {"value": value, "unit": ""}
        elif not isinstance(value, bool) and req.min is not None:
            rec.metrics[name]["value"] = max(rec.metrics[name]["value"], value) if req.metric not in faults else value
    if "latency" in checks:
        checks["latency"].details = {"method": "udp-stun", "target": f"stun.{site.lower()}.example:3478",
                                     "services": {n: v for n, v in services.items()}}
    if "connectivity" in checks:  # the services the fleet's subscriptions section lists
        udp = checks["connectivity"].metrics.get("udp_media_reachable", {}).get("value")
        checks["connectivity"].details = {"services": [{"name": "Microsoft Teams", "reachable": True, "udp_media": udp}]}
    host_info = {"hostname": host, "os": "Windows"} | ({"measured_by": "browser"} if browser else {})
    run_id = hashlib.md5(f"{host}-{minutes}".encode()).hexdigest()
    return Result(run_id=run_id, started_utc=t, finished_utc=t, host=host_info,
                  labels={k: v for k, v in (("site", site), ("room", room_label)) if v},
                  profile=prof.summary(), checks=checks, tool_version="0.2.0")
