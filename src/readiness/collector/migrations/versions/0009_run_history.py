"""A room's history kept at ingest (``run_history``: per run, its verdict, followed figures,
software versions and devices), filled here from the runs already stored.

Without it a room's page read each run's summary (~8 kB, 730 of them for two years of daily
runs: 0.06 s of CPU to read and 0.05 s to pick the few values out); with it a few hundred bytes
per run, found through an index on (room, time). The record is made by the same function ingest
uses (``fleet.changes.history_record``): a later change of its shape comes with a revision of
its own that rewrites these rows.

Revision ID: 0009
"""

from datetime import timezone

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from readiness.fleet.changes import history_record, room_run
from readiness.plugins import described

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_results = sa.table("results", sa.column("run_id"), sa.column("room_key"), sa.column("site"),
                    sa.column("started", sa.DateTime(timezone=True)), sa.column("document"))
BATCH = 500


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
        record = history_record(room_run(run_id, document if isinstance(document, dict) else {}, followed))
        batch.append({"run_id": run_id, "room_key": key, "site": site, "started": when, "record": record})
        if len(batch) >= BATCH:
            conn.execute(sa.insert(table), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(table), batch)


def downgrade() -> None:
    op.drop_table("run_history")
