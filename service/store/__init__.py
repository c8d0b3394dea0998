"""Stores are chosen by settings and imported lazily (SQLAlchemy costs ~0.5 s to import)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from service.settings import Settings
    from service.store.base import Store

#: What :func:`open_store` does with the schema: bring it up to date, insist that it is
#: (``SchemaError`` otherwise), or leave it alone (``pushpool db`` looks first).
SchemaAction = Literal["migrate", "check", "none"]


def open_store(settings: Settings, *, schema: SchemaAction = "migrate") -> Store:
    """The store the settings name: DynamoDB when ``settings.dynamodb_table`` is set
    (boto3 is imported only then), else SQL (SQLite or PostgreSQL by the URL).

    ``schema="migrate"`` applies pending migrations first (every row kept); ``"check"``
    raises ``SchemaError`` unless the schema is current. A DynamoDB table is created
    (and upgraded) only when ``settings.dynamodb_create_table``; otherwise it is taken to
    exist (the AWS stack creates it) and nothing is called."""
    store: Store
    if settings.dynamodb_table:
        from service.store.dynamo import DynamoStore

        days = settings.log_retention_days
        retention = int(days * 86400) if days > 0 else 100 * 365 * 86400
        store = DynamoStore(settings.dynamodb_table, log_retention_seconds=retention)
        store.event_retention = event_retention(settings)
        if not settings.dynamodb_create_table:
            return store
    else:
        from service.bootstrap import secure_home
        from service.store.sql import SqlStore

        secure_home(settings)
        store = SqlStore(
            settings.resolved_database_url(),
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
        store.event_retention = event_retention(settings)
    if schema == "migrate":
        store.migrate()
    elif schema == "check":
        store.check_schema()
    return store


def event_retention(settings: Settings) -> timedelta | None:
    """How long events are kept (``None``: for good), from ``event_retention_days``."""
    days = settings.event_retention_days
    return timedelta(days=days) if days > 0 else None
