"""Alembic's entry: runs the migrations on the connection ``readiness.collector.migrations`` hands over."""

from alembic import context

from readiness.collector.tables import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  render_as_batch=True)  # SQLite alters tables by copying them; batch mode does that
with context.begin_transaction():
    context.run_migrations()
