"""Who may see what: token expiry and last use, the audit log, sign-in sessions, and the
collector's own settings (the key that signs session cookies, made once per database so every
replica on it signs alike).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # what is there already is left (a database stamped back by hand, as a test of 0003 does)
    have = sa.inspect(op.get_bind())
    columns = {c["name"] for c in have.get_columns("tokens")}
    tables = set(have.get_table_names())
    new = [c for c in ("expires", "last_used") if c not in columns]
    if new:
        with op.batch_alter_table("tokens") as batch:  # SQLite alters a table by copying it: batch mode
            for name in new:
                batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    if "audit" not in tables:
        _audit()
    if "sessions" not in tables:
        _sessions()
    if "settings" not in tables:
        _settings()


def _audit() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(300), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.Index("ix_audit_at", "at"),
    )


def _sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),  # "" while the sign-in is pending
        sa.Column("sites", sa.String(4000), nullable=False),  # JSON list; "" for every site
        sa.Column("pending", sa.String(2000), nullable=False),  # JSON: state, nonce, PKCE verifier
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
        sa.Index("ix_sessions_expires", "expires"),
    )


def _settings() -> None:
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(1000), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_table("sessions")
    op.drop_table("audit")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("last_used")
        batch.drop_column("expires")
