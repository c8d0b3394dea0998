"""The Store interface: the domain operations the control plane needs from its database.

Every implementation (SQL in :mod:`service.store.sql`, DynamoDB later) must pass the
conformance suite in ``tests/store/``. The contract, per method, is in its docstring.
Timestamps are timezone-aware UTC. Methods are synchronous and thread-safe: the API
calls them from a thread pool.

Atomicity: each method is one atomic change. A method that raises leaves nothing
behind. State changes are compare-and-set on the state the caller expects, so two
writers never both win; the legality of a transition is decided by
:mod:`service.states`, not here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.errors import InvalidInput
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
from service.states import StateType

#: The work pool fields ``Store.update_pool`` may change; never its name, timestamps or
#: whatever a backend keeps beside them (run and deployment counters, say).
POOL_CHANGES = frozenset({"type", "config", "concurrency_limit", "paused"})


def check_pool_changes(changes: dict[str, Any]) -> None:
    """Raise ``InvalidInput`` naming the first field ``update_pool`` may not change."""
    for name in changes:
        if name not in POOL_CHANGES:
            raise InvalidInput(name, "not a work pool field that can change")


@dataclass(frozen=True)
class RunFilter:
    deployment_id: str | None = None
    states: Sequence[StateType] = ()
    work_pool: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[FlowRun]
    next_cursor: str | None


@dataclass(frozen=True)
class Materialisation:
    """New runs for one schedule and the schedule's cursor after them."""

    schedule_id: str
    runs: list[FlowRun]
    next_fire_at: datetime | None


@dataclass
class TransitionEffects:
    """What else changes, atomically, with a state transition."""

    fields: dict[str, Any] = field(default_factory=dict)
    #: Queue the run's current infrastructure for teardown.
    teardown: bool = False
    #: Forget the run token: the runner of this attempt loses access.
    revoke_token: bool = False


class Store(ABC):
    """Domain storage for pools, deployments, schedules, runs, logs and API keys."""

    # -- lifecycle ---------------------------------------------------------
    @abstractmethod
    def migrate(self) -> None:
        """Create tables/indexes if missing. Idempotent."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A small service-wide value (e.g. bootstrap markers), or ``None``."""

    @abstractmethod
    def set_meta_if_absent(self, key: str, value: str) -> bool:
        """Set ``key`` only if unset; ``True`` if this call set it."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Set ``key``, replacing any value."""

    # -- API keys ------------------------------------------------------------
    @abstractmethod
    def create_api_key(self, key: ApiKey) -> ApiKey:
        """Store a key (its hash only). Raises ``AlreadyExists`` on a duplicate id."""

    @abstractmethod
    def find_api_key(self, key_hash: str) -> ApiKey | None:
        """The unrevoked key with this hash, or ``None``."""

    @abstractmethod
    def list_api_keys(self) -> list[ApiKey]:
        """All keys, revoked ones included, oldest first."""

    @abstractmethod
    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKey:
        """Mark revoked. Raises ``ApiKeyNotFound``."""

    # -- work pools ----------------------------------------------------------
    @abstractmethod
    def create_pool(self, pool: WorkPool) -> WorkPool:
        """Raises ``AlreadyExists`` if the name is taken."""

    @abstractmethod
    def get_pool(self, name: str) -> WorkPool:
        """Raises ``PoolNotFound``."""

    @abstractmethod
    def list_pools(self) -> list[WorkPool]:
        """All pools by name."""

    @abstractmethod
    def update_pool(self, name: str, changes: dict[str, Any], now: datetime) -> WorkPool:
        """Apply field changes (only :data:`POOL_CHANGES`; anything else raises
        ``InvalidInput`` before touching the pool, see :func:`check_pool_changes`).
        Raises ``PoolNotFound``."""

    @abstractmethod
    def delete_pool(self, name: str) -> None:
        """Raises ``PoolNotFound``; ``Conflict`` while a deployment still uses the pool."""

    # -- deployments -----------------------------------------------------------
    @abstractmethod
    def upsert_deployment(
        self, deployment: Deployment, schedules: list[ScheduleRecord]
    ) -> tuple[Deployment, bool]:
        """Create or replace the deployment with this (flow_name, name).

        On replace the existing id and ``created_at`` are kept (the given ones are
        ignored). ``schedules`` replace the deployment's schedules: a schedule whose id
        is unchanged keeps its stored cursor; a removed schedule's ``SCHEDULED``
        auto-scheduled runs are deleted. Returns ``(stored, created)``. Raises
        ``PoolNotFound`` if the work pool does not exist.
        """

    @abstractmethod
    def get_deployment(self, deployment_id: str) -> Deployment:
        """Raises ``DeploymentNotFound``."""

    @abstractmethod
    def find_deployment(self, flow_name: str, name: str) -> Deployment:
        """Raises ``DeploymentNotFound`` (ident ``flow_name/name``)."""

    @abstractmethod
    def list_deployments(self, *, work_pool: str | None = None) -> list[Deployment]:
        """Deployments by flow name then name."""

    @abstractmethod
    def delete_deployment(self, deployment_id: str) -> None:
        """Delete it, its schedules and its ``SCHEDULED`` runs; other runs stay.

        Raises ``DeploymentNotFound``.
        """

    @abstractmethod
    def get_schedules(self, deployment_id: str) -> list[ScheduleRecord]:
        """The deployment's schedules with their cursors."""

    # -- the tick --------------------------------------------------------------
    @abstractmethod
    def due_schedules(self, until: datetime, limit: int) -> list[tuple[ScheduleRecord, Deployment]]:
        """Active schedules of unpaused deployments with ``next_fire_at <= until``.

        Must be served by an index on ``next_fire_at``: cost follows due schedules.
        """

    @abstractmethod
    def materialise(self, batch: Sequence[Materialisation]) -> int:
        """Insert each run unless a run with its id exists, and move each cursor.

        A cursor only moves forward. Two concurrent calls with the same input create
        each run once. Returns the number of runs created.
        """

    # -- runs ------------------------------------------------------------------
    @abstractmethod
    def create_run(self, run: FlowRun) -> tuple[FlowRun, bool]:
        """Insert a run. With an ``idempotency_key``, an existing run of the same
        deployment with the same key is returned instead: ``(run, created)``."""

    @abstractmethod
    def get_run(self, run_id: str) -> FlowRun:
        """Raises ``RunNotFound``."""

    @abstractmethod
    def list_runs(self, flt: RunFilter, limit: int, cursor: str | None = None) -> Page:
        """Newest first by ``expected_start`` (then id); ``cursor`` continues a page.

        Raises ``InvalidInput('cursor', …)`` for a cursor this store did not issue.
        """

    @abstractmethod
    def state_history(self, run_id: str) -> list[StateRecord]:
        """Every state the run has had, oldest first."""

    @abstractmethod
    def claim_due_runs(
        self,
        now: datetime,
        limit: int,
        issue_token: Callable[[str], str],
        *,
        run_ids: Iterable[str] | None = None,
    ) -> list[FlowRun]:
        """Atomically move due runs ``SCHEDULED -> PENDING``; return the claimed runs.

        Due: ``expected_start <= now``, oldest first, pool not paused. Honour the pool's
        and the deployment's ``concurrency_limit`` counting runs in ``ACTIVE`` states,
        also under concurrent callers. Each claim increments ``run_count``, clears the
        infrastructure reference and stores ``issue_token(run_id)`` (a token hash).
        ``run_ids`` restricts the claim to those runs.
        """

    @abstractmethod
    def transition(
        self,
        run_id: str,
        expected: StateType,
        state: StateRecord,
        effects: TransitionEffects | None = None,
    ) -> FlowRun:
        """Compare-and-set the run's state from ``expected`` to ``state``.

        Appends to the state history, applies ``effects`` in the same transaction.
        Raises ``RunNotFound``; ``IllegalTransition`` (naming the current state) if the
        run is no longer in ``expected``. Callers check legality with
        :func:`service.states.check_transition` first.
        """

    @abstractmethod
    def set_infra(self, run_id: str, expected: StateType, infra: InfraRef) -> bool:
        """Record the attempt's infrastructure if the run is still in ``expected``."""

    @abstractmethod
    def set_token(self, run_id: str, expected: StateType, token_hash: str) -> bool:
        """Replace the token hash if the run is still in ``expected``."""

    @abstractmethod
    def record_heartbeat(self, run_id: str, now: datetime) -> None:
        """Set ``heartbeat_at``. Raises ``RunNotFound``."""

    @abstractmethod
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
        """Runs in any of ``states``, in ``(expected_start, id)`` order; optionally only
        those with ``since <= expected_start < before``, a given ``auto_scheduled``, of
        one deployment, and after the ``after`` = ``(expected_start, id)`` of a run a
        previous page ended with (a cursor that pages through runs sharing one
        ``expected_start``; it is used instead of ``since``).

        Must be served by an index on ``(state, expected_start)``.
        """

    @abstractmethod
    def reset_schedules(self, deployment_id: str, cursors: dict[str, datetime | None]) -> int:
        """Delete the deployment's ``SCHEDULED`` auto-scheduled runs and set the cursors
        of the given schedules (pause/unpause). Returns the number of runs deleted."""

    @abstractmethod
    def next_scheduled_start(self, after: datetime) -> datetime | None:
        """The earliest ``expected_start > after`` of a ``SCHEDULED`` run, or ``None``.

        Lets the scheduler loop wake when the next run is due rather than on a poll.
        """

    # -- teardown queue --------------------------------------------------------
    @abstractmethod
    def pending_teardowns(self, limit: int) -> list[Teardown]:
        """Infrastructure of finished attempts still to be torn down, oldest first."""

    @abstractmethod
    def finish_teardown(self, teardown_id: int) -> None:
        """Forget a teardown entry once done. Idempotent."""

    # -- logs ------------------------------------------------------------------
    @abstractmethod
    def append_logs(self, run_id: str, lines: Sequence[LogLine]) -> None:
        """Append lines to the run's log; ids are assigned increasing per store."""

    @abstractmethod
    def read_logs(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[LogLine]:
        """Lines with ``id > after_id`` in order."""

    # -- task runs -------------------------------------------------------------
    @abstractmethod
    def upsert_task_runs(self, run_id: str, task_runs: Sequence[TaskRun]) -> None:
        """Store the latest snapshot of each task run of ``run_id`` (same id: replaced)."""

    @abstractmethod
    def list_task_runs(self, run_id: str) -> list[TaskRun]:
        """The run's task runs, oldest (``created``) first, ties by id."""

    # -- task cache records --------------------------------------------------------
    @abstractmethod
    def put_cache_record(self, record: CacheRecord) -> None:
        """Store ``record``, replacing any record under its key."""

    @abstractmethod
    def get_cache_record(self, key: str, now: datetime) -> CacheRecord | None:
        """The record under ``key`` unless missing or expired at ``now``."""

    # -- tag concurrency limits ------------------------------------------------------
    @abstractmethod
    def put_concurrency_limit(self, tag: str, limit: int) -> None:
        """Create or change the limit of ``tag``."""

    @abstractmethod
    def list_concurrency_limits(self, now: datetime) -> list[ConcurrencyLimit]:
        """Every limit, by tag, with the number of unexpired leases held against it."""

    @abstractmethod
    def delete_concurrency_limit(self, tag: str) -> None:
        """Remove the limit (and its leases); ConcurrencyLimitNotFound if there is none."""

    @abstractmethod
    def acquire_slots(
        self, tags: Sequence[str], holder: str, now: datetime, expires_at: datetime
    ) -> bool:
        """All or nothing: a lease until ``expires_at`` on every limited tag for ``holder``.

        Leases expired at ``now`` do not count; a holder's own lease is renewed. Tags
        without a limit need none. False (and nothing changed) if any limit is full.
        """

    @abstractmethod
    def release_slots(self, holder: str, tags: Sequence[str]) -> None:
        """Drop ``holder``'s leases on ``tags``. Idempotent."""


def sort_task_runs(task_runs: Iterable[TaskRun]) -> list[TaskRun]:
    """Task runs oldest first (no ``created``: first of all), ties by id."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(task_runs, key=lambda tr: (tr.created or floor, tr.id))


def cache_record_valid(record: CacheRecord, now: datetime) -> bool:
    """Whether ``record`` may still be used at ``now``."""
    return record.expires_at is None or now < record.expires_at
