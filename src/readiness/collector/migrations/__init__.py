"""Alembic migrations of the collector's database, run from code (no alembic.ini to ship).

``upgrade(conn)`` brings a database of any earlier revision (or an empty one) to the head;
``current(conn)`` tells a reader which revision it holds. Each revision in ``versions/`` is a
snapshot of one schema step and is never edited once released: a change is a new revision.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _config(conn: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = conn
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None)).get_current_head()


def upgrade(conn: Any, target: str = "head") -> None:
    """To ``target``: the head, or an older revision (the tests make a previous release's database so)."""
    from alembic import command

    command.upgrade(_config(conn), target)


def downgrade(conn: Any, target: str) -> None:
    """Back to ``target`` (the tests make an older release's database so: 0011 unpacks documents)."""
    from alembic import command

    command.downgrade(_config(conn), target)


def revisions() -> list[tuple[str, str]]:
    """Every revision, oldest first: (its id, what it does: its description's first sentence)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config(None))
    return [(s.revision, _first_sentence(s.doc or "")) for s in reversed(list(scripts.walk_revisions()))]


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) <= 120 else text[:119] + "…"


def current(conn: Any) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()
