"""The collector: results uploaded by every agent, stored in one database, read as one live fleet.

Sits on the server side of the pipeline (``readiness serve --db URL``), behind the agent's
upload (``readiness.unattended.upload``). Its parts, each a module:

- ``store``: the database (SQLAlchemy Core; SQLite embedded, PostgreSQL through psycopg 3), its
  tables, idempotent ingest, retention, and the streaming reads the fleet view needs;
  ``migrations/`` brings any older database up to the current schema (Alembic).
- ``tokens``: upload tokens per site and read tokens, stored as hashes only.
- ``ingest``: one uploaded document from bytes to a stored row: size, nesting, JSON, schema,
  the token's site. Every refusal is a 4xx with a plain reason.
- ``fleetdb``: the fleet figures from database rows, through the same fleet code ``aggregate``
  uses for files.
- ``metrics``: Prometheus text, per site, bounded labels; the process's own health (ingest
  latency, queue depth, database errors, memory).
- ``alertconfig``, ``alerts``, ``notify``: alerts (``serve --alerts FILE``): the rules file, the
  engine (room state, events grouped by root cause, the outbox and its delivery thread) and the
  channels (email, Teams, Slack through apprise; the signed webhook).
- ``backup``: a copy of the SQLite database while the server runs (SQLite's online backup).
- ``unit``: the hardened systemd unit ``readiness serve --print-unit`` prints.
- ``http``: the handlers, plain functions from a request to a response, wired into the site
  server by ``readiness.server.http``'s route table.

All its dependencies are in the ``server`` extra: ``pip install 'readiness[server]'``.
"""
