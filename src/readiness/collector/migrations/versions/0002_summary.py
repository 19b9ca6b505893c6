"""The fleet's projection of each result (``results.summary``) and the distinct requirements
its judgement items point to (``requirements``), so the fleet view reads a few kB per run
instead of the whole document.

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
    # rows stored before this revision keep summary NULL: the fleet reads their whole document
    op.add_column("results", sa.Column("summary", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                                       nullable=True))
    op.create_table(
        "requirements",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("requirement", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("requirements")
    op.drop_column("results", "summary")
