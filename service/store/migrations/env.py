"""Alembic's environment for the SQL store: always given a connection by the caller.

:mod:`service.store.migrations` opens the connection (and its transaction, holding the
lock that keeps two processes from migrating at once) and passes it in
``config.attributes["connection"]``; this file only runs the scripts on it.
"""

from __future__ import annotations

from alembic import context

from service.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things: let autogenerate write batch (copy-and-move) ops.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
