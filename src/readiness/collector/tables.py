"""The collector's tables (SQLAlchemy Core): what ``store`` reads and writes and what Alembic's
migrations (``migrations/``) create and upgrade. See ``store``'s docstring for what each holds."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects import postgresql

TEXT_MAX = 200  # site, room, profile name; longer labels are refused at ingest
BROWSER_KEYS = ("browser room\x1f", "browser\x1f")  # how ``latest`` keys of browser self-tests begin
HOST_MAX = 255

metadata = MetaData()
_DOCUMENT = JSON().with_variant(postgresql.JSONB(), "postgresql")

results = Table(
    "results", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("site", String(TEXT_MAX), nullable=False),
    Column("room", String(TEXT_MAX), nullable=False),
    Column("hostname", String(HOST_MAX), nullable=False),
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("received", DateTime(timezone=True), nullable=False),
    Column("profile", String(TEXT_MAX), nullable=False),
    Column("verdict", String(8), nullable=True),  # the judgement's verdict (PARTIAL too); None: not judged
    Column("coverage", Float, nullable=True),  # share of the list's requirements measured, 0..1
    Column("document", _DOCUMENT, nullable=False),
    Index("ix_results_site_started", "site", "started"),
    Index("ix_results_started", "started"),  # retention, oldest first
    Index("ix_results_received", "received"),  # the live view's change stamp (newest arrival)
)

latest = Table(
    "latest", metadata,
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), primary_key=True),
    Column("check_name", String(TEXT_MAX), primary_key=True),  # "" = the room's newest run
    Column("run_id", String(32), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Index("ix_latest_run_id", "run_id"),
)

# What the fleet view reads of a run (``ingest.summary_of``): the document without the check
# details it does not use, each judgement item its verdict and a digest into ``requirements``.
# A table apart: SQLite reaches a column after a 40 kB document only by reading its pages.
# Runs stored before revision 0002 have none (the fleet reads their whole document).
summaries = Table(
    "summaries", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("summary", _DOCUMENT, nullable=False),
)

# What the fleet state keeps of a run (``fleetdb.record_of``), made at ingest: its labels, verdicts
# (by requirement digest), metric values, units and step-5 facts as compact JSON text. The live
# view reads the record of each run ``latest`` holds (one per room, usually) instead of parsing
# its summary and building a Result to take the same few fields from it (revision 0006).
# ``v`` in the text is its format: a record of another format, or none, is read the old way.
fleet_records = Table(
    "fleet_records", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("record", Text, nullable=False),
)

# The fleet's trend: runs per UTC day of their start and verdict (judged runs only), added to in
# the transaction that stores the runs and subtracted from in the one that prunes them, so the
# view reads a row per day instead of a page of every stored run (revision 0004).
day_counts = Table(
    "day_counts", metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD
    Column("verdict", String(8), primary_key=True),
    Column("runs", Integer, nullable=False),
)

# A room's history (``collector.history``): per run, its verdict, the followed figures, the software
# versions and the devices (``fleet.changes.history_record``), a few hundred bytes, by room and
# time, so a room's page with 730 runs reads 730 small rows, not 730 summaries (revision 0009).
run_history = Table(
    "run_history", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), nullable=False),
    Column("site", String(TEXT_MAX), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("record", _DOCUMENT, nullable=False),
    Index("ix_run_history_room_started", "room_key", "started"),
    Index("ix_run_history_started", "started"),
)

# Each room's state per UTC day (the fleet over time, ``fleet.compliance``): its last run that
# day, kept in the transaction that stores the runs and the one that prunes them (revision
# 0008), so compliance over 90 days reads a row per room and day, never the runs. Agents'
# rooms and computers only: browser self-tests are not a room's standing state.
room_days = Table(
    "room_days", metadata,
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC, of the run's start
    Column("site", String(TEXT_MAX), nullable=False),
    Column("room", String(TEXT_MAX), nullable=False),
    Column("hostname", String(HOST_MAX), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("verdict", String(8), nullable=True),
    Index("ix_room_days_day", "day"),
    Index("ix_room_days_run_id", "run_id"),
    # SQLite: the rows stored in key order (room, day), so compliance reads them in one sweep
    # instead of a lookup per row from the key's index
    sqlite_with_rowid=False,
)

requirements = Table(
    "requirements", metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the requirement's canonical JSON
    Column("requirement", _DOCUMENT, nullable=False),
)

tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),  # "upload" | "link" | "read"
    Column("site", String(TEXT_MAX), nullable=False),  # upload, link: the one site it may submit for; read: ""
    Column("digest", String(64), nullable=False, unique=True),
    Column("hint", String(12), nullable=False),  # the token's first characters, to tell tokens apart in a list
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True), nullable=True),
    Column("expires", DateTime(timezone=True), nullable=True),  # None: until revoked
    Column("last_used", DateTime(timezone=True), nullable=True),  # to the minute or so (``Store.touch_token``)
)

# Who did what (``readiness.collector.access``: sign-ins, tokens, links, role changes, exports).
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(300), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(300), nullable=False),
    Column("site", String(TEXT_MAX), nullable=False),
    Column("detail", String(1000), nullable=False),
    Index("ix_audit_at", "at"),
)

# Sign-in sessions, by the SHA-256 of their secret (the cookie holds the secret, signed).
sessions = Table(
    "sessions", metadata,
    Column("digest", String(64), primary_key=True),
    Column("subject", String(300), nullable=False),
    Column("name", String(300), nullable=False),
    Column("role", String(16), nullable=False),  # "" while the sign-in is pending
    Column("sites", String(4000), nullable=False),  # JSON list of sites; "" for every site
    Column("pending", String(2000), nullable=False),  # JSON: state, nonce, PKCE verifier of a pending sign-in
    Column("csrf", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True), nullable=True),
    Index("ix_sessions_expires", "expires"),
)

settings = Table(
    "settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(1000), nullable=False),
)

# Alerts (``collector.alerts``, revision 0007). Each room's state as the alerts last saw it: the
# run it was judged by, ready or not, its causes; so a restart (or another replica) neither
# raises an event again nor misses a run stored meanwhile.
alert_rooms = Table(
    "alert_rooms", metadata,
    Column("room_key", String(2 * TEXT_MAX + HOST_MAX + 8), primary_key=True),
    Column("site", String(TEXT_MAX), nullable=False),
    Column("room", String(TEXT_MAX), nullable=False),  # the room label, or the host name
    Column("run_id", String(32), nullable=False),
    Column("started", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),  # "ready" | "not_ready" | "other" (partial, not judged)
    Column("causes", String(4000), nullable=False),  # JSON: [[kind, subject, metric], ...] of its blocking items
    Column("silent", Integer, nullable=False),  # 1: marked not reporting (an event was raised)
    Index("ix_alert_rooms_site", "site"),
)

# Open events by key ("not_ready\x1f<room key>", "site_cause\x1f<site>\x1f<kind>", "regression\x1f<key>"):
# what is open is not raised again; what is resolved gives its resolution message.
alert_open = Table(
    "alert_open", metadata,
    Column("key", String(1000), primary_key=True),
    Column("opened", DateTime(timezone=True), nullable=False),
    Column("detail", String(4000), nullable=False),  # JSON
)

# Events waiting for their group to close (``group_within``): one message per group.
alert_events = Table(
    "alert_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("group_key", String(1000), nullable=False),  # site, cause, opened or resolved
    Column("event", String(16), nullable=False),  # a rule's event name (``alertconfig.EVENTS``)
    Column("site", String(TEXT_MAX), nullable=False),
    Column("detail", String(8000), nullable=False),  # JSON: the room, its run, the fix and its source
    Index("ix_alert_events_group", "group_key", "at"),
)

# The outbox: one row per message and channel, sent at least once, retried with backoff.
alert_outbox = Table(
    "alert_outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(32), nullable=False),  # the same for every channel of one message
    Column("channel", String(64), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("message", String(100000), nullable=False),  # JSON: title, text, html, payload
    Column("attempts", Integer, nullable=False),
    Column("next_try", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=True),  # claimed by a sender until then
    Column("claim", String(32), nullable=True),  # the claiming sender's own mark
    Column("sent", DateTime(timezone=True), nullable=True),
    Column("last_error", String(1000), nullable=False),
    Index("ix_alert_outbox_due", "sent", "next_try"),
)
