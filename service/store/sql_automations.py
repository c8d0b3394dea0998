"""Automations in the SQL store: one row each, firings keyed by their idempotency key,
and the outbox of action jobs listed by ``ix_automation_jobs_due``.

A mixin of :class:`service.store.sql.SqlStore`. A firing is one transaction: the insert
of its key (the primary key: a second firing of one instance fails it, and the whole
transaction with it) and of its jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from service.automation_records import ActionJob, Automation
from service.errors import AlreadyExists, AutomationNotFound
from service.store import tables as t

_A = t.automations.c
_J = t.automation_jobs.c


def _job_row(job: ActionJob) -> dict[str, object]:
    return {
        "id": job.id,
        "due_at": job.due_at,
        "attempts": job.attempts,
        "doc": job.model_dump(mode="json"),
    }


class SqlAutomationsMixin:
    """Automations, firings and action jobs for :class:`SqlStore`."""

    if TYPE_CHECKING:

        def _write(self) -> AbstractContextManager[Connection]: ...

        def _read(self) -> AbstractContextManager[Connection]: ...

    def create_automation(self, automation: Automation) -> Automation:
        try:
            with self._write() as c:
                c.execute(
                    insert(t.automations).values(
                        name=automation.name, doc=automation.model_dump(mode="json")
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists("automation", automation.name) from exc
        return automation

    def get_automation(self, name: str) -> Automation:
        with self._read() as c:
            doc = c.execute(select(_A.doc).where(_A.name == name)).scalar()
        if doc is None:
            raise AutomationNotFound(name)
        return Automation.model_validate(doc)

    def list_automations(self) -> list[Automation]:
        with self._read() as c:
            docs = c.execute(select(_A.doc).order_by(_A.name)).scalars().all()
        return [Automation.model_validate(doc) for doc in docs]

    def set_automation_paused(self, name: str, paused: bool, now: datetime) -> Automation:
        with self._write() as c:
            doc = c.execute(select(_A.doc).where(_A.name == name)).scalar()
            if doc is None:
                raise AutomationNotFound(name)
            changed = Automation.model_validate(doc).model_copy(
                update={"paused": paused, "updated_at": now}
            )
            c.execute(
                update(t.automations)
                .where(_A.name == name)
                .values(doc=changed.model_dump(mode="json"))
            )
        return changed

    def delete_automation(self, name: str) -> None:
        with self._write() as c:
            gone = c.execute(delete(t.automations).where(_A.name == name)).rowcount
        if not gone:
            raise AutomationNotFound(name)

    def fire_automation(self, key: str, jobs: Sequence[ActionJob], now: datetime) -> bool:
        try:
            with self._write() as c:
                c.execute(insert(t.automation_firings).values(key=key, fired_at=now))
                if jobs:
                    c.execute(insert(t.automation_jobs), [_job_row(j) for j in jobs])
        except IntegrityError:
            return False
        return True

    def due_action_jobs(self, now: datetime, limit: int) -> list[ActionJob]:
        q = select(_J.doc, _J.attempts, _J.due_at).where(_J.due_at <= now)
        with self._read() as c:
            rows = c.execute(q.order_by(_J.due_at, _J.id).limit(limit)).all()
        return [
            ActionJob.model_validate(doc).model_copy(update={"attempts": n, "due_at": due})
            for doc, n, due in rows
        ]

    def claim_action_job(self, job: ActionJob, due_at: datetime) -> bool:
        with self._write() as c:
            done = c.execute(
                update(t.automation_jobs)
                .where(_J.id == job.id, _J.attempts == job.attempts)
                .values(attempts=job.attempts + 1, due_at=due_at)
            ).rowcount
        return bool(done)

    def delete_action_job(self, job_id: str) -> None:
        with self._write() as c:
            c.execute(delete(t.automation_jobs).where(_J.id == job_id))
