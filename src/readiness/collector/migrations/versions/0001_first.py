"""First schema: results (document + indexed columns), latest (fleet state per room and check), tokens.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KEY = 2 * 200 + 255 + 8


def upgrade() -> None:
    op.create_table(
        "results",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("room_key", sa.String(KEY), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("profile", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(8), nullable=True),
        sa.Column("coverage", sa.Float, nullable=True),
        sa.Column("document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    )
    for name, cols in (("site_started", ["site", "started"]), ("site_room", ["site", "room"]),
                       ("hostname", ["hostname"]), ("started", ["started"]), ("profile", ["profile"]),
                       ("verdict", ["verdict"])):
        op.create_index(f"ix_results_{name}", "results", cols)
    op.create_table(
        "latest",
        sa.Column("room_key", sa.String(KEY), primary_key=True),
        sa.Column("check_name", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_latest_run_id", "latest", ["run_id"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("hint", sa.String(12), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("latest")
    op.drop_table("results")
