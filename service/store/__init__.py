"""Stores are chosen by settings and imported lazily (SQLAlchemy costs ~0.5 s to import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings
    from service.store.base import Store


def open_store(settings: Settings) -> Store:
    """The store the settings name, migrated and ready."""
    from service.store.sql import SqlStore

    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        settings.home.mkdir(parents=True, exist_ok=True)
    store = SqlStore(url)
    store.migrate()
    return store
