"""Result documents for the collector tests, made through the project's own model: ``Result`` and
``CheckRecord`` with system and camera metrics, judged by ``judge`` against a small profile
(cores and memory required, a camera picture height required). So every document is exactly
what an agent would upload, and valid under the result schema."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from readiness.judge.verdicts import judge
from readiness.plugins import load_plugins
from readiness.judge.requirements import parse_profile
from readiness.result import CheckRecord, Result

PROFILE = """
name = "collector-test"
title = "Collector test"

[[requirement]]
metric = "system.cpu_cores"
min = 2
severity = "required"
label = "Cores"
why = "Test."
fix = "More cores."
source = "https://example.invalid/cores"

[[requirement]]
metric = "system.ram_total_gb"
min = 4
severity = "required"
label = "Memory"
why = "Test."
fix = "More memory."
source = "https://example.invalid/memory"

[[requirement]]
metric = "camera.height_px"
min = 720
severity = "required"
label = "Picture height"
why = "Test."
fix = "A better camera."
source = "https://example.invalid/camera"
"""

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@lru_cache(maxsize=1)
def profile() -> Any:
    plugins = load_plugins()
    return parse_profile(PROFILE, "collector-test.toml", plugins.checks, plugins.broken)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document(site: str = "Stockholm", room: str = "4.12", hostname: str = "sthlm-mr1", cores: int = 4,
             ram: int = 8, height: int | None = 1080, age: timedelta = timedelta(0), run_id: str | None = None,
             camera: bool = True, label: str = "", browser: bool = False) -> dict[str, Any]:
    """One judged result. ``height=None``: the camera check failed (UNKNOWN); ``camera=False``:
    the camera was not checked at all in this run (its requirement is UNKNOWN too); ``browser``:
    made by the self-test page (``host.measured_by``, a host name from its run id)."""
    when = iso(NOW - age)
    run_id = run_id or uuid.uuid4().hex
    host = {"hostname": f"browser-{run_id[:8]}", "os": "Linux", "measured_by": "browser"} if browser else {
        "hostname": hostname, "os": "Linux"}
    checks = {"system": CheckRecord(name="system", status="ok", started_utc=when, duration_s=1.0, title="This computer",
                                    metrics={"cpu_cores": {"value": cores, "unit": "cores"},
                                             "ram_total_gb": {"value": ram, "unit": "GB"}})}
    if camera:
        checks["camera"] = (CheckRecord(name="camera", status="error", started_utc=when, duration_s=0.5, title="Camera",
                                        error="no camera found") if height is None else
                            CheckRecord(name="camera", status="ok", started_utc=when, duration_s=2.0, title="Camera",
                                        metrics={"height_px": {"value": height, "unit": "px"}}))
    labels = {k: v for k, v in (("site", site), ("room", room), ("label", label)) if v}
    result = Result(run_id=run_id, started_utc=when, finished_utc=when, host=host, labels=labels, profile=profile().summary(),
                    checks=checks, tool_version="0.1.0")
    result.judgement = judge(result, profile()).to_dict()
    return json.loads(result.to_json())


def body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode("utf-8")


def write(doc: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"readiness-{doc['run_id']}.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def counted_trend(store: Any) -> dict[tuple[Any, str], int]:
    """Runs per UTC day and verdict, counted here from every stored run's columns."""
    from sqlalchemy import select  # lazy: the server extra, only the collector tests need it

    from readiness.collector.engine import aware
    from readiness.collector.tables import results

    with store.engine.connect() as conn:
        return dict(Counter((aware(started).astimezone(timezone.utc).date(), verdict) for started, verdict
                            in conn.execute(select(results.c.started, results.c.verdict)) if verdict is not None))


def trend(store: Any) -> dict[tuple[Any, str], int]:
    """The trend as the fleet view reads it (``day_counts``)."""
    return {(day, verdict): n for day, counts in store.per_day().items() for verdict, n in counts.items()}

