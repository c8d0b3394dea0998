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

        dynamo = DynamoStore(settings.dynamodb_table)
        if settings.dynamodb_create_table:
            dynamo.migrate()
        return dynamo
    from service.bootstrap import secure_home
    from service.store.sql import SqlStore

    secure_home(settings)
    store = SqlStore(settings.resolved_database_url())
    store.migrate()
    return store
