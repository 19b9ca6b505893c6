"""Browser self-test results get ``latest`` keys of their own, never an agent's room or host.

A collector before this revision keyed a self-test page result labelled with a room as that
room's agent runs, so the newest page result could stand for the room's camera or bandwidth.
Each such run is given its own key (``browser room``/``browser``, as ``ingest.room_key`` now
makes them), and the ``latest`` rows of every key it left or joined are rebuilt from the runs
stored: per key the newest run, and the newest run holding each check. Only browser runs and
the keys they touch are read; a database without any is left as it is.

Written out here rather than calling the collector's code, so this step stays what it is when
that code changes.

Revision ID: 0003
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_results = sa.table("results", sa.column("run_id"), sa.column("site"), sa.column("room"), sa.column("hostname"),
                    sa.column("room_key"), sa.column("started"), sa.column("document"))
_latest = sa.table("latest", sa.column("room_key"), sa.column("check_name"), sa.column("run_id"), sa.column("started"))


def _document(value: Any) -> dict[str, Any]:
    """The stored document: JSON text on SQLite, already a dict from PostgreSQL's JSONB."""
    if isinstance(value, (bytes, str)):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _browser_key(site: str, room: str, hostname: str, run_id: str) -> str:
    return f"browser room\x1f{site}\x1f{room}" if room else f"browser\x1f{hostname or run_id}"


def upgrade() -> None:
    conn = op.get_bind()
    touched: set[str] = set()
    # the page names its runs' hosts "browser-" and 8 hex digits; the document says who measured
    candidates = conn.execute(sa.select(_results.c.run_id, _results.c.site, _results.c.room, _results.c.hostname,
                                        _results.c.room_key)
                              .where(_results.c.hostname.like("browser-%"))).all()
    for run_id, site, room, hostname, key in candidates:  # each document read on its own: never all at once
        document = conn.execute(sa.select(_results.c.document).where(_results.c.run_id == run_id)).scalar()
        host = _document(document).get("host")
        if not isinstance(host, dict) or host.get("measured_by") != "browser":
            continue
        new = _browser_key(site, room, hostname, run_id)
        if new != key:
            conn.execute(sa.update(_results).where(_results.c.run_id == run_id).values(room_key=new))
            touched.update((key, new))
    for key in sorted(touched):
        conn.execute(sa.delete(_latest).where(_latest.c.room_key == key))
        newest: dict[str, tuple[Any, str]] = {}
        for run_id, started, document in conn.execute(sa.select(_results.c.run_id, _results.c.started,
                                                                _results.c.document)
                                                      .where(_results.c.room_key == key)):
            checks = _document(document).get("checks")
            for name in [""] + sorted(checks if isinstance(checks, dict) else ()):
                if name not in newest or (started, run_id) > newest[name]:
                    newest[name] = (started, run_id)
        if newest:
            conn.execute(sa.insert(_latest), [{"room_key": key, "check_name": name, "run_id": run_id, "started": started}
                                              for name, (started, run_id) in newest.items()])


def downgrade() -> None:
    # the old keys put browser results into agents' rooms: nothing to go back to
    pass
