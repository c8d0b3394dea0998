"""The flow-run state machine: the one place that says which transitions are legal.

Every writer of a run's state (API, runner endpoints, dispatcher, reconciler) asks
:func:`check_transition` before it writes; the store then applies the change with a
compare-and-set on the state it read, so two writers can never both win.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from service.errors import DeploymentNotFound, IllegalTransition

# The vocabulary lives with the models; re-exported here for the engine's callers.
from service.vocabulary import ACTIVE, TERMINAL, StateType

__all__ = [
    "ACTIVE",
    "AWAITING_CAPACITY",
    "AWAITING_RETRY",
    "DEFAULT_NAMES",
    "SKIPPED",
    "TERMINAL",
    "StateType",
    "check_transition",
    "is_terminal",
    "requeue_for_capacity",
    "set_state",
]

if TYPE_CHECKING:
    from service.models import FlowRun, StateRecord
    from service.store.base import Store, TransitionEffects


S = StateType
_ALLOWED: dict[StateType, frozenset[StateType]] = {
    S.SCHEDULED: frozenset({S.PENDING, S.CANCELLED, S.SCHEDULED}),
    # PENDING -> SCHEDULED only as a requeue: the platform had no capacity for the run.
    S.PENDING: frozenset({S.RUNNING, S.CANCELLING, S.CANCELLED, S.CRASHED, S.FAILED, S.SCHEDULED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLING, S.CANCELLED, S.CRASHED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.COMPLETED, S.FAILED, S.CRASHED}),
    # A failed or crashed run may go back to SCHEDULED, but only as a retry.
    S.FAILED: frozenset({S.SCHEDULED}),
    S.CRASHED: frozenset({S.SCHEDULED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: Default display names; a state may carry another (``AwaitingRetry``, ``Skipped``).
DEFAULT_NAMES: dict[StateType, str] = {s: s.value.capitalize() for s in StateType}
AWAITING_RETRY = "AwaitingRetry"
AWAITING_CAPACITY = "AwaitingCapacity"
SKIPPED = "Skipped"


def is_terminal(state: StateType) -> bool:
    return state in TERMINAL


def check_transition(
    run_id: str,
    current: StateType,
    target: StateType,
    *,
    retry: bool = False,
    requeue: bool = False,
) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is allowed.

    ``FAILED|CRASHED -> SCHEDULED`` is legal only for a retry (``retry=True``);
    ``PENDING -> SCHEDULED`` only for a requeue (``requeue=True``).
    """
    allowed = target in _ALLOWED[current]
    if allowed and current in (S.FAILED, S.CRASHED) and not retry:
        allowed = False
    if allowed and current == S.PENDING and target == S.SCHEDULED and not requeue:
        allowed = False
    if not allowed:
        raise IllegalTransition(run_id, current.value, target.value)


def slot_holder_prefix(run_id: str) -> str:
    """Every tag-concurrency lease a task run of ``run_id`` holds is held under a holder
    name starting so (``<run id>:<task run's holder>``)."""
    return f"{run_id}:"


def set_state(
    store: Store,
    run_id: str,
    target: StateType,
    *,
    now: datetime,
    name: str | None = None,
    message: str | None = None,
    expected: StateType | None = None,
    fields: dict[str, Any] | None = None,
) -> FlowRun:
    """Move a run to ``target``: the one path every writer of run states takes.

    Checks legality against the current state, then compare-and-sets it, so a
    concurrent change makes this raise :class:`IllegalTransition` (with ``expected``)
    or re-check against the new state (without). A terminal state queues the attempt's
    infrastructure for teardown, revokes the run token and drops the tag-concurrency
    leases its task runs held (a crashed runner's slots are free at once, not when the
    leases expire); ``FAILED``/``CRASHED`` with retries left then moves on to
    ``SCHEDULED`` (``AwaitingRetry``) after the delay.
    """
    from service.models import StateRecord
    from service.store.base import TransitionEffects

    for _ in range(5):
        run = store.get_run(run_id)
        current = run.state.type
        if expected is not None and current != expected:
            raise IllegalTransition(run_id, current.value, target.value)
        check_transition(run_id, current, target)
        effects = TransitionEffects(fields=dict(fields or {}))
        if target in TERMINAL:
            effects.teardown = effects.revoke_token = True
            effects.fields.setdefault("end_time", now)
        elif target == S.RUNNING:
            effects.fields.setdefault("start_time", now)
            effects.fields.setdefault("heartbeat_at", now)
        state = StateRecord(
            type=target, name=name or DEFAULT_NAMES[target], message=message, timestamp=now
        )
        try:
            run = _transition(store, run_id, current, state, effects)
        except IllegalTransition:
            if expected is not None:
                raise
            continue
        if target in TERMINAL:  # however the attempt ended, its task runs hold no slots
            store.release_holder_slots(slot_holder_prefix(run_id))
        if target in (S.FAILED, S.CRASHED):
            run = _maybe_retry(store, run, now)
        return run
    raise IllegalTransition(run_id, store.get_run(run_id).state.type.value, target.value)


def _maybe_retry(store: Store, run: FlowRun, now: datetime) -> FlowRun:
    if run.deployment_id is None:
        return run
    try:
        deployment = store.get_deployment(run.deployment_id)
    except DeploymentNotFound:
        return run
    if run.run_count > deployment.retries:
        return run
    from service.models import StateRecord
    from service.store.base import TransitionEffects

    check_transition(run.id, run.state.type, S.SCHEDULED, retry=True)
    delay = deployment.retry_delay_seconds
    state = StateRecord(
        type=S.SCHEDULED,
        name=AWAITING_RETRY,
        message=f"retry {run.run_count} of {deployment.retries} in {delay}s",
        timestamp=now,
    )
    effects = TransitionEffects(
        fields={"expected_start": now + timedelta(seconds=delay), "end_time": None}
    )
    try:
        return _transition(store, run.id, run.state.type, state, effects)
    except IllegalTransition:
        return store.get_run(run.id)


def requeue_for_capacity(
    store: Store, run: FlowRun, *, now: datetime, reason: str, retry_after_seconds: float
) -> FlowRun:
    """Give back a claimed run the platform had no room for: ``PENDING -> SCHEDULED``.

    The state is named ``AwaitingCapacity`` with the platform's reason; the attempt the
    claim counted is given back (``run_count - 1``), the claim's token is revoked, and the
    run is due again after ``retry_after_seconds``. Nothing was started, so nothing is torn
    down. Raises :class:`IllegalTransition` if the run left ``PENDING`` meanwhile.
    """
    from service.models import StateRecord
    from service.store.base import TransitionEffects

    check_transition(run.id, S.PENDING, S.SCHEDULED, requeue=True)
    state = StateRecord(type=S.SCHEDULED, name=AWAITING_CAPACITY, message=reason, timestamp=now)
    effects = TransitionEffects(
        fields={
            "expected_start": now + timedelta(seconds=retry_after_seconds),
            "run_count": max(0, run.run_count - 1),
            "infra": None,
        },
        revoke_token=True,
    )
    return _transition(store, run.id, S.PENDING, state, effects)


def _transition(
    store: Store, run_id: str, expected: StateType, state: StateRecord, effects: TransitionEffects
) -> FlowRun:
    """``store.transition``, then the ``pushpool.flow-run.<State>`` event of the change."""
    from service import events

    run = store.transition(run_id, expected, state, effects)
    events.append(store, [events.run_state_event(run)])
    return run
