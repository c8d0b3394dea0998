"""``pushpool db``: the store's schema, read and upgraded where the server's settings
point (``PUSHPOOL_DATABASE_URL``, or ``PUSHPOOL_DYNAMODB_TABLE``), without a server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from service.store.base import Store

app = typer.Typer(help="The database schema: upgrade, current, history.", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)


@contextmanager
def _store() -> Iterator[Store]:
    """The configured store, opened without touching its schema, closed after."""
    from service.settings import get_settings
    from service.store import open_store

    store = open_store(get_settings(), schema="none")
    try:
        yield store
    finally:
        store.close()


def _describe(version: str | None) -> str:
    return "empty (no schema)" if version is None else version


@app.command("upgrade")
def upgrade() -> None:
    """Apply every pending migration (a 0.1.0 database is recognised and kept)."""
    with _store() as store:
        before = store.schema_version()
        store.migrate()
        after = store.schema_version()
    if before == after:
        console.print(f"Already at {after} (head)")
    else:
        console.print(f"Upgraded from {_describe(before)} to {after} (head)")


@app.command("current")
def current() -> None:
    """The schema version the database is at, and whether it is the newest."""
    with _store() as store:
        found, head = store.schema_version(), store.schema_head()
    note = "head" if found == head else f"behind: head is {head}; run `pushpool db upgrade`"
    console.print(f"{_describe(found)} ({note})")


@app.command("history")
def history() -> None:
    """Every schema version, oldest first; the database's own is marked."""
    with _store() as store:
        found, versions = store.schema_version(), store.schema_history()
    for version, message in versions:
        mark = "  <- current" if version == found else ""
        console.print(f"{version}  {message}{mark}")
