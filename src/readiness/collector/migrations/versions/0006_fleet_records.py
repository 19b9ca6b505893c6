"""What the fleet state keeps of each run, made at ingest (``fleet_records``), so the fleet view
reads one small record per room instead of parsing each held run's summary and building a
Result from it (at 10 000 rooms, 2 of the 5 CPU seconds of a cold view).

The runs the fleet state holds now (``latest``) get their record here, made from their summaries
by the collector's own ``fleetdb.record_of``: unlike the counts of 0004, a record is a cache of
what the fleet code takes from a run, so it must be made by that code. A record carries its
format (``v``); one the view cannot use, or a run without one (a summary from before 0002, a
run the fleet skips), is read from its summary as before, so nothing here can change the fleet.
Runs no longer held get none: no view reads them again.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    from readiness.collector.fleetdb import _with_requirements, record_of  # the collector's own reading (above)
    from readiness.result import Result, ResultError

    conn = op.get_bind()
    columns = (sa.Column("run_id", sa.String(32), primary_key=True), sa.Column("record", sa.Text, nullable=False))
    # what is there already is left (a database stamped back by hand, as a test of 0003 does)
    if "fleet_records" in sa.inspect(conn).get_table_names():
        records = sa.table("fleet_records", *(sa.column(c.name) for c in columns))
    else:
        records = op.create_table("fleet_records", *columns)
    summaries = sa.table("summaries", sa.column("run_id"), sa.column("summary", sa.Text))
    requirements = sa.table("requirements", sa.column("digest"), sa.column("requirement", sa.Text))
    latest = sa.table("latest", sa.column("run_id"))
    from readiness.collector.jsontext import loads

    def parsed(value: object) -> object:  # JSON text on SQLite, already a dict from JSONB on PostgreSQL
        return loads(value) if isinstance(value, (str, bytes)) else value

    reqs = {d: parsed(r) for d, r in conn.execute(sa.select(requirements.c.digest, requirements.c.requirement))}
    held = sa.select(latest.c.run_id).distinct().where(latest.c.run_id.not_in(sa.select(records.c.run_id)))
    rows = conn.execute(sa.select(summaries.c.run_id, summaries.c.summary).where(summaries.c.run_id.in_(held))
                        .execution_options(yield_per=BATCH))
    made = []
    for run_id, text in rows:
        summary = parsed(text)
        items = (summary.get("judgement") or {}).get("items") if isinstance(summary, dict) else None
        refs = [i.get("requirement") if isinstance(i, dict) else None for i in items] if isinstance(items, list) else []
        if not all(isinstance(r, str) for r in refs):
            continue
        try:
            result = Result.from_dict(_with_requirements(summary, reqs), f"run {run_id}")
        except ResultError:
            continue  # the view lists it as skipped, reading its summary
        record = record_of(result, refs)
        if record is not None:
            made.append({"run_id": run_id, "record": record})
        if len(made) >= BATCH:
            conn.execute(sa.insert(records), made)
            made = []
    if made:
        conn.execute(sa.insert(records), made)


def downgrade() -> None:
    op.drop_table("fleet_records")
