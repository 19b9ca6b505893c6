"""The fleet's trend kept at ingest (``day_counts``: runs per UTC day and verdict), and an index
on ``results.received`` for the live view's change stamp.

Before this revision the fleet view counted the trend with a GROUP BY over every stored run and
found the newest arrival by scanning ``results``: on SQLite each of those reads a page of every
row (the rows hold 40 kB documents), 1.5-2 s and 1 s at 100 000 runs. The table is filled here
from the runs already stored, counted as ingest now counts them (the UTC day of the run's start);
from then on ingest adds to it and retention subtracts what it deletes.

Written out here rather than calling the collector's code, so this step stays what it is when
that code changes.

Revision ID: 0004
"""

from collections import Counter
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_results = sa.table("results", sa.column("started", sa.DateTime(timezone=True)), sa.column("verdict"))


def _day(started: datetime) -> str:
    # SQLite hands back naive datetimes; the collector stores UTC
    when = started if started.tzinfo is not None else started.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).date().isoformat()


def upgrade() -> None:
    day_counts = op.create_table(
        "day_counts",
        sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
        sa.Column("verdict", sa.String(8), primary_key=True),
        sa.Column("runs", sa.Integer, nullable=False),
    )
    op.create_index("ix_results_received", "results", ["received"])
    conn = op.get_bind()
    counts: Counter = Counter()
    rows = conn.execute(sa.select(_results.c.started, _results.c.verdict).where(_results.c.verdict.is_not(None))
                        .execution_options(yield_per=5000))
    for started, verdict in rows:  # only two columns of each run: never the documents in memory
        counts[(_day(started), verdict)] += 1
    if counts:
        conn.execute(sa.insert(day_counts), [{"day": d, "verdict": v, "runs": n} for (d, v), n in sorted(counts.items())])


def downgrade() -> None:
    op.drop_index("ix_results_received", "results")
    op.drop_table("day_counts")
