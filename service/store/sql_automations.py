"""Automations in the SQL store: one row each, firings keyed by their idempotency key,
the outbox of action jobs listed by ``ix_automation_jobs_due``, and proactive triggers'
due index (``automation_due``, read by ``ix_automation_due``).

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

from service.automation_records import ActionJob, Automation, DueInstance
from service.errors import AlreadyExists, AutomationNotFound
from service.store import tables as t

_A = t.automations.c
_J = t.automation_jobs.c
_F = t.automation_firings.c
_D = t.automation_due.c


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

    def purge_automation_firings(self, before: datetime, limit: int) -> int:
        oldest = select(_F.key).where(_F.fired_at < before).order_by(_F.fired_at).limit(limit)
        with self._write() as c:
            keys = c.execute(oldest).scalars().all()
            if keys:
                c.execute(delete(t.automation_firings).where(_F.key.in_(keys)))
        return len(keys)

    # -- proactive triggers' due index -------------------------------------------------
    def arm_automation(self, automation_id: str, instance: str, due_at: datetime) -> bool:
        row = {"automation_id": automation_id, "instance": instance, "due_at": due_at}
        try:
            with self._write() as c:
                c.execute(insert(t.automation_due).values(**row))
        except IntegrityError:
            return False
        return True

    def move_automation_due(
        self, automation_id: str, instance: str, was: datetime | None, due_at: datetime | None
    ) -> bool:
        if was is None:
            return due_at is not None and self.arm_automation(automation_id, instance, due_at)
        which = (_D.automation_id == automation_id, _D.instance == instance, _D.due_at == was)
        with self._write() as c:
            if due_at is None:
                done = c.execute(delete(t.automation_due).where(*which)).rowcount
            else:
                done = c.execute(
                    update(t.automation_due).where(*which).values(due_at=due_at)
                ).rowcount
        return bool(done)

    def automation_due(self, automation_id: str, instance: str) -> datetime | None:
        q = select(_D.due_at).where(_D.automation_id == automation_id, _D.instance == instance)
        with self._read() as c:
            due: datetime | None = c.execute(q).scalar()
        return due

    def due_automations(self, now: datetime, limit: int) -> list[DueInstance]:
        q = select(_D.automation_id, _D.instance, _D.due_at).where(_D.due_at <= now)
        with self._read() as c:
            rows = c.execute(q.order_by(_D.due_at, _D.automation_id, _D.instance).limit(limit))
            return [DueInstance(automation_id=a, instance=i, due_at=d) for a, i, d in rows]
