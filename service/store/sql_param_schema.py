"""A deployment's parameter schema recorded once (SQLite and PostgreSQL):
:class:`SqlParameterSchema`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from service.errors import DeploymentNotFound
from service.models import Deployment
from service.store import tables as t


class SqlParameterSchema:
    """Mixed into :class:`~service.store.sql.SqlStore` (which provides ``_write``): the
    row is read ``FOR UPDATE`` (PostgreSQL; SQLite's write transaction holds the whole
    database) and written in the same transaction."""

    _write: Callable[[], AbstractContextManager[Connection]]

    def record_parameter_schema(
        self, deployment_id: str, schema: dict[str, Any], at: datetime
    ) -> bool:
        d = t.deployments
        with self._write() as c:
            row = c.execute(
                select(d.c.doc).where(d.c.id == deployment_id).with_for_update()
            ).first()
            if row is None:
                raise DeploymentNotFound(deployment_id)
            current = Deployment.model_validate(row.doc)
            if current.parameter_schema is not None:
                return False
            stored = current.model_copy(update={"parameter_schema": schema, "updated_at": at})
            c.execute(
                update(d)
                .where(d.c.id == deployment_id)
                .values(doc=stored.model_dump(mode="json"), updated_at=at)
            )
            return True
