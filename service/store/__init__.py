"""Stores are chosen by settings and imported lazily (SQLAlchemy costs ~0.5 s to import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings
    from service.store.base import Store


def open_store(settings: Settings) -> Store:
    """The store the settings name, migrated and ready: DynamoDB when
    ``settings.dynamodb_table`` is set (boto3 is imported only then), else SQL.

    A DynamoDB table is created if missing only when ``settings.dynamodb_create_table``;
    otherwise it is taken to exist (the AWS stack creates it) and nothing is called."""
    if settings.dynamodb_table:
        from service.store.dynamo import DynamoStore

        days = settings.log_retention_days
        retention = int(days * 86400) if days > 0 else 100 * 365 * 86400
        dynamo = DynamoStore(settings.dynamodb_table, log_retention_seconds=retention)
        if settings.dynamodb_create_table:
            dynamo.migrate()
        return dynamo
    from service.store.sql import SqlStore

    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    store = SqlStore(settings.resolved_database_url())
    store.migrate()
    return store
