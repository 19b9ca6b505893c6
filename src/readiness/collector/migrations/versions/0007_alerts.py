"""Alerts: each room's state as the alerts saw it, the open events, events waiting for their
group, and the outbox of messages to send (``collector.alerts``).

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ROOM_KEY = 2 * 200 + 255 + 8


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    if "alert_rooms" not in have:
        op.create_table(
            "alert_rooms",
            sa.Column("room_key", sa.String(ROOM_KEY), primary_key=True),
            sa.Column("site", sa.String(200), nullable=False),
            sa.Column("room", sa.String(200), nullable=False),
            sa.Column("run_id", sa.String(32), nullable=False),
            sa.Column("started", sa.DateTime(timezone=True), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("causes", sa.String(4000), nullable=False),
            sa.Column("silent", sa.Integer, nullable=False),
        )
        op.create_index("ix_alert_rooms_site", "alert_rooms", ["site"])
    if "alert_open" not in have:
        op.create_table(
            "alert_open",
            sa.Column("key", sa.String(1000), primary_key=True),
            sa.Column("opened", sa.DateTime(timezone=True), nullable=False),
            sa.Column("detail", sa.String(4000), nullable=False),
        )
    if "alert_events" not in have:
        op.create_table(
            "alert_events",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("group_key", sa.String(1000), nullable=False),
            sa.Column("event", sa.String(16), nullable=False),
            sa.Column("site", sa.String(200), nullable=False),
            sa.Column("detail", sa.String(8000), nullable=False),
        )
        op.create_index("ix_alert_events_group", "alert_events", ["group_key", "at"])
    if "alert_outbox" not in have:
        op.create_table(
            "alert_outbox",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("message_id", sa.String(32), nullable=False),
            sa.Column("channel", sa.String(64), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("message", sa.String(100000), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_try", sa.DateTime(timezone=True), nullable=False),
            sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
            sa.Column("claim", sa.String(32), nullable=True),
            sa.Column("sent", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_error", sa.String(1000), nullable=False),
        )
        op.create_index("ix_alert_outbox_due", "alert_outbox", ["sent", "next_try"])


def downgrade() -> None:
    for name in ("alert_outbox", "alert_events", "alert_open", "alert_rooms"):
        op.drop_table(name)
