"""Four indexes on ``results`` no read uses any more dropped: (site, room), hostname, profile and
verdict.

Revision 0001 made them for reads by those columns; since then every such read goes through
tables kept at ingest (``latest``, ``fleet_records``, ``day_counts``, ``room_days``,
``run_history``), and no query of the collector filters or sorts ``results`` by them (it does by
site and start, start, arrival and run id, whose indexes stay). Each index still cost every
upload a B-tree insert, and the random keys of (site, room) and hostname a page of their own
written to SQLite's WAL per result. Dropping them changes no answer.

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_DROPPED = (("site_room", ["site", "room"]), ("hostname", ["hostname"]), ("profile", ["profile"]),
            ("verdict", ["verdict"]))


def upgrade() -> None:
    # only those there: a database stamped back by hand (as a test of 0003 does) has none of them
    have = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("results")}
    for name, _ in _DROPPED:
        if f"ix_results_{name}" in have:
            op.drop_index(f"ix_results_{name}", "results")


def downgrade() -> None:
    for name, cols in _DROPPED:
        op.create_index(f"ix_results_{name}", "results", cols)
