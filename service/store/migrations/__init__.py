"""Schema migrations of the SQL store (SQLite and PostgreSQL), owned by Alembic.

The scripts in ``versions/`` are the schema's history; ``0001`` is the baseline, the
tables exactly as released in 0.1.0. :mod:`service.store.tables` is the schema the code
uses now, and the head of ``versions/`` must equal it (a test compares them with
Alembic's autogenerate on a freshly upgraded database): a change to ``tables.py`` ships
with a new script. To write one, with a database at head::

    from alembic import command
    from service.store.migrations import alembic_config
    with engine.begin() as conn:
        command.revision(alembic_config(conn), message="what changes", autogenerate=True)

then review it (SQLite needs ``op.batch_alter_table`` for most column changes).

A database made before migrations existed (0.1.0 ran ``create_all``) has the tables but
no ``alembic_version``: it is recognised as the baseline and stamped, never recreated.

The callers (:class:`service.store.sql.SqlStore`) hand in a connection inside a
transaction that already holds the store's migration lock, so two processes starting
at once apply each script once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

#: The revision whose schema is the one 0.1.0 created with ``create_all``.
BASELINE = "0001"
#: A table every 0.1.0 database has: its presence without ``alembic_version`` marks one.
_LEGACY_MARKER = "flow_runs"
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class Revision:
    id: str
    down: str | None
    message: str


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for these scripts, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision: the schema this code needs."""
    found = _scripts().get_current_head()
    assert found is not None, "no migration scripts"
    return found


def history() -> list[Revision]:
    """Every revision, oldest first."""
    revisions = [
        Revision(
            str(s.revision),
            None if s.down_revision is None else str(s.down_revision),
            (s.doc or "").strip(),
        )
        for s in _scripts().walk_revisions()
    ]
    return list(reversed(revisions))


def is_legacy(connection: Connection) -> bool:
    """A 0.1.0 database: the store's tables, but no record of a revision."""
    tables = set(inspect(connection).get_table_names())
    return _LEGACY_MARKER in tables and "alembic_version" not in tables


def current(connection: Connection) -> str | None:
    """The database's revision; :data:`BASELINE` for an unstamped 0.1.0 database;
    ``None`` for an empty one."""
    found = MigrationContext.configure(connection).get_current_revision()
    if found is None and is_legacy(connection):
        return BASELINE
    return found


def upgrade(connection: Connection, target: str = "head") -> None:
    """Stamp a 0.1.0 database as the baseline, then apply every script up to ``target``."""
    config = alembic_config(connection)
    if is_legacy(connection):
        command.stamp(config, BASELINE)
    command.upgrade(config, target)
