"""Documents packed on SQLite: from this revision ingest stores each result document as its JSON
text in one Zstandard frame (``readiness.collector.packed``), a BLOB in the same column.

Nothing in the schema changes, and the documents stored before stay text (every reader takes
both). The revision marks the database, so that a release from before it refuses to start on
one that holds packed documents ("this readiness knows up to 0010") rather than failing on each
new run it reads. Downgrading unpacks them back into text, in batches.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

from readiness.collector.packed import is_packed, unpack

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 500
_results = sa.table("results", sa.column("run_id"), sa.column("document"))


def upgrade() -> None:
    return None


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":  # PostgreSQL's documents are JSONB, never packed
        return
    after = ""
    while True:  # by run id, a batch at a time: never every document in memory
        rows = conn.execute(sa.select(_results.c.run_id, _results.c.document)
                            .where(_results.c.run_id > after, sa.func.typeof(_results.c.document) == "blob")
                            .order_by(_results.c.run_id).limit(BATCH)).all()
        if not rows:
            return
        for run_id, document in rows:
            if is_packed(document):
                conn.execute(sa.update(_results).where(_results.c.run_id == run_id)
                             .values(document=unpack(document).decode("utf-8")))
        after = rows[-1][0]
