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
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from service.automation_records import ActionJob, Automation, DueInstance
from service.blocks.models import BlockDocument, BlockType
from service.errors import InvalidInput, SchemaError
from service.event_records import Event, EventFilter, EventPage, Webhook
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
from service.vocabulary import StateType

#: The work pool fields ``Store.update_pool`` may change; never its name, timestamps or
#: whatever a backend keeps beside them (run and deployment counters, say).
POOL_CHANGES = frozenset({"type", "config", "concurrency_limit", "paused"})


def check_pool_changes(changes: dict[str, Any]) -> None:
    """Raise ``InvalidInput`` naming the first field ``update_pool`` may not change."""
    for name in changes:
        if name not in POOL_CHANGES:
            raise InvalidInput(name, "not a work pool field that can change")


@dataclass(frozen=True)
class LogLimits:
    """The most a run's log may hold; lines past either cap are dropped and counted."""

    max_lines: int
    max_bytes: int


def log_cap_message(limits: LogLimits, lines: int, size: int) -> str:
    """The one marker line a capped run's log ends with."""
    return (
        f"{lines} log line(s) ({size} bytes) dropped: this run's log is limited to "
        f"{limits.max_lines} lines and {limits.max_bytes} bytes"
    )


def fit_lines(
    lines: Sequence[LogLine], used_lines: int, used_bytes: int, limits: LogLimits | None
) -> tuple[list[LogLine], int, int]:
    """``(kept, dropped lines, dropped bytes)``: the leading lines that fit under the caps
    (once one does not fit, none after it is kept, so the log has no holes)."""
    if limits is None:
        return list(lines), 0, 0
    kept: list[LogLine] = []
    for index, line in enumerate(lines):
        size = len(line.message.encode())
        if used_lines + 1 > limits.max_lines or used_bytes + size > limits.max_bytes:
            rest = lines[index:]
            return kept, len(rest), sum(len(x.message.encode()) for x in rest)
        kept.append(line)
        used_lines += 1
        used_bytes += size
    return kept, 0, 0


def take_within(lines: Iterable[LogLine], max_bytes: int | None) -> list[LogLine]:
    """Lines in order while their messages fit in ``max_bytes`` (at least one)."""
    out: list[LogLine] = []
    used = 0
    for line in lines:
        used += len(line.message.encode())
        if out and max_bytes is not None and used > max_bytes:
            break
        out.append(line)
    return out


@dataclass(frozen=True)
class RunFilter:
    deployment_id: str | None = None
    states: Sequence[StateType] = ()
    work_pool: str | None = None
    flow_name: str | None = None
    tag: str | None = None  # runs carrying this tag
    since: datetime | None = None  # expected_start (by_began: began) >= since
    before: datetime | None = None  # expected_start (by_began: began) < before
    name: str | None = None  # exact run name
    id_prefix: str | None = None  # runs whose id starts with this
    ascending: bool = False  # oldest expected_start first (upcoming runs)
    #: Order, ``since``/``before`` and cursors by when runs began (:func:`began_at`)
    #: instead of ``expected_start``; runs that have not begun are not listed.
    by_began: bool = False


def began_at(leaving: StateType, state: StateRecord, fields: dict[str, Any]) -> datetime | None:
    """When a run moving from ``leaving`` to ``state`` began, as listings "most recent
    first" order runs: it begins when it leaves ``SCHEDULED`` (claimed, or cancelled or
    crashed before it ran) and again each time it starts ``RUNNING`` (at ``start_time``).
    ``None``: the run keeps the time it had (a run still to begin has none)."""
    if state.type == StateType.RUNNING:
        start = fields.get("start_time")
        return start if isinstance(start, datetime) else state.timestamp
    if state.type == StateType.PENDING or leaving == StateType.SCHEDULED:
        return state.timestamp
    return None


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

    #: True where the database itself expires old log lines (DynamoDB's TTL), so the
    #: tick need not call ``delete_logs(before=...)``.
    expires_logs: bool = False

    # -- lifecycle ---------------------------------------------------------
    @abstractmethod
    def migrate(self) -> None:
        """Bring the database to :meth:`schema_head`: create what is missing, apply
        pending migrations, keep every row. Idempotent; safe when several processes
        start at once (each change is applied once)."""

    @abstractmethod
    def schema_version(self) -> str | None:
        """The schema version the database is at; ``None`` for an empty database."""

    @abstractmethod
    def schema_head(self) -> str:
        """The schema version this code needs."""

    @abstractmethod
    def schema_history(self) -> list[tuple[str, str]]:
        """Every schema version, oldest first, with what it changed."""

    def check_schema(self) -> None:
        """Raise ``SchemaError`` (one line, saying what to do) unless the database is
        at :meth:`schema_head`."""
        found, needed = self.schema_version(), self.schema_head()
        if found != needed:
            raise SchemaError(found, needed)

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

    @abstractmethod
    def compare_and_set_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Set meta ``key`` to ``value`` only if it is ``expected`` now (``None``: unset);
        ``True`` if this call set it. Atomic: of callers racing from one ``expected``,
        exactly one succeeds (state shared by replicas, e.g. a provisioner's quota windows,
        is read with :meth:`get_meta` and written back with this, retrying on ``False``)."""

    @abstractmethod
    def take_turn(self, key: str, now: datetime, every: timedelta) -> bool:
        """A lease on periodic work: ``True`` for one caller per ``every`` (across every
        process sharing the store), which should then do the work named ``key``.

        Atomic: of callers racing for one period, exactly one gets ``True``; the time of
        that turn is kept (as meta ``key``) and the next turn comes ``every`` later."""

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
        """Mark revoked (idempotent). Raises ``ApiKeyNotFound``, and ``LastAdminKey`` when
        the key is the last unrevoked admin key, atomically with concurrent revokes."""

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
        ``PoolNotFound`` if the work pool does not exist, ``BlockNotFound`` (nothing
        written) if a block of ``deployment.blocks`` does not: atomically with
        :meth:`delete_block`, so of a deploy naming a block and that block's deletion,
        racing, exactly one fails.
        """

    @abstractmethod
    def get_deployment(self, deployment_id: str) -> Deployment:
        """Raises ``DeploymentNotFound``."""

    def get_deployments(self, deployment_ids: Iterable[str]) -> dict[str, Deployment]:
        """The deployments of those ids that exist, by id (a missing one is left out).
        This default reads them one by one; a store that can read them in one call
        overrides it."""
        out: dict[str, Deployment] = {}
        for deployment_id in dict.fromkeys(deployment_ids):
            try:
                out[deployment_id] = self.get_deployment(deployment_id)
            except LookupError:
                continue
        return out

    @abstractmethod
    def record_parameter_schema(
        self, deployment_id: str, schema: dict[str, Any], at: datetime
    ) -> bool:
        """Set the deployment's ``parameter_schema`` (and ``updated_at`` to ``at``) only
        if it has none; True if this call set it, False if it already had one (then
        nothing changes). Atomic against a concurrent call or replace: of two calls at
        once, one sets it. Raises ``DeploymentNotFound``."""

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
        """Newest first by ``expected_start`` (then id), oldest first with
        ``flt.ascending``; ``cursor`` continues a page.

        Raises ``InvalidInput('cursor', …)`` for a cursor this store did not issue.
        """

    def count_runs(
        self, flt: RunFilter, cursor: str | None = None, at_most: int | None = None
    ) -> int:
        """How many runs ``list_runs(flt, …, cursor)`` would list in all, counting no further
        than ``at_most``. This default pages through them; a store that can count in one
        query overrides it."""
        total, page = 0, Page([], cursor)
        while at_most is None or total < at_most:
            page = self.list_runs(flt, 1000, page.next_cursor)
            total += len(page.items)
            if page.next_cursor is None:
                break
        return total if at_most is None else min(total, at_most)

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

    def set_infra_many(self, started: Sequence[tuple[FlowRun, InfraRef]]) -> set[str]:
        """Record the infrastructure of several just-submitted runs (each ``FlowRun`` as
        claimed): the ids of the runs it was recorded for. It is recorded for a run still
        on that attempt (``run_count``) and ``PENDING`` or already ``RUNNING`` (its runner
        may start before a batch is written); not for one that moved on (cancelled, say),
        whose infrastructure the caller stops. A store that can write them in one
        transaction overrides this default, which makes one call per run."""
        done = set()
        for run, infra in started:
            for state in (StateType.PENDING, StateType.RUNNING):
                if self.set_infra(run.id, state, infra):
                    done.add(run.id)
                    break
        return done

    @abstractmethod
    def set_token(self, run_id: str, expected: StateType, token_hash: str) -> bool:
        """Replace the token hash if the run is still in ``expected``."""

    @abstractmethod
    def replace_token(self, run_id: str, old_hash: str, new_hash: str) -> bool:
        """Compare-and-set the token hash from ``old_hash`` to ``new_hash`` (the
        bootstrap exchange); ``False`` if it is no longer ``old_hash``. Never raises for
        an unknown run (``False``)."""

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
    def append_logs(
        self,
        run_id: str,
        lines: Sequence[LogLine],
        *,
        batch: tuple[int, int] | None = None,
        limits: LogLimits | None = None,
    ) -> bool:
        """Append lines to the run's log; ids are assigned increasing per store.

        ``batch`` = ``(attempt, seq)`` names a runner's batch: one already stored is not
        stored again (returns ``False``), also when two copies arrive at once. With
        ``limits``, lines beyond the run's caps (see :func:`fit_lines`) are dropped and
        the run's log ends with one marker line (:func:`log_cap_message`) whose counts
        grow with later drops. Returns ``True`` when the batch was taken.
        """

    @abstractmethod
    def read_logs(
        self,
        run_id: str,
        *,
        after_id: int = 0,
        limit: int = 1000,
        max_bytes: int | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        """Lines with ``id > after_id`` in order: at most ``limit`` lines and, with
        ``max_bytes``, no more lines than fit in that many message bytes (always at
        least one, so a reader makes progress). With ``task_run_id``, only the lines
        that task run wrote."""

    @abstractmethod
    def delete_logs(self, *, run_ids: Sequence[str] = (), before: datetime | None = None) -> int:
        """Delete the logs (and their batch and cap records) of the given runs, and every
        line with a timestamp before ``before`` (a store that :attr:`expires_logs` by
        itself ignores ``before``). Returns the number of lines deleted."""

    def read_logs_tail(
        self,
        run_id: str,
        count: int,
        *,
        task_run_id: str | None = None,
        before_id: int | None = None,
    ) -> list[LogLine]:
        """The last ``count`` lines (of ``task_run_id`` only, when given), in order; with
        ``before_id``, the last ``count`` lines whose id is below it (paging backwards:
        pass the first line's id of the previous page). This default reads the log
        forward; a store that can read backwards by id overrides it."""
        tail: deque[LogLine] = deque(maxlen=count)
        after = 0
        while page := self.read_logs(run_id, after_id=after, limit=1000, task_run_id=task_run_id):
            if before_id is not None and page[-1].id >= before_id:
                tail.extend(line for line in page if line.id < before_id)
                break
            tail.extend(page)
            after = page[-1].id
        return list(tail)

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

    @abstractmethod
    def release_holder_slots(self, holder_prefix: str) -> int:
        """Drop every lease, on any tag, whose holder starts with ``holder_prefix`` (a flow
        run's task runs, when the run ends however it ends). Returns how many. Idempotent."""

    # -- blocks (service.blocks: the store holds secret fields only as Fernet tokens) ----
    @abstractmethod
    def put_block_type(self, block_type: BlockType) -> None:
        """Create or replace the user block type ``block_type.slug``."""

    @abstractmethod
    def get_block_type(self, slug: str) -> BlockType:
        """The user block type ``slug``; ``BlockTypeNotFound`` if there is none."""

    @abstractmethod
    def list_block_types(self) -> list[BlockType]:
        """Every user block type, by slug."""

    @abstractmethod
    def delete_block_type(self, slug: str) -> None:
        """Remove a user block type: ``BlockTypeNotFound`` if there is none, ``Conflict``
        (nothing removed) while documents of it exist."""

    @abstractmethod
    def put_block(self, doc: BlockDocument) -> None:
        """Write a block document, conditional on the version it replaces: version 1
        creates (``Conflict`` if ``type/name`` exists), version n replaces the stored
        version n - 1 (``Conflict`` if the stored one is another, ``BlockNotFound`` if
        none). The encrypted ``secrets`` are stored with it."""

    @abstractmethod
    def get_block(self, slug: str, name: str) -> BlockDocument:
        """The document ``slug/name`` with its encrypted secrets; ``BlockNotFound``."""

    @abstractmethod
    def list_blocks(self, slug: str | None) -> list[BlockDocument]:
        """Every document (of type ``slug`` if given), by type then name, with secrets."""

    @abstractmethod
    def delete_block(self, slug: str, name: str) -> None:
        """Remove ``slug/name``: ``BlockNotFound`` if absent, ``BlockInUse`` naming the
        deployments (``flow/name``) whose ``blocks`` list it (nothing removed), those
        written concurrently included (see :meth:`upsert_deployment`)."""

    # -- events ------------------------------------------------------------------------
    #: Each event expires this long after it occurred (``None``: kept for good); set from
    #: settings by :func:`service.store.open_store`.
    event_retention: timedelta | None = timedelta(days=30)

    @abstractmethod
    def append_events(self, events: Sequence[Event]) -> None:
        """Store events, each expiring :attr:`event_retention` after it occurred. An
        event whose id is stored already is stored once (appending is idempotent)."""

    @abstractmethod
    def list_events(self, flt: EventFilter, limit: int, cursor: str | None = None) -> EventPage:
        """Events passing ``flt`` (see :func:`service.event_records.matches`), newest
        first by ``(occurred, id)``; ``cursor`` continues a page, ``next_cursor`` is
        ``None`` on the last one. Events expired by :meth:`expire_events` are never
        listed. Cost follows the events read, never the whole table: served by an index
        on time (and on the resource id when ``flt.resource`` has no ``*``).

        Raises ``InvalidInput('cursor', …)`` for a cursor this store did not issue.
        """

    @abstractmethod
    def expire_events(self, now: datetime) -> int:
        """Forget every event expired at ``now``: none is listed afterwards. Returns how
        many were deleted here (a database that deletes them itself by a TTL attribute
        may return 0 and delete them later)."""

    # -- webhooks ----------------------------------------------------------------------
    @abstractmethod
    def create_webhook(self, hook: Webhook) -> Webhook:
        """Store ``hook`` (its secret too). Raises ``AlreadyExists`` if the name is taken."""

    @abstractmethod
    def get_webhook(self, slug: str) -> Webhook:
        """The webhook with this slug (secret included). Raises ``WebhookNotFound``."""

    @abstractmethod
    def list_webhooks(self) -> list[Webhook]:
        """Every webhook, by name."""

    @abstractmethod
    def delete_webhook(self, name: str) -> None:
        """Raises ``WebhookNotFound``; afterwards its slug finds nothing."""

    # -- automations (service.automations) ----------------------------------------------
    @abstractmethod
    def create_automation(self, automation: Automation) -> Automation:
        """Store ``automation``. Raises ``AlreadyExists`` if its name is taken."""

    @abstractmethod
    def get_automation(self, name: str) -> Automation:
        """Raises ``AutomationNotFound``."""

    @abstractmethod
    def list_automations(self) -> list[Automation]:
        """Every automation, by name (paused ones too)."""

    @abstractmethod
    def set_automation_paused(self, name: str, paused: bool, now: datetime) -> Automation:
        """Pause or resume; ``updated_at`` becomes ``now``. Raises ``AutomationNotFound``."""

    @abstractmethod
    def delete_automation(self, name: str) -> None:
        """Raises ``AutomationNotFound``. Jobs of its earlier firings stay queued."""

    @abstractmethod
    def fire_automation(self, key: str, jobs: Sequence[ActionJob], now: datetime) -> bool:
        """Record the firing ``key`` (an automation id and trigger instance) and queue
        ``jobs``, atomically, unless ``key`` was recorded before: then nothing is written
        and ``False`` is returned. Of any number of concurrent calls with one key (across
        processes) exactly one returns ``True``."""

    @abstractmethod
    def due_action_jobs(self, now: datetime, limit: int) -> list[ActionJob]:
        """Up to ``limit`` queued jobs with ``due_at <= now``, earliest first. Cost follows
        the jobs due (an index on ``due_at``), never the jobs queued."""

    @abstractmethod
    def claim_action_job(self, job: ActionJob, due_at: datetime) -> bool:
        """Begin a try of ``job``: ``attempts`` + 1 and ``due_at`` (the retry time) set,
        conditional on the stored job still having ``job.attempts``. ``False`` if another
        worker claimed it first (or it is gone)."""

    @abstractmethod
    def delete_action_job(self, job_id: str) -> None:
        """Remove a finished job (absent: nothing happens)."""

    @abstractmethod
    def purge_automation_firings(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` firing keys recorded before ``before`` (oldest first);
        returns how many were deleted here. Cost follows the keys deleted (an index on
        the firing time). A database that expires them itself by a TTL attribute may
        return 0 and delete them later."""

    # -- proactive triggers' due index ---------------------------------------------------
    @abstractmethod
    def arm_automation(self, automation_id: str, instance: str, due_at: datetime) -> bool:
        """Set when the expected event of ``(automation_id, instance)`` must arrive by,
        unless a due time is set already; returns whether this call set it. Of concurrent
        calls for one instance exactly one returns ``True``."""

    @abstractmethod
    def move_automation_due(
        self, automation_id: str, instance: str, was: datetime | None, due_at: datetime | None
    ) -> bool:
        """Compare and set the instance's due time: set it to ``due_at`` (``None``:
        disarm, remove the entry) if its current due time equals ``was`` (``None``: not
        armed); returns whether it did. Of concurrent calls with one ``was`` at most one
        returns ``True``."""

    @abstractmethod
    def automation_due(self, automation_id: str, instance: str) -> datetime | None:
        """The instance's due time, ``None`` when it is not armed."""

    @abstractmethod
    def due_automations(self, now: datetime, limit: int) -> list[DueInstance]:
        """Up to ``limit`` armed instances with ``due_at <= now``, earliest first. Cost
        follows the instances due (one indexed query), never the instances armed."""


def deployments_using(deployments: Iterable[Deployment], ref: str) -> list[str]:
    """``flow/name`` of each deployment whose ``blocks`` list ``ref``, sorted."""
    return sorted(f"{d.flow_name}/{d.name}" for d in deployments if ref in d.blocks)


def sort_task_runs(task_runs: Iterable[TaskRun]) -> list[TaskRun]:
    """Task runs oldest first (no ``created``: first of all), ties by id."""
    floor = datetime.min.replace(tzinfo=UTC)
    return sorted(task_runs, key=lambda tr: (tr.created or floor, tr.id))


def cache_record_valid(record: CacheRecord, now: datetime) -> bool:
    """Whether ``record`` may still be used at ``now``."""
    return record.expires_at is None or now < record.expires_at
