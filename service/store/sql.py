"""The SQL store: SQLAlchemy Core; SQLite by default (WAL, writes serialised), PostgreSQL works.

Writes run in ``BEGIN IMMEDIATE`` transactions behind one process-wide lock, so
concurrent API requests never see "database is locked"; reads run concurrently.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
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
    ScheduleRecord,
    StateRecord,
    TaskRun,
    Teardown,
    WorkPool,
)
from service.states import ACTIVE, StateType
from service.store import tables as t
from service.store.base import (
    Materialisation,
    Page,
    RunFilter,
    Store,
    TransitionEffects,
    cache_record_valid,
    check_pool_changes,
    sort_task_runs,
)

_RUN_JSON_FIELDS = ("parameters", "job_variables", "result", "error", "tags")

# Hot statements, built once (construction costs more than executing them on SQLite).
_FIND_KEY = select(t.api_keys).where(
    t.api_keys.c.key_hash == bindparam("key_hash"), t.api_keys.c.revoked_at.is_(None)
)
_GET_DEPLOYMENT = select(t.deployments.c.doc).where(t.deployments.c.id == bindparam("id"))
_GET_RUN = select(t.flow_runs).where(t.flow_runs.c.id == bindparam("id"))
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
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("begin", "DEFERRED")
        if mode != "NONE":  # NONE: a lone read in autocommit mode
            conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class SqlStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        database = make_url(url).database
        if self.is_sqlite and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _sqlite_engine(url) if self.is_sqlite else create_engine(url)
        self._write_lock = threading.Lock()

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

    def migrate(self) -> None:
        with self._write_lock:
            t.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def get_meta(self, key: str) -> str | None:
        with self._read() as c:
            return c.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()

    def set_meta_if_absent(self, key: str, value: str) -> bool:
        with self._write() as c:
            if c.execute(select(t.meta.c.key).where(t.meta.c.key == key)).first():
                return False
            c.execute(insert(t.meta).values(key=key, value=value))
            return True

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as c:
            if c.execute(update(t.meta).where(t.meta.c.key == key).values(value=value)).rowcount:
                return
            c.execute(insert(t.meta).values(key=key, value=value))

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
            if row.revoked_at is None:
                c.execute(
                    update(t.api_keys).where(t.api_keys.c.id == key_id).values(revoked_at=now)
                )
            row = c.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).one()
        return ApiKey(**row._mapping)

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
    def _pool(c: Connection, name: str) -> WorkPool:
        row = c.execute(select(t.work_pools).where(t.work_pools.c.name == name)).first()
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
            self._pool(c, name)
            c.execute(
                update(t.work_pools)
                .where(t.work_pools.c.name == name)
                .values(**changes, updated_at=now)
            )
            return self._pool(c, name)

    def delete_pool(self, name: str) -> None:
        with self._write() as c:
            self._pool(c, name)
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
        with self._write() as c:
            self._pool(c, deployment.work_pool)
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
            self._delete_scheduled_runs(c, t.flow_runs.c.schedule_id.in_(gone))
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
    def _delete_scheduled_runs(c: Connection, where: Any) -> int:
        r = t.flow_runs
        ids = [
            row.id
            for row in c.execute(
                select(r.c.id).where(
                    where, r.c.state_type == StateType.SCHEDULED, r.c.auto_scheduled.is_(True)
                )
            )
        ]
        if ids:
            c.execute(delete(t.state_history).where(t.state_history.c.run_id.in_(ids)))
            c.execute(delete(r).where(r.c.id.in_(ids)))
        return len(ids)

    def get_deployment(self, deployment_id: str) -> Deployment:
        row = self._one(_GET_DEPLOYMENT, id=deployment_id)
        if row is None:
            raise DeploymentNotFound(deployment_id)
        return Deployment.model_validate(row.doc)

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
            r = t.flow_runs
            ids = [
                row.id
                for row in c.execute(
                    select(r.c.id).where(
                        r.c.deployment_id == deployment_id, r.c.state_type == StateType.SCHEDULED
                    )
                )
            ]
            if ids:
                c.execute(delete(t.state_history).where(t.state_history.c.run_id.in_(ids)))
                c.execute(delete(r).where(r.c.id.in_(ids)))

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
        runs = [run for m in batch for run in m.runs]
        cursors = [
            {"b_id": m.schedule_id, "b_at": m.next_fire_at}
            for m in batch
            if m.next_fire_at is not None
        ]
        with self._write() as c:
            existing: set[str] = set()
            ids = [run.id for run in runs]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                existing.update(c.execute(select(r.c.id).where(r.c.id.in_(chunk))).scalars())
            fresh = [run for run in runs if run.id not in existing]
            if fresh:
                c.execute(insert(r), [self._run_row(run) for run in fresh])
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
        m["state"] = StateRecord(
            type=StateType(m.pop("state_type")),
            name=m.pop("state_name"),
            message=m.pop("state_message"),
            timestamp=m.pop("state_timestamp"),
        )
        return FlowRun.model_validate(m)

    def _get_run(self, c: Connection, run_id: str) -> FlowRun:
        row = c.execute(_GET_RUN, {"id": run_id}).first()
        if row is None:
            raise RunNotFound(run_id)
        return self._run(row)

    def create_run(self, run: FlowRun) -> tuple[FlowRun, bool]:
        r = t.flow_runs
        with self._write() as c:
            if run.idempotency_key is not None:
                row = c.execute(
                    select(r).where(
                        r.c.deployment_id == run.deployment_id,
                        r.c.idempotency_key == run.idempotency_key,
                    )
                ).first()
                if row is not None:
                    return self._run(row), False
            try:
                c.execute(insert(r), self._run_row(run))
            except IntegrityError as exc:
                raise AlreadyExists("flow run", run.id) from exc
            c.execute(insert(t.state_history), self._history_row(run))
        return run, True

    def get_run(self, run_id: str) -> FlowRun:
        row = self._one(_GET_RUN, id=run_id)
        if row is None:
            raise RunNotFound(run_id)
        return self._run(row)

    def list_runs(self, flt: RunFilter, limit: int, cursor: str | None = None) -> Page:
        r = t.flow_runs
        q = select(r).order_by(r.c.expected_start.desc(), r.c.id.desc()).limit(limit + 1)
        if flt.deployment_id is not None:
            q = q.where(r.c.deployment_id == flt.deployment_id)
        if flt.work_pool is not None:
            q = q.where(r.c.work_pool == flt.work_pool)
        if flt.states:
            q = q.where(r.c.state_type.in_([s.value for s in flt.states]))
        if cursor is not None:
            start, run_id = _decode_cursor(cursor)
            q = q.where(
                or_(
                    r.c.expected_start < start,
                    and_(r.c.expected_start == start, r.c.id < run_id),
                )
            )
        with self._read() as c:
            rows = c.execute(q).all()
        items = [self._run(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, _encode_cursor(items[-1]) if more and items else None)

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
            chosen = self._within_limits(c, candidates, limit)
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
    def _within_limits(c: Connection, candidates: Sequence[Any], limit: int) -> list[str]:
        """Candidates, oldest first, that fit their pool's and deployment's limits."""
        r, p, d = t.flow_runs, t.work_pools, t.deployments
        pools = {row.work_pool for row in candidates}
        deps = {row.deployment_id for row in candidates if row.deployment_id}
        pool_limits = _pairs(
            c.execute(
                select(p.c.name, p.c.concurrency_limit).where(p.c.name.in_(pools)).with_for_update()
            )
        )
        dep_limits = _pairs(
            c.execute(
                select(d.c.id, d.c.concurrency_limit).where(
                    d.c.id.in_(deps), d.c.concurrency_limit.is_not(None)
                )
            )
        )
        pool_used: Counter[str] = Counter()
        if any(v is not None for v in pool_limits.values()):
            pool_used.update(_active_counts(c, r.c.work_pool, pools))
        dep_used: Counter[str] = Counter()
        if dep_limits:
            dep_used.update(_active_counts(c, r.c.deployment_id, dep_limits))
        chosen: list[str] = []
        for row in candidates:
            if len(chosen) >= limit:
                break
            plimit = pool_limits.get(row.work_pool)
            if plimit is not None and pool_used[row.work_pool] >= plimit:
                continue
            dlimit = dep_limits.get(row.deployment_id)
            if dlimit is not None and dep_used[row.deployment_id] >= dlimit:
                continue
            chosen.append(row.id)
            pool_used[row.work_pool] += 1
            if row.deployment_id:
                dep_used[row.deployment_id] += 1
        return chosen

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
        with self._write() as c:
            current = self._get_run(c, run_id)
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

    def set_token(self, run_id: str, expected: StateType, token_hash: str) -> bool:
        return self._guarded_update(run_id, expected, token_hash=token_hash)

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
            n = self._delete_scheduled_runs(c, t.flow_runs.c.deployment_id == deployment_id)
            for sched_id, cursor in cursors.items():
                c.execute(
                    update(s)
                    .where(s.c.id == sched_id, s.c.deployment_id == deployment_id)
                    .values(next_fire_at=cursor)
                )
            return n

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
    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        if not lines:
            return
        rows = [line.model_dump(exclude={"id"}) | {"run_id": run_id} for line in lines]
        with self._write() as c:
            c.execute(insert(t.logs), rows)

    def read_logs(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[LogLine]:
        lg = t.logs
        with self._read() as c:
            rows = c.execute(
                select(lg)
                .where(lg.c.run_id == run_id, lg.c.id > after_id)
                .order_by(lg.c.id)
                .limit(limit)
            ).all()
        return [LogLine(**row._mapping) for row in rows]

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


def _encode_cursor(run: FlowRun) -> str:
    raw = f"{run.expected_start.isoformat()}|{run.id}".encode()
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


def _active_counts(c: Connection, column: Any, keys: Iterable[str]) -> dict[str, int]:
    """Runs in ``ACTIVE`` states per value of ``column`` (a pool or deployment column)."""
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
