"""Each room's state per UTC day (``room_days``: the room's last run of the day), for the fleet's
compliance over the last 30 and 90 days (``fleet.compliance``).

Compliance over 10 000 rooms and 90 days read from the runs would read up to a million rows
with their documents beside; from this table it reads a row per room and day. Filled here from
the runs already stored, as ingest now keeps it (the UTC day of the run's start, the last run
of the day by start and then run id; browser self-tests left out); from then on ingest upserts
it and retention takes out what it deletes.

Written out here rather than calling the collector's code, so this step stays what it is when
that code changes.

Revision ID: 0008
"""

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_KEY = 2 * 200 + 255 + 8
_BROWSER = ("browser room\x1f", "browser\x1f")
_results = sa.table("results", sa.column("run_id"), sa.column("room_key"), sa.column("site"), sa.column("room"),
                    sa.column("hostname"), sa.column("started", sa.DateTime(timezone=True)), sa.column("verdict"))


def _day(started: datetime) -> str:
    # SQLite hands back naive datetimes; the collector stores UTC
    when = started if started.tzinfo is not None else started.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).date().isoformat()


def upgrade() -> None:
    # a database stamped back by hand may hold the table already: it is derived from the runs, so
    # it is made again from them
    if "room_days" in set(sa.inspect(op.get_bind()).get_table_names()):
        downgrade()
    room_days = op.create_table(
        "room_days",
        sa.Column("room_key", sa.String(_KEY), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=True),
        sqlite_with_rowid=False,  # SQLite: rows in key order, read in one sweep
    )
    op.create_index("ix_room_days_day", "room_days", ["day"])
    op.create_index("ix_room_days_run_id", "room_days", ["run_id"])
    conn = op.get_bind()
    last: dict[tuple[str, str], tuple] = {}
    rows = conn.execute(sa.select(_results.c.room_key, _results.c.site, _results.c.room, _results.c.hostname,
                                  _results.c.run_id, _results.c.started, _results.c.verdict)
                        .execution_options(yield_per=5000))
    for key, site, room, host, run_id, started, verdict in rows:  # a few columns of each run, never the documents
        if key.startswith(_BROWSER):
            continue
        at = (key, _day(started))
        had = last.get(at)
        if had is None or (had[0], had[1]) < (started, run_id):
            last[at] = (started, run_id, site, room, host, verdict)
    batch = []
    for (key, day), (started, run_id, site, room, host, verdict) in sorted(last.items()):
        batch.append({"room_key": key, "day": day, "site": site, "room": room, "hostname": host, "run_id": run_id,
                      "started": started, "verdict": verdict})
        if len(batch) >= 5000:
            conn.execute(sa.insert(room_days), batch)
            batch = []
    if batch:
        conn.execute(sa.insert(room_days), batch)


def downgrade() -> None:
    op.drop_index("ix_room_days_run_id", "room_days")
    op.drop_index("ix_room_days_day", "room_days")
    op.drop_table("room_days")
