"""The fleet's projection of each result (``summaries``) and the distinct requirements its
judgement items point to (``requirements``), so the fleet view reads a few kB per run instead
of the whole document. A table of its own, not a column of ``results``: SQLite stores a row's
columns in order, and reaching a column after a 40 kB document means reading its pages.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # runs stored before this revision have no summary: the fleet reads their whole document
    op.create_table(
        "summaries",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("summary", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )
    op.create_table(
        "requirements",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("requirement", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("requirements")
    op.drop_table("summaries")
