"""The flow-run state vocabulary: the names the store, the models and the engine share.

It sits below everything (it imports nothing from ``service``), so the store can speak
of states without importing the engine. Which transitions are legal is not vocabulary:
:mod:`service.states` owns those rules (and re-exports these names).
"""

from __future__ import annotations

from enum import StrEnum


class StateType(StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"


#: Final states: a run in one of them is done (unless a retry re-schedules it).
TERMINAL: frozenset[StateType] = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)
#: States in which a run holds (or is about to hold) infrastructure: they count
#: against pool and deployment concurrency limits.
ACTIVE: frozenset[StateType] = frozenset(
    {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING}
)
