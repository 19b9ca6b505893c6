"""A room's history kept at ingest (``run_history``: per run, its verdict, followed figures,
software versions and devices), filled here from the runs already stored.

Without it a room's page read each run's summary (~8 kB, 730 of them for two years of daily
runs: 0.06 s of CPU to read and 0.05 s to pick the few values out); with it a few hundred bytes
per run, found through an index on (room, time). The record is written out here as
``fleet.changes.history_record`` made it at this revision (``_record``), rather than calling
that code, so this step stays what it is when the live record changes: a later change of its
shape comes with a revision of its own that rewrites these rows. Which figures are followed is
what the installed checks declare (``Check.repeatability``), as ingest reads it.

Revision ID: 0009
"""

import math
import re
from datetime import timezone
from typing import Any, Iterable, Mapping

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from readiness.plugins import described

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_results = sa.table("results", sa.column("run_id"), sa.column("room_key"), sa.column("site"),
                    sa.column("started", sa.DateTime(timezone=True)), sa.column("document"))
BATCH = 500

# --- the record as it was at this revision (fleet.changes.room_run + history_record, 2026-12) ---

_VERSION = re.compile(r"^\s*v?(?:(\d+):)?(\d+(?:\.\d+)*)")  # readiness.versions: a leading run of numbers


def _is_version(v: Any) -> bool:
    return type(v) is str and len(v) <= 64 and _VERSION.match(v) is not None


def _number(v: Any) -> float | None:
    t = type(v)
    return float(v) if t is int or (t is float and math.isfinite(v)) else None


def _dict(v: Any) -> dict:
    return v if isinstance(v, dict) else {}


def _record(doc: Mapping[str, Any], followed: Iterable[str]) -> dict[str, Any]:
    """A run's history record from its result document: verdict, followed figures, software
    versions ("check.metric" and the agent's own "readiness"), devices, room, host name."""
    checks = _dict(doc.get("checks"))
    values: dict[str, float] = {}
    versions: dict[str, str] = {}
    devices: dict[str, str] = {}
    for cname, rec in checks.items():
        if not isinstance(rec, dict):
            continue
        for mname, entry in _dict(rec.get("metrics")).items():
            v = entry.get("value") if isinstance(entry, dict) else None
            if _is_version(v):
                versions[f"{cname}.{mname}"] = v
        details = _dict(rec.get("details"))
        name = details.get("device")
        if not isinstance(name, str):
            source = details.get("source")
            name = source.get("name") if isinstance(source, dict) else None
        if isinstance(name, str) and name.strip():
            devices[cname] = name.strip()
    for full in followed:
        cname, _, mname = full.partition(".")
        rec = checks.get(cname)
        entry = _dict(rec.get("metrics")).get(mname) if isinstance(rec, dict) else None
        v = _number(entry.get("value")) if isinstance(entry, dict) else None
        if v is not None:
            values[full] = v
    if _is_version(doc.get("tool_version")):
        versions["readiness"] = doc["tool_version"]
    judgement = _dict(doc.get("judgement"))
    verdict = judgement.get("verdict") or judgement.get("overall") if judgement else None
    return {"verdict": verdict if isinstance(verdict, str) else None, "values": values, "versions": versions,
            "devices": devices, "room": str(_dict(doc.get("labels")).get("room", "")),
            "hostname": str(_dict(doc.get("host")).get("hostname", ""))}


def upgrade() -> None:
    conn = op.get_bind()
    columns = (sa.Column("run_id", sa.String(32), primary_key=True),
               sa.Column("room_key", sa.String(2 * 200 + 255 + 8), nullable=False),
               sa.Column("site", sa.String(200), nullable=False),
               sa.Column("started", sa.DateTime(timezone=True), nullable=False),
               sa.Column("record", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False))
    if "run_history" in sa.inspect(conn).get_table_names():
        # a database stamped back by hand (as a test of 0003 does): filled again from its runs
        table = sa.Table("run_history", sa.MetaData(), *columns)
        conn.execute(sa.delete(table))
    else:
        table = op.create_table("run_history", *columns)
        op.create_index("ix_run_history_room_started", "run_history", ["room_key", "started"])
        op.create_index("ix_run_history_started", "run_history", ["started"])
    followed = tuple(described().repeatability)
    query = sa.select(_results.c.run_id, _results.c.room_key, _results.c.site, _results.c.started,
                      _results.c.document).execution_options(yield_per=BATCH)
    batch = []
    for run_id, key, site, started, document in conn.execute(query):  # streamed: never every document in memory
        if isinstance(document, (str, bytes)):
            document = orjson.loads(document)
        when = started if started.tzinfo is not None else started.replace(tzinfo=timezone.utc)
        record = _record(_dict(document), followed)
        batch.append({"run_id": run_id, "room_key": key, "site": site, "started": when, "record": record})
        if len(batch) >= BATCH:
            conn.execute(sa.insert(table), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(table), batch)


def downgrade() -> None:
    op.drop_table("run_history")
