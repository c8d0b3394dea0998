"""The SQL store: SQLAlchemy Core on SQLite (the default) or PostgreSQL (psycopg 3).

SQLite: writes run in ``BEGIN IMMEDIATE`` transactions behind one process-wide lock, so
concurrent API requests never see "database is locked"; reads run concurrently.

PostgreSQL (``postgresql+psycopg://…``): no process lock; several processes (replicas)
share one database, each with a connection pool sized by settings, in READ COMMITTED.
The server's row locks keep the contracts:

- a claim locks the pools and the deployments of its candidates (``FOR NO KEY UPDATE``,
  in name/id order), then the candidate runs themselves (``FOR UPDATE SKIP LOCKED``),
  and only then counts the runs in ``ACTIVE`` states, so racing claimers on any number
  of replicas never exceed a pool's or a deployment's concurrency limit;
- every writer takes locks in the same order (pool, deployment, schedules, runs), so
  claims, deploys and deletes cannot deadlock one another;
- idempotent inserts (materialised runs, runs with an idempotency key, meta values) are
  ``INSERT … ON CONFLICT DO NOTHING``; a transition locks its run row first.

The schema is Alembic's (:mod:`service.store.migrations`); :meth:`SqlStore.migrate`
applies pending migrations under a lock (PostgreSQL: an advisory lock; SQLite: the
write lock), so replicas starting together migrate once.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Text,
    and_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row, make_url
from sqlalchemy.exc import IntegrityError

from service.errors import (
    AlreadyExists,
    ApiKeyNotFound,
    ConcurrencyLimitNotFound,
    Conflict,
    DeploymentNotFound,
    IllegalTransition,
    InvalidInput,
    LastAdminKey,
    PoolNotFound,
    RunNotFound,
)
from service.models import (
    ApiKey,
    CacheRecord,
    ConcurrencyLimit,
    Deployment,
    FlowRun,
    InfraRef,
    LogLine,
    Role,
    ScheduleRecord,
    StateRecord,
    TaskRun,
    Teardown,
    WorkPool,
)
from service.store import tables as t
from service.store.base import (
    LogLimits,
    Materialisation,
    Page,
    RunFilter,
    Store,
    TransitionEffects,
    began_at,
    cache_record_valid,
    check_pool_changes,
    fit_lines,
    log_cap_message,
    sort_task_runs,
    take_within,
)
from service.store.sql_automations import SqlAutomationsMixin
from service.store.sql_blocks import SqlBlocks
from service.store.sql_events import SqlEventsMixin
from service.store.sql_param_schema import SqlParameterSchema
from service.store.sql_shared_meta import SqlSharedMeta
from service.store.sql_task_slots import SqlTaskSlotsMixin
from service.vocabulary import ACTIVE, StateType

_RUN_JSON_FIELDS = ("parameters", "job_variables", "result", "error", "tags")

# Hot statements, built once (construction costs more than executing them on SQLite).
_FIND_KEY = select(t.api_keys).where(
    t.api_keys.c.key_hash == bindparam("key_hash"), t.api_keys.c.revoked_at.is_(None)
)
_GET_DEPLOYMENT = select(t.deployments.c.doc).where(t.deployments.c.id == bindparam("id"))
_GET_RUN = select(t.flow_runs).where(t.flow_runs.c.id == bindparam("id"))
_LOCK_RUN = _GET_RUN.with_for_update()
_ANY_DUE = (
    select(t.flow_runs.c.id)
    .join(t.work_pools, t.work_pools.c.name == t.flow_runs.c.work_pool)
    .where(
        t.flow_runs.c.state_type == StateType.SCHEDULED.value,
        t.flow_runs.c.expected_start <= bindparam("now"),
        t.work_pools.c.paused.is_(False),
    )
    .limit(1)
)
_THIS_DUE = _ANY_DUE.where(t.flow_runs.c.id == bindparam("run_id"))


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        _set_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("begin", "DEFERRED")
        if mode != "NONE":  # NONE: a lone read in autocommit mode
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _set_wal(cur: Any, attempts: int = 40) -> None:
    """Switch the file to WAL mode. SQLite answers "database is locked" at once, without
    its busy handler, while another connection is switching the same new file (replicas
    or threads opening it together), so that answer is retried for a few seconds."""
    for attempt in range(attempts):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


#: A fixed key for PostgreSQL's advisory lock around migrations (any 64-bit number).
_MIGRATION_LOCK = 0x70757368706F6F6C  # "pushpool"


def _postgres_engine(url: str, pool_size: int, max_overflow: int, pool_timeout: float) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
    )


class SqlStore(
    SqlBlocks,
    SqlEventsMixin,
    SqlSharedMeta,
    SqlTaskSlotsMixin,
    SqlAutomationsMixin,
    SqlParameterSchema,
    Store,
):
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
    ) -> None:
        """``pool_size``, ``max_overflow`` and ``pool_timeout`` size PostgreSQL's
        connection pool (per process); SQLite ignores them. Raises ``InvalidInput`` for
        a URL of any other database."""
        self.url = url
        backend = make_url(url).get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise InvalidInput(
                "database_url", f"{backend!r} is not supported: use sqlite:// or postgresql://"
            )
        self.is_sqlite = backend == "sqlite"
        database = make_url(url).database
        if self.is_sqlite and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = (
            _sqlite_engine(url)
            if self.is_sqlite
            else _postgres_engine(url, pool_size, max_overflow, pool_timeout)
        )
        # SQLite has one writer at a time anyway: queue writers here rather than at the
        # file lock. PostgreSQL's row locks let writers run side by side.
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )
        self._insert = sqlite.insert if self.is_sqlite else postgresql.insert

    # -- plumbing ----------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._write_lock, self.engine.connect() as raw:
            conn = raw.execution_options(begin="IMMEDIATE") if self.is_sqlite else raw
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only transaction: one consistent snapshot for several statements."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _one(self, statement: Any, **params: Any) -> Row[Any] | None:
        """A single-statement read: no BEGIN/ROLLBACK round trip around it (SQLite)."""
        with self.engine.connect() as raw:
            conn = raw.execution_options(begin="NONE") if self.is_sqlite else raw
            return conn.execute(statement, params).first()

    # -- schema ----------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply pending migrations (stamping a 0.1.0 database as the baseline first)."""
        from service.store import migrations

        with self._write() as c:
            if not self.is_sqlite:
                c.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            migrations.upgrade(c)

    def schema_version(self) -> str | None:
        from service.store import migrations

        with self.engine.connect() as c:
            return migrations.current(c)

    def schema_head(self) -> str:
        from service.store import migrations

        return migrations.head()

    def schema_history(self) -> list[tuple[str, str]]:
        from service.store import migrations

        return [(r.id, r.message) for r in migrations.history()]

    def close(self) -> None:
        self.engine.dispose()

    def get_meta(self, key: str) -> str | None:
        with self._read() as c:
            return c.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()

    def set_meta_if_absent(self, key: str, value: str) -> bool:
        with self._write() as c:
            stmt = self._insert(t.meta).values(key=key, value=value).on_conflict_do_nothing()
            return c.execute(stmt.returning(t.meta.c.key)).first() is not None

    def set_meta(self, key: str, value: str) -> None:
        stmt = self._insert(t.meta).values(key=key, value=value)
        with self._write() as c:
            c.execute(
                stmt.on_conflict_do_update(index_elements=[t.meta.c.key], set_={"value": value})
            )

    def take_turn(self, key: str, now: datetime, every: timedelta) -> bool:
        with self._write() as c:
            c.execute(
                self._insert(t.meta)
                .values(key=key, value="")
                .on_conflict_do_nothing(index_elements=[t.meta.c.key])
            )
            last = c.execute(
                select(t.meta.c.value).where(t.meta.c.key == key).with_for_update()
            ).scalar_one()
            if last and now - datetime.fromisoformat(last) < every:
                return False
            c.execute(update(t.meta).where(t.meta.c.key == key).values(value=now.isoformat()))
            return True

    # -- API keys ------------------------------------------------------------------
    def create_api_key(self, key: ApiKey) -> ApiKey:
        try:
            with self._write() as c:
                c.execute(insert(t.api_keys).values(**key.model_dump(), key_hash=key.key_hash))
        except IntegrityError as exc:
            raise AlreadyExists("api key", key.id) from exc
        return key

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = self._one(_FIND_KEY, key_hash=key_hash)
        return ApiKey(**row._mapping) if row else None

    def list_api_keys(self) -> list[ApiKey]:
        with self._read() as c:
            rows = c.execute(select(t.api_keys).order_by(t.api_keys.c.created_at)).all()
        return [ApiKey(**r._mapping) for r in rows]

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        with self._write() as c:
            row = c.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).first()
            if row is None:
                raise ApiKeyNotFound(key_id)
            if row.revoked_at is None and row.role == Role.ADMIN:
                self._keep_an_admin(c, key_id)
            if row.revoked_at is None:
                c.execute(
                    update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked_at=now)
                )
            row = c.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
        return ApiKey(**row._mapping)

    @staticmethod
    def _keep_an_admin(c: Connection, key_id: str) -> None:
        """Refuse to revoke ``key_id`` if it is the last live admin key. Every live admin
        row is locked, in id order (the key itself included), so two revokes of the last
        two admin keys queue one behind the other instead of each seeing the other live
        (or deadlocking); the second then finds itself alone."""
        keys = t.api_keys.c
        live = c.execute(
            select(keys.id)
            .where(keys.role == Role.ADMIN, keys.revoked_at.is_(None))
            .order_by(keys.id)
            .with_for_update()
        ).scalars()
        if not any(other != key_id for other in live):
            raise LastAdminKey(key_id)

    # -- work pools ------------------------------------------------------------------
    def create_pool(self, pool: WorkPool) -> WorkPool:
        try:
            with self._write() as c:
                c.execute(insert(t.work_pools).values(**pool.model_dump()))
        except IntegrityError as exc:
            raise AlreadyExists("work pool", pool.name) from exc
        return pool

    def get_pool(self, name: str) -> WorkPool:
        with self._read() as c:
            return self._pool(c, name)

    @staticmethod
    def _pool(c: Connection, name: str, lock: str | None = None) -> WorkPool:
        """The pool; ``lock="share"`` keeps it from being deleted until commit (a
        deployment is about to name it), ``lock="update"`` locks it for a change."""
        q = select(t.work_pools).where(t.work_pools.c.name == name)
        if lock == "share":
            q = q.with_for_update(read=True, key_share=True)  # FOR KEY SHARE
        elif lock == "update":
            q = q.with_for_update()
        row = c.execute(q).first()
        if row is None:
            raise PoolNotFound(name)
        return WorkPool(**row._mapping)

    def list_pools(self) -> list[WorkPool]:
        with self._read() as c:
            rows = c.execute(select(t.work_pools).order_by(t.work_pools.c.name)).all()
        return [WorkPool(**r._mapping) for r in rows]

    def update_pool(self, name: str, changes: dict[str, Any], now: datetime) -> WorkPool:
        check_pool_changes(changes)
        with self._write() as c:
            self._pool(c, name, lock="update")
            c.execute(
                update(t.work_pools)
                .where(t.work_pools.c.name == name)
                .values(**changes, updated_at=now)
            )
            return self._pool(c, name)

    def delete_pool(self, name: str) -> None:
        with self._write() as c:
            self._pool(c, name, lock="update")
            users = c.execute(
                select(func.count()).where(t.deployments.c.work_pool == name)
            ).scalar_one()
            if users:
                raise Conflict(f"work pool {name!r} is used by {users} deployment(s)")
            live = c.execute(
                select(func.count()).where(
                    t.flow_runs.c.work_pool == name,
                    t.flow_runs.c.state_type.in_([s.value for s in ACTIVE]),
                )
            ).scalar_one()
            if live:
                raise Conflict(f"work pool {name!r} has {live} run(s) in progress")
            c.execute(delete(t.work_pools).where(t.work_pools.c.name == name))

    # -- deployments ------------------------------------------------------------------
    @staticmethod
    def _deployment_row(d: Deployment) -> dict[str, Any]:
        return {
            "id": d.id,
            "flow_name": d.flow_name,
            "name": d.name,
            "work_pool": d.work_pool,
            "concurrency_limit": d.concurrency_limit,
            "paused": d.paused,
            "doc": d.model_dump(mode="json"),
            "created_at": d.created_at,
            "updated_at": d.updated_at,
        }

    def upsert_deployment(
        self, deployment: Deployment, schedules: list[ScheduleRecord]
    ) -> tuple[Deployment, bool]:
        try:
            return self._upsert_deployment(deployment, schedules)
        except IntegrityError:
            # Another process created this (flow, name) between our look and our insert:
            # once more, now as a replace.
            return self._upsert_deployment(deployment, schedules)

    def _upsert_deployment(
        self, deployment: Deployment, schedules: list[ScheduleRecord]
    ) -> tuple[Deployment, bool]:
        with self._write() as c:
            self._pool(c, deployment.work_pool, lock="share")
            self._hold_blocks(c, deployment.blocks)
            existing = c.execute(
                select(t.deployments.c.id, t.deployments.c.created_at).where(
                    t.deployments.c.flow_name == deployment.flow_name,
                    t.deployments.c.name == deployment.name,
                )
            ).first()
            created = existing is None
            if existing is not None:
                deployment = deployment.model_copy(
                    update={"id": existing.id, "created_at": existing.created_at}
                )
                c.execute(
                    update(t.deployments)
                    .where(t.deployments.c.id == deployment.id)
                    .values(**self._deployment_row(deployment))
                )
            else:
                c.execute(insert(t.deployments).values(**self._deployment_row(deployment)))
            self._replace_schedules(c, deployment.id, schedules)
        return deployment, created

    def _replace_schedules(
        self, c: Connection, deployment_id: str, records: list[ScheduleRecord]
    ) -> None:
        s = t.schedules
        old = {
            r.id: r
            for r in c.execute(select(s.c.id, s.c.active).where(s.c.deployment_id == deployment_id))
        }
        new_ids = {r.id for r in records}
        gone = [sid for sid in old if sid not in new_ids]
        # A schedule switched off loses its future runs too.
        gone += [r.id for r in records if r.id in old and old[r.id].active and not r.active]
        if gone:
            self._delete_scheduled_runs(
                c, t.flow_runs.c.schedule_id.in_(gone), t.flow_runs.c.auto_scheduled.is_(True)
            )
            c.execute(delete(s).where(s.c.id.in_([g for g in gone if g not in new_ids])))
        for r in records:
            values = {"doc": r.schedule.model_dump(mode="json"), "active": r.active}
            if r.id in old:
                if not r.active:
                    values["next_fire_at"] = None
                elif not old[r.id].active:
                    values["next_fire_at"] = r.next_fire_at
                c.execute(update(s).where(s.c.id == r.id).values(**values))
            else:
                c.execute(
                    insert(s).values(
                        id=r.id,
                        deployment_id=deployment_id,
                        next_fire_at=r.next_fire_at if r.active else None,
                        **values,
                    )
                )

    @staticmethod
    def _delete_scheduled_runs(c: Connection, *where: Any) -> int:
        """Delete the ``SCHEDULED`` runs matching ``where`` and their history. The state
        is checked by the DELETE itself, so a run claimed meanwhile stays."""
        r = t.flow_runs
        ids = list(
            c.execute(
                delete(r).where(*where, r.c.state_type == StateType.SCHEDULED).returning(r.c.id)
            ).scalars()
        )
        if ids:
            c.execute(delete(t.state_history).where(t.state_history.c.run_id.in_(ids)))
            _delete_run_logs(c, ids)
        return len(ids)

    def get_deployment(self, deployment_id: str) -> Deployment:
        row = self._one(_GET_DEPLOYMENT, id=deployment_id)
        if row is None:
            raise DeploymentNotFound(deployment_id)
        return Deployment.model_validate(row.doc)

    def get_deployments(self, deployment_ids: Iterable[str]) -> dict[str, Deployment]:
        ids = sorted(set(deployment_ids))
        if not ids:
            return {}
        d = t.deployments
        with self._read() as c:
            rows = c.execute(select(d.c.doc).where(d.c.id.in_(ids))).all()
        found = (Deployment.model_validate(row.doc) for row in rows)
        return {dep.id: dep for dep in found}

    def find_deployment(self, flow_name: str, name: str) -> Deployment:
        with self._read() as c:
            row = c.execute(
                select(t.deployments.c.doc).where(
                    t.deployments.c.flow_name == flow_name, t.deployments.c.name == name
                )
            ).first()
        if row is None:
            raise DeploymentNotFound(f"{flow_name}/{name}")
        return Deployment.model_validate(row.doc)

    def list_deployments(self, *, work_pool: str | None = None) -> list[Deployment]:
        q = select(t.deployments.c.doc).order_by(t.deployments.c.flow_name, t.deployments.c.name)
        if work_pool is not None:
            q = q.where(t.deployments.c.work_pool == work_pool)
        with self._read() as c:
            return [Deployment.model_validate(r.doc) for r in c.execute(q)]

    def delete_deployment(self, deployment_id: str) -> None:
        with self._write() as c:
            if (
                c.execute(delete(t.deployments).where(t.deployments.c.id == deployment_id)).rowcount
                == 0
            ):
                raise DeploymentNotFound(deployment_id)
            c.execute(delete(t.schedules).where(t.schedules.c.deployment_id == deployment_id))
            self._delete_scheduled_runs(c, t.flow_runs.c.deployment_id == deployment_id)
            # The deployment's logs go with it (its other runs stay, as records).
            r = t.flow_runs
            kept = [
                row.id
                for row in c.execute(select(r.c.id).where(r.c.deployment_id == deployment_id))
            ]
            _delete_run_logs(c, kept)

    def get_schedules(self, deployment_id: str) -> list[ScheduleRecord]:
        with self._read() as c:
            rows = c.execute(
                select(t.schedules)
                .where(t.schedules.c.deployment_id == deployment_id)
                .order_by(t.schedules.c.id)
            ).all()
        return [self._schedule(row) for row in rows]

    @staticmethod
    def _schedule(row: Row[Any]) -> ScheduleRecord:
        return ScheduleRecord(
            id=row.id,
            deployment_id=row.deployment_id,
            schedule=row.doc,
            next_fire_at=row.next_fire_at,
            active=row.active,
        )

    # -- the tick ------------------------------------------------------------------------
    def due_schedules(self, until: datetime, limit: int) -> list[tuple[ScheduleRecord, Deployment]]:
        s, d = t.schedules, t.deployments
        q = (
            select(s, d.c.doc.label("deployment_doc"))
            .join(d, d.c.id == s.c.deployment_id)
            .where(s.c.next_fire_at <= until, s.c.active.is_(True), d.c.paused.is_(False))
            .order_by(s.c.next_fire_at)
            .limit(limit)
        )
        with self._read() as c:
            rows = c.execute(q).all()
        return [(self._schedule(r), Deployment.model_validate(r.deployment_doc)) for r in rows]

    def materialise(self, batch: Sequence[Materialisation]) -> int:
        r, sc = t.flow_runs, t.schedules
        # Sorted, so two materialisers (replicas) insert and lock in one order: no deadlock.
        runs = sorted((run for m in batch for run in m.runs), key=lambda run: run.id)
        cursors = sorted(
            (
                {"b_id": m.schedule_id, "b_at": m.next_fire_at}
                for m in batch
                if m.next_fire_at is not None
            ),
            key=lambda cursor: str(cursor["b_id"]),
        )
        fresh: list[FlowRun] = []
        with self._write() as c:
            if runs:
                created = set(
                    c.execute(
                        self._insert(r)
                        .on_conflict_do_nothing(index_elements=[r.c.id])
                        .returning(r.c.id),
                        [self._run_row(run) for run in runs],
                    ).scalars()
                )
                fresh = [run for run in runs if run.id in created]
            if fresh:
                c.execute(insert(t.state_history), [self._history_row(run) for run in fresh])
            if cursors:
                at = bindparam("b_at", type_=t.UTCDateTime)
                c.execute(
                    update(sc)
                    .where(
                        sc.c.id == bindparam("b_id"),
                        or_(sc.c.next_fire_at.is_(None), sc.c.next_fire_at < at),
                        sc.c.active.is_(True),
                    )
                    .values(next_fire_at=at),
                    cursors,
                )
        return len(fresh)

    # -- runs -------------------------------------------------------------------------------
    @staticmethod
    def _run_row(run: FlowRun) -> dict[str, Any]:
        data = run.model_dump(mode="python", exclude={"state", "infra", "token_hash"})
        for key in _RUN_JSON_FIELDS:
            data[key] = run.model_dump(mode="json", include={key})[key]
        return {
            **data,
            "state_type": run.state.type.value,
            "state_name": run.state.name,
            "state_message": run.state.message,
            "state_timestamp": run.state.timestamp,
            "began_at": _began_on_insert(run),
            "infra": run.infra.model_dump(mode="json") if run.infra else None,
            "token_hash": run.token_hash,
        }

    @staticmethod
    def _history_row(run: FlowRun) -> dict[str, Any]:
        return {
            "run_id": run.id,
            "type": run.state.type.value,
            "name": run.state.name,
            "message": run.state.message,
            "timestamp": run.state.timestamp,
        }

    @staticmethod
    def _run(row: Row[Any]) -> FlowRun:
        m = dict(row._mapping)
        m.pop("began_at", None)
        m["state"] = StateRecord(
            type=StateType(m.pop("state_type")),
            name=m.pop("state_name"),
            message=m.pop("state_message"),
            timestamp=m.pop("state_timestamp"),
        )
        return FlowRun.model_validate(m)

    def _get_run(self, c: Connection, run_id: str, *, lock: bool = False) -> FlowRun:
        row = c.execute(_LOCK_RUN if lock else _GET_RUN, {"id": run_id}).first()
        if row is None:
            raise RunNotFound(run_id)
        return self._run(row)

    def create_run(self, run: FlowRun) -> tuple[FlowRun, bool]:
        r = t.flow_runs
        with self._write() as c:
            # DO NOTHING on any conflict: the id (a duplicate) or the idempotency key
            # (another request with the same key won, perhaps a moment ago elsewhere).
            inserted = c.execute(
                self._insert(r).on_conflict_do_nothing().returning(r.c.id), self._run_row(run)
            ).first()
            if inserted is not None:
                c.execute(insert(t.state_history), self._history_row(run))
                return run, True
            if run.idempotency_key is not None:
                row = c.execute(
                    select(r).where(
                        r.c.deployment_id == run.deployment_id,
                        r.c.idempotency_key == run.idempotency_key,
                    )
                ).first()
                if row is not None:
                    return self._run(row), False
        raise AlreadyExists("flow run", run.id)

    def get_run(self, run_id: str) -> FlowRun:
        row = self._one(_GET_RUN, id=run_id)
        if row is None:
            raise RunNotFound(run_id)
        return self._run(row)

    def list_runs(self, flt: RunFilter, limit: int, cursor: str | None = None) -> Page:
        r = t.flow_runs
        order = (_run_key(flt), r.c.id)
        q = _run_filter(select(r), flt, cursor)
        q = q.order_by(*(order if flt.ascending else (c.desc() for c in order))).limit(limit + 1)
        with self._read() as c:
            rows = c.execute(q).all()
        items = [self._run(row) for row in rows[:limit]]
        if len(rows) <= limit or not items:
            return Page(items, None)
        last = rows[limit - 1]
        at = last.began_at if flt.by_began else last.expected_start
        return Page(items, _encode_cursor(at, last.id))

    def count_runs(
        self, flt: RunFilter, cursor: str | None = None, at_most: int | None = None
    ) -> int:
        matching = _run_filter(select(t.flow_runs.c.id), flt, cursor).limit(at_most)
        q = select(func.count()).select_from(matching.subquery())
        with self._read() as c:
            return int(c.execute(q).scalar_one())

    def state_history(self, run_id: str) -> list[StateRecord]:
        h = t.state_history
        with self._read() as c:
            self._get_run(c, run_id)
            rows = c.execute(select(h).where(h.c.run_id == run_id).order_by(h.c.id)).all()
        return [
            StateRecord(type=row.type, name=row.name, message=row.message, timestamp=row.timestamp)
            for row in rows
        ]

    def claim_due_runs(
        self,
        now: datetime,
        limit: int,
        issue_token: Callable[[str], str],
        *,
        run_ids: Iterable[str] | None = None,
    ) -> list[FlowRun]:
        r, p = t.flow_runs, t.work_pools
        q = (
            select(r.c.id, r.c.work_pool, r.c.deployment_id)
            .join(p, p.c.name == r.c.work_pool)
            .where(
                r.c.state_type == StateType.SCHEDULED,
                r.c.expected_start <= now,
                p.c.paused.is_(False),
            )
            .order_by(r.c.expected_start)
            .limit(limit * 4)
        )
        ids = None if run_ids is None else list(run_ids)
        if ids is not None:
            q = q.where(r.c.id.in_(ids))
        if ids is None:
            due = self._one(_ANY_DUE, now=now)
        elif len(ids) == 1:
            due = self._one(_THIS_DUE, now=now, run_id=ids[0])
        else:
            due = self._one(q.limit(1))
        if due is None:
            return []  # nothing due: no write transaction, no lock
        with self._write() as c:
            candidates = c.execute(q).all()
            if not candidates:
                return []
            pool_limits, dep_limits = self._lock_limits(c, candidates)
            locked = self._lock_candidates(c, candidates, now, pool_limits, dep_limits)
            chosen = _within_limits(c, locked, limit, pool_limits, dep_limits)
            if not chosen:
                return []
            tokens = {run_id: issue_token(run_id) for run_id in chosen}
            c.execute(
                update(r)
                .where(r.c.id == bindparam("b_id"), r.c.state_type == StateType.SCHEDULED)
                .values(
                    state_type=StateType.PENDING,
                    state_name="Pending",
                    state_message=None,
                    state_timestamp=now,
                    began_at=now,
                    run_count=r.c.run_count + 1,
                    infra=None,
                    token_hash=bindparam("b_token"),
                    updated_at=now,
                ),
                [{"b_id": run_id, "b_token": token} for run_id, token in tokens.items()],
            )
            rows = c.execute(select(r).where(r.c.id.in_(chosen))).all()
            # Ours are those now carrying the token we issued (another claimer may have won).
            ours = {row.id: self._run(row) for row in rows if row.token_hash == tokens[row.id]}
            if ours:
                c.execute(
                    insert(t.state_history),
                    [
                        {"run_id": i, "type": "PENDING", "name": "Pending", "timestamp": now}
                        for i in ours
                    ],
                )
        return [ours[i] for i in chosen if i in ours]

    @staticmethod
    def _lock_limits(
        c: Connection, candidates: Sequence[Any]
    ) -> tuple[dict[str, int | None], dict[str, int | None]]:
        """Lock the candidates' pools and deployments (in name/id order, so two claimers
        never wait on each other in a circle) and read their limits. Until commit no
        other claimer counts these pools' and deployments' active runs. Paused pools
        are left out."""
        p, d = t.work_pools, t.deployments
        pools = sorted({row.work_pool for row in candidates})
        deps = sorted({row.deployment_id for row in candidates if row.deployment_id})
        pool_rows = c.execute(
            select(p.c.name, p.c.concurrency_limit, p.c.paused)
            .where(p.c.name.in_(pools))
            .order_by(p.c.name)
            # FOR NO KEY UPDATE: a deploy may still name the pool (FOR KEY SHARE) meanwhile.
            .with_for_update(key_share=True)
        ).all()
        dep_rows = c.execute(
            select(d.c.id, d.c.concurrency_limit)
            .where(d.c.id.in_(deps))
            .order_by(d.c.id)
            .with_for_update(key_share=True)
        ).all()
        pool_limits = {row.name: row.concurrency_limit for row in pool_rows if not row.paused}
        return pool_limits, _pairs(dep_rows)

    @staticmethod
    def _lock_candidates(
        c: Connection,
        candidates: Sequence[Any],
        now: datetime,
        pool_limits: dict[str, int | None],
        dep_limits: dict[str, int | None],
    ) -> list[Any]:
        """Lock the candidates still due, skipping runs another transaction holds; only
        runs of the pools and deployments locked above (a deployment deleted meanwhile
        took its scheduled runs with it)."""
        r = t.flow_runs
        rows = c.execute(
            select(r.c.id, r.c.work_pool, r.c.deployment_id)
            .where(
                r.c.id.in_([row.id for row in candidates]),
                r.c.state_type == StateType.SCHEDULED,
                r.c.expected_start <= now,
            )
            .order_by(r.c.expected_start)
            .with_for_update(skip_locked=True)
        ).all()
        return [
            row
            for row in rows
            if row.work_pool in pool_limits
            and (row.deployment_id is None or row.deployment_id in dep_limits)
        ]

    def transition(
        self,
        run_id: str,
        expected: StateType,
        state: StateRecord,
        effects: TransitionEffects | None = None,
    ) -> FlowRun:
        effects = effects or TransitionEffects()
        r = t.flow_runs
        values: dict[str, Any] = {
            "state_type": state.type.value,
            "state_name": state.name,
            "state_message": state.message,
            "state_timestamp": state.timestamp,
            "updated_at": state.timestamp,
        }
        for key, value in effects.fields.items():
            values[key] = value.model_dump(mode="json") if isinstance(value, InfraRef) else value
        if effects.revoke_token:
            values["token_hash"] = None
        began = began_at(expected, state, effects.fields)
        if began is not None:
            values["began_at"] = began
        with self._write() as c:
            current = self._get_run(c, run_id, lock=True)
            if current.state.type != expected:
                raise IllegalTransition(run_id, current.state.type.value, state.type.value)
            c.execute(
                update(r).where(r.c.id == run_id, r.c.state_type == expected.value).values(**values)
            )
            c.execute(
                insert(t.state_history).values(
                    run_id=run_id,
                    type=state.type.value,
                    name=state.name,
                    message=state.message,
                    timestamp=state.timestamp,
                )
            )
            if effects.teardown and current.infra is not None:
                c.execute(
                    insert(t.teardowns).values(
                        run_id=run_id,
                        work_pool=current.work_pool,
                        infra=current.infra.model_dump(mode="json"),
                        created_at=state.timestamp,
                    )
                )
            return self._get_run(c, run_id)

    def _guarded_update(self, run_id: str, expected: StateType, **values: Any) -> bool:
        r = t.flow_runs
        with self._write() as c:
            n = c.execute(
                update(r).where(r.c.id == run_id, r.c.state_type == expected.value).values(**values)
            ).rowcount
        return bool(n)

    def set_infra(self, run_id: str, expected: StateType, infra: InfraRef) -> bool:
        return self._guarded_update(run_id, expected, infra=infra.model_dump(mode="json"))

    def set_infra_many(self, started: Sequence[tuple[FlowRun, InfraRef]]) -> set[str]:
        """One write transaction: one UPDATE sent for every run at once (executemany:
        psycopg pipelines it), then one SELECT of which runs now hold their ref."""
        if not started:
            return set()
        r = t.flow_runs
        refs = {run.id: infra.model_dump(mode="json") for run, infra in started}
        with self._write() as c:
            c.execute(
                update(r)
                .where(
                    r.c.id == bindparam("b_id"),
                    r.c.run_count == bindparam("b_count"),
                    # not IN (...): an expanding parameter cannot be sent executemany
                    or_(
                        r.c.state_type == StateType.PENDING.value,
                        r.c.state_type == StateType.RUNNING.value,
                    ),
                )
                .values(infra=bindparam("b_infra")),
                [
                    {"b_id": run.id, "b_count": run.run_count, "b_infra": refs[run.id]}
                    for run, _ in started
                ],
            )
            rows = c.execute(select(r.c.id, r.c.infra).where(r.c.id.in_(list(refs)))).all()
        return {row.id for row in rows if row.infra == refs[row.id]}

    def set_token(self, run_id: str, expected: StateType, token_hash: str) -> bool:
        return self._guarded_update(run_id, expected, token_hash=token_hash)

    def replace_token(self, run_id: str, old_hash: str, new_hash: str) -> bool:
        r = t.flow_runs
        with self._write() as c:
            n = c.execute(
                update(r)
                .where(r.c.id == run_id, r.c.token_hash == old_hash)
                .values(token_hash=new_hash)
            ).rowcount
        return bool(n)

    def record_heartbeat(self, run_id: str, now: datetime) -> None:
        with self._write() as c:
            n = c.execute(
                update(t.flow_runs).where(t.flow_runs.c.id == run_id).values(heartbeat_at=now)
            ).rowcount
        if not n:
            raise RunNotFound(run_id)

    def runs_in_states(
        self,
        states: Sequence[StateType],
        limit: int,
        *,
        before: datetime | None = None,
        since: datetime | None = None,
        auto_scheduled: bool | None = None,
        deployment_id: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[FlowRun]:
        r = t.flow_runs
        q = (
            select(r)
            .where(r.c.state_type.in_([s.value for s in states]))
            .order_by(r.c.expected_start, r.c.id)
            .limit(limit)
        )
        if before is not None:
            q = q.where(r.c.expected_start < before)
        if after is not None:
            start, run_id = after
            q = q.where(
                or_(
                    r.c.expected_start > start,
                    and_(r.c.expected_start == start, r.c.id > run_id),
                )
            )
        elif since is not None:
            q = q.where(r.c.expected_start >= since)
        if auto_scheduled is not None:
            q = q.where(r.c.auto_scheduled.is_(auto_scheduled))
        if deployment_id is not None:
            q = q.where(r.c.deployment_id == deployment_id)
        with self._read() as c:
            return [self._run(row) for row in c.execute(q)]

    def reset_schedules(self, deployment_id: str, cursors: dict[str, datetime | None]) -> int:
        s = t.schedules
        with self._write() as c:
            # Schedules before runs: the order every writer locks them in.
            for sched_id, cursor in sorted(cursors.items()):
                c.execute(
                    update(s)
                    .where(s.c.id == sched_id, s.c.deployment_id == deployment_id)
                    .values(next_fire_at=cursor)
                )
            return self._delete_scheduled_runs(
                c,
                t.flow_runs.c.deployment_id == deployment_id,
                t.flow_runs.c.auto_scheduled.is_(True),
            )

    def next_scheduled_start(self, after: datetime) -> datetime | None:
        r = t.flow_runs
        with self._read() as c:
            value: datetime | None = c.execute(
                select(func.min(r.c.expected_start)).where(
                    r.c.state_type == StateType.SCHEDULED, r.c.expected_start > after
                )
            ).scalar()
        return None if value is None else value.replace(tzinfo=UTC)

    # -- teardown queue ----------------------------------------------------------------------
    def pending_teardowns(self, limit: int) -> list[Teardown]:
        with self._read() as c:
            rows = c.execute(select(t.teardowns).order_by(t.teardowns.c.id).limit(limit)).all()
        return [Teardown(**row._mapping) for row in rows]

    def finish_teardown(self, teardown_id: int) -> None:
        with self._write() as c:
            c.execute(delete(t.teardowns).where(t.teardowns.c.id == teardown_id))

    # -- logs ----------------------------------------------------------------------------------
    def append_logs(
        self,
        run_id: str,
        lines: Sequence[LogLine],
        *,
        batch: tuple[int, int] | None = None,
        limits: LogLimits | None = None,
    ) -> bool:
        try:
            with self._write() as c:
                if batch is not None:  # a resent batch fails here, and nothing is written
                    c.execute(
                        insert(t.log_batches).values(run_id=run_id, attempt=batch[0], seq=batch[1])
                    )
                self._append_capped(c, run_id, lines, limits)
        except IntegrityError:
            if batch is None:
                raise
            return False
        return True

    def _append_capped(
        self, c: Connection, run_id: str, lines: Sequence[LogLine], limits: LogLimits | None
    ) -> None:
        u = t.log_usage
        usage = c.execute(select(u).where(u.c.run_id == run_id)).one_or_none()
        used: tuple[int, int] = (usage.lines, usage.bytes) if usage is not None else (0, 0)
        kept: list[LogLine] = []
        if usage is not None and usage.dropped_lines and limits is not None:
            lost, lost_bytes = len(lines), sum(len(x.message.encode()) for x in lines)
        else:
            kept, lost, lost_bytes = fit_lines(lines, used[0], used[1], limits)
        if kept:
            rows = [line.model_dump(exclude={"id"}) | {"run_id": run_id} for line in kept]
            c.execute(insert(t.logs), rows)
        if limits is None:
            return
        values = {
            "lines": used[0] + len(kept),
            "bytes": used[1] + sum(len(x.message.encode()) for x in kept),
            "dropped_lines": (usage.dropped_lines if usage is not None else 0) + lost,
            "dropped_bytes": (usage.dropped_bytes if usage is not None else 0) + lost_bytes,
            "marker_id": usage.marker_id if usage is not None else None,
        }
        if lost:
            values["marker_id"] = self._write_marker(c, run_id, lines[-1], values, limits)
        if usage is None:
            c.execute(insert(u).values(run_id=run_id, **values))
        else:
            c.execute(update(u).where(u.c.run_id == run_id).values(**values))

    @staticmethod
    def _write_marker(
        c: Connection, run_id: str, last: LogLine, usage: dict[str, Any], limits: LogLimits
    ) -> int:
        message = log_cap_message(limits, usage["dropped_lines"], usage["dropped_bytes"])
        if usage["marker_id"] is not None:
            c.execute(
                update(t.logs).where(t.logs.c.id == usage["marker_id"]).values(message=message)
            )
            return int(usage["marker_id"])
        marker = LogLine(
            run_id=run_id,
            timestamp=last.timestamp,
            level="WARNING",
            message=message,
            stream="logging",
            logger="pushpool",
        )
        result = c.execute(insert(t.logs).values(**marker.model_dump(exclude={"id"})))
        assert result.inserted_primary_key is not None
        return int(result.inserted_primary_key[0])

    def read_logs(
        self,
        run_id: str,
        *,
        after_id: int = 0,
        limit: int = 1000,
        max_bytes: int | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        lg = t.logs
        query = select(lg).where(lg.c.run_id == run_id, lg.c.id > after_id)
        if task_run_id is not None:
            query = query.where(lg.c.task_run_id == task_run_id)
        with self._read() as c:
            rows = c.execute(query.order_by(lg.c.id).limit(limit))
            return take_within((LogLine(**row._mapping) for row in rows), max_bytes)

    def delete_logs(self, *, run_ids: Sequence[str] = (), before: datetime | None = None) -> int:
        with self._write() as c:
            deleted = _delete_run_logs(c, list(run_ids))
            if before is not None:
                deleted += c.execute(delete(t.logs).where(t.logs.c.timestamp < before)).rowcount
        return deleted

    def read_logs_tail(
        self,
        run_id: str,
        count: int,
        *,
        task_run_id: str | None = None,
        before_id: int | None = None,
    ) -> list[LogLine]:
        lg = t.logs
        query = select(lg).where(lg.c.run_id == run_id)
        if task_run_id is not None:
            query = query.where(lg.c.task_run_id == task_run_id)
        if before_id is not None:
            query = query.where(lg.c.id < before_id)
        with self._read() as c:
            rows = c.execute(query.order_by(lg.c.id.desc()).limit(count)).all()
        return [LogLine(**row._mapping) for row in reversed(rows)]

    # -- task runs, cache records, tag concurrency limits ----------------------------
    def upsert_task_runs(self, run_id: str, task_runs: Sequence[TaskRun]) -> None:
        latest = {tr.id: tr for tr in task_runs}
        if not latest:
            return
        tr_table = t.task_runs
        rows = [
            {"run_id": run_id, "id": i, "created": tr.created, "data": _task_run_data(tr)}
            for i, tr in latest.items()
        ]
        with self._write() as c:
            c.execute(
                delete(tr_table).where(tr_table.c.run_id == run_id, tr_table.c.id.in_(list(latest)))
            )
            c.execute(insert(tr_table), rows)

    def list_task_runs(self, run_id: str) -> list[TaskRun]:
        tr_table = t.task_runs
        with self._read() as c:
            rows = c.execute(select(tr_table.c.data).where(tr_table.c.run_id == run_id)).all()
        return sort_task_runs(TaskRun.model_validate(row.data) for row in rows)

    def put_cache_record(self, record: CacheRecord) -> None:
        cr = t.cache_records
        with self._write() as c:
            c.execute(delete(cr).where(cr.c.key == record.key))
            c.execute(insert(cr).values(**record.model_dump()))

    def get_cache_record(self, key: str, now: datetime) -> CacheRecord | None:
        cr = t.cache_records
        with self._read() as c:
            row = c.execute(select(cr).where(cr.c.key == key)).first()
        record = CacheRecord(**row._mapping) if row is not None else None
        return record if record is not None and cache_record_valid(record, now) else None

    def put_concurrency_limit(self, tag: str, limit: int) -> None:
        cl = t.concurrency_limits
        with self._write() as c:
            if not c.execute(update(cl).where(cl.c.tag == tag).values(limit=limit)).rowcount:
                c.execute(insert(cl).values(tag=tag, limit=limit))

    def list_concurrency_limits(self, now: datetime) -> list[ConcurrencyLimit]:
        cl, sl = t.concurrency_limits, t.slot_leases
        with self._read() as c:
            limits = c.execute(select(cl).order_by(cl.c.tag)).all()
            held = Counter(
                row.tag for row in c.execute(select(sl.c.tag).where(sl.c.expires_at > now))
            )
        return [
            ConcurrencyLimit(tag=r.tag, limit=r.limit, active_slots=held[r.tag]) for r in limits
        ]

    def delete_concurrency_limit(self, tag: str) -> None:
        cl, sl = t.concurrency_limits, t.slot_leases
        with self._write() as c:
            if not c.execute(delete(cl).where(cl.c.tag == tag)).rowcount:
                raise ConcurrencyLimitNotFound(tag)
            c.execute(delete(sl).where(sl.c.tag == tag))

    def acquire_slots(
        self, tags: Sequence[str], holder: str, now: datetime, expires_at: datetime
    ) -> bool:
        cl, sl = t.concurrency_limits, t.slot_leases
        with self._write() as c:
            rows = c.execute(select(cl).where(cl.c.tag.in_(list(tags))).with_for_update()).all()
            limits = {row.tag: row.limit for row in rows}
            if not limits:
                return True
            others = c.execute(
                select(sl.c.tag).where(
                    sl.c.tag.in_(list(limits)), sl.c.holder != holder, sl.c.expires_at > now
                )
            ).all()
            held = Counter(row.tag for row in others)
            if any(held[tag] >= limit for tag, limit in limits.items()):
                return False
            c.execute(delete(sl).where(sl.c.tag.in_(list(limits)), sl.c.expires_at <= now))
            c.execute(delete(sl).where(sl.c.tag.in_(list(limits)), sl.c.holder == holder))
            c.execute(
                insert(sl),
                [{"tag": tag, "holder": holder, "expires_at": expires_at} for tag in limits],
            )
            return True

    def release_slots(self, holder: str, tags: Sequence[str]) -> None:
        sl = t.slot_leases
        with self._write() as c:
            c.execute(delete(sl).where(sl.c.holder == holder, sl.c.tag.in_(list(tags))))


def _delete_run_logs(c: Connection, run_ids: list[str]) -> int:
    """Delete the runs' log lines, batch records and cap records; returns lines deleted."""
    deleted = 0
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start : start + 500]
        deleted += c.execute(delete(t.logs).where(t.logs.c.run_id.in_(chunk))).rowcount
        c.execute(delete(t.log_batches).where(t.log_batches.c.run_id.in_(chunk)))
        c.execute(delete(t.log_usage).where(t.log_usage.c.run_id.in_(chunk)))
    return deleted


def _run_filter(q: Select[Any], flt: RunFilter, cursor: str | None) -> Select[Any]:
    """``q`` narrowed to the runs ``flt`` selects, after ``cursor`` in ``flt``'s order."""
    r = t.flow_runs
    conditions: list[ColumnElement[bool]] = []
    if flt.deployment_id is not None:
        conditions.append(r.c.deployment_id == flt.deployment_id)
    if flt.work_pool is not None:
        conditions.append(r.c.work_pool == flt.work_pool)
    if flt.states:
        conditions.append(r.c.state_type.in_([s.value for s in flt.states]))
    if flt.flow_name is not None:
        conditions.append(r.c.flow_name == flt.flow_name)
    if flt.name is not None:
        conditions.append(r.c.name == flt.name)
    if flt.id_prefix is not None:
        conditions.append(r.c.id.startswith(flt.id_prefix, autoescape=True))
    key = _run_key(flt)
    if flt.by_began:
        conditions.append(key.is_not(None))
    if flt.since is not None:
        conditions.append(key >= flt.since)
    if flt.before is not None:
        conditions.append(key < flt.before)
    if flt.tag is not None:  # tags are a JSON list: match the tag as a JSON string in it
        conditions.append(cast(r.c.tags, Text).contains(json.dumps(flt.tag), autoescape=True))
    if cursor is not None:
        start, run_id = _decode_cursor(cursor)
        if flt.ascending:
            after = or_(key > start, and_(key == start, r.c.id > run_id))
        else:
            after = or_(key < start, and_(key == start, r.c.id < run_id))
        conditions.append(after)
    return q.where(*conditions)


def _began_on_insert(run: FlowRun) -> datetime | None:
    """A run created in a state other than ``SCHEDULED`` has begun as it is made."""
    if run.state.type == StateType.SCHEDULED:
        return None
    return began_at(StateType.SCHEDULED, run.state, {"start_time": run.start_time})


def _run_key(flt: RunFilter) -> ColumnElement[Any]:
    """The column a listing orders by: when runs began, or their expected start."""
    return t.flow_runs.c.began_at if flt.by_began else t.flow_runs.c.expected_start


def _encode_cursor(at: datetime, run_id: str) -> str:
    raw = f"{at.isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, run_id = raw.split("|", 1)
        value = datetime.fromisoformat(created)
        if value.tzinfo is None:
            raise ValueError("naive")
        return value, run_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this server issued") from exc


def _within_limits(
    c: Connection,
    candidates: Sequence[Any],
    limit: int,
    pool_limits: dict[str, int | None],
    dep_limits: dict[str, int | None],
) -> list[str]:
    """Candidates, oldest first, that fit their pool's and deployment's limits, counting
    the runs in ``ACTIVE`` states now (the caller holds the pool and deployment locks)."""
    r = t.flow_runs
    limited_pools = [name for name, n in pool_limits.items() if n is not None]
    limited_deps = [dep for dep, n in dep_limits.items() if n is not None]
    pool_used: Counter[str] = Counter(_active_counts(c, r.c.work_pool, limited_pools))
    dep_used: Counter[str] = Counter(_active_counts(c, r.c.deployment_id, limited_deps))
    chosen: list[str] = []
    for row in candidates:
        if len(chosen) >= limit:
            break
        plimit = pool_limits.get(row.work_pool)
        if plimit is not None and pool_used[row.work_pool] >= plimit:
            continue
        dlimit = dep_limits.get(row.deployment_id) if row.deployment_id else None
        if dlimit is not None and dep_used[row.deployment_id] >= dlimit:
            continue
        chosen.append(row.id)
        pool_used[row.work_pool] += 1
        if row.deployment_id:
            dep_used[row.deployment_id] += 1
    return chosen


def _active_counts(c: Connection, column: Any, keys: Iterable[str]) -> dict[str, int]:
    """Runs in ``ACTIVE`` states per value of ``column`` (a pool or deployment column)."""
    keys = list(keys)
    if not keys:
        return {}
    active = [s.value for s in ACTIVE]
    return _pairs(
        c.execute(
            select(column, func.count())
            .where(column.in_(list(keys)), t.flow_runs.c.state_type.in_(active))
            .group_by(column)
        )
    )


def _pairs(rows: Iterable[Any]) -> dict[Any, Any]:
    return {row[0]: row[1] for row in rows}


def _task_run_data(task_run: TaskRun) -> dict[str, Any]:
    return task_run.model_dump(mode="json")
