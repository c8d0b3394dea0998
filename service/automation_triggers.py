"""Proactive and compound triggers: evaluating them as events are recorded, and the
tick's pass over proactive deadlines.

**Proactive** (:class:`ProactiveTrigger`). Each instance (the automation and its
``for_each`` label value, ``""`` without ``for_each``) has at most one deadline in the
store's due index (:meth:`Store.arm_automation` and friends): the time by which the
expected event must arrive. Recording events keeps the index current — without
``after``, an expected event moves the deadline to ``within`` after it (the automation's
creation arms the first one); with ``after``, an ``after`` event sets a deadline unless one
is set, and an expected event clears it. :func:`fire_due`, called by the tick, reads only
the instances past their deadline (one indexed query: cost O(instances due), never
O(events) nor O(automations)), fires each once with the key
``<automation id>:missed:<instance>:<deadline>`` and moves the deadline on (one more
``within`` without ``after``; cleared with ``after``). Every move is a compare-and-set on
the deadline read, so concurrent ticks and events fire once and never lose a move.

**Compound** (:class:`CompoundTrigger`). An event matching one of its parts checks,
for the fixed window of ``within`` seconds the event falls in, how many parts were met
(a part with ``threshold`` 1 that the event matches is met by it; any other part reads up
to ``threshold`` of its events of that window); when ``require`` are, the automation fires
with the key ``<automation id>:compound:<window start>``: once per window.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from service.automation_records import Automation, CompoundTrigger, DueInstance, ProactiveTrigger
from service.automations import (
    AUTOMATION,
    automation_resource,
    cached,
    fire,
)
from service.event_records import Event, EventFilter, matches, new_event

if TYPE_CHECKING:
    from service.store.base import Store

log = logging.getLogger("pushpool.automations")

#: Recorded when a proactive trigger's expected event did not arrive in time.
MISSED = f"{AUTOMATION}.missed"
#: The longest ``for_each`` value kept as it is in the due index.
MAX_INSTANCE = 200
#: Compare-and-set attempts when events race for one instance's deadline.
_MOVE_TRIES = 5


def evaluate(store: Store, automation: Automation, event: Event) -> bool:
    """Evaluate a proactive or compound ``automation`` for a just-recorded ``event``;
    returns whether this call fired it (a proactive trigger never fires here)."""
    trigger = automation.trigger
    if isinstance(trigger, ProactiveTrigger):
        observe(store, automation.id, trigger, event)
        return False
    if isinstance(trigger, CompoundTrigger):
        return evaluate_compound(store, automation, trigger, event)
    return False


# -- proactive ---------------------------------------------------------------------------
def _matches(trigger: ProactiveTrigger, pattern: str | None, event: Event) -> bool:
    if pattern is None:
        return False
    flt = EventFilter(names=(pattern,), resource=trigger.resource, labels=trigger.labels)
    return matches(flt, event)


def arm_on_creation(store: Store, automation: Automation) -> None:
    """Arm the single instance of a new proactive automation that has neither ``after``
    nor ``for_each``: its expected event is due ``within`` after the creation."""
    t = automation.trigger
    if isinstance(t, ProactiveTrigger) and t.after is None and t.for_each is None:
        store.arm_automation(automation.id, "", automation.created_at + _within(t))


def _within(trigger: ProactiveTrigger) -> timedelta:
    return timedelta(seconds=trigger.within)


def observe(store: Store, automation_id: str, trigger: ProactiveTrigger, event: Event) -> None:
    """Arm, move or clear the deadline of ``event``'s instance of ``trigger``."""
    instance = ""
    if trigger.for_each is not None:
        instance = instance_key(event.resource.labels.get(trigger.for_each, ""))
        if not instance:
            return
    if _matches(trigger, trigger.expect, event):
        target = None if trigger.after else event.occurred + _within(trigger)
        _move(store, automation_id, instance, target)
    elif _matches(trigger, trigger.after, event):
        store.arm_automation(automation_id, instance, event.occurred + _within(trigger))


def instance_key(value: str) -> str:
    """The due index's key for a ``for_each`` label value: the value itself, or for one
    longer than :data:`MAX_INSTANCE` characters ``sha256:<hex>`` of it (store keys are
    bounded; the missed event then names the digest)."""
    if len(value) <= MAX_INSTANCE:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _move(store: Store, automation_id: str, instance: str, target: datetime | None) -> None:
    """Set the instance's deadline to ``target`` (``None``: clear it), never moving it
    earlier (an event recorded late must not shorten a deadline a newer one set)."""
    for _ in range(_MOVE_TRIES):
        was = store.automation_due(automation_id, instance)
        if was is None and target is None:
            return
        if was is not None and target is not None and was >= target:
            return
        if store.move_automation_due(automation_id, instance, was, target):
            return
    log.warning("deadline of %s/%r kept changing; left as it is", automation_id, instance)


def missed_event(automation: Automation, due: DueInstance) -> Event:
    """``pushpool.automation.missed``: the expected event did not arrive by ``due``."""
    trigger = automation.trigger
    assert isinstance(trigger, ProactiveTrigger)
    resource = automation_resource(automation.name)
    if trigger.for_each is not None:
        labels = resource.labels | {trigger.for_each: due.instance}
        resource = resource.model_copy(update={"labels": labels})
    return new_event(
        MISSED,
        resource,
        occurred=due.due_at,
        payload={
            "expect": trigger.expect,
            "after": trigger.after,
            "within": trigger.within,
            "due_at": due.due_at.isoformat(),
            "instance": due.instance,
        },
    )


def next_deadline(trigger: ProactiveTrigger, due_at: datetime, now: datetime) -> datetime | None:
    """Where a deadline moves once it passed: cleared with ``after``; else the first
    window end after ``now`` (a tick that was down fires once, not once per window)."""
    if trigger.after is not None:
        return None
    step = _within(trigger)
    missed = (now - due_at) // step + 1
    return due_at + step * missed


def fire_due(store: Store, now: datetime, limit: int = 100) -> int:
    """Fire every proactive instance whose deadline passed by ``now`` (up to ``limit``)
    and move its deadline on; returns the firings made here. An instance of a deleted
    automation is cleared; a paused automation's deadline moves on without firing."""
    due = store.due_automations(now, limit)
    if not due:
        return 0
    by_id = cached(store).by_id
    fired = 0
    for d in due:
        automation = by_id.get(d.automation_id) or _fresh(store, d.automation_id)
        trigger = automation.trigger if automation else None
        if automation is None or not isinstance(trigger, ProactiveTrigger):
            store.move_automation_due(d.automation_id, d.instance, d.due_at, None)
            continue
        if not automation.paused:
            key = f"{automation.id}:missed:{d.instance}:{int(d.due_at.timestamp())}"
            fired += fire(store, automation, missed_event(automation, d), key, new=True)
        store.move_automation_due(
            d.automation_id, d.instance, d.due_at, next_deadline(trigger, d.due_at, now)
        )
    return fired


def _fresh(store: Store, automation_id: str) -> Automation | None:
    """The automation by id read past the cache (one created in another process within
    the cache's lifetime), or ``None`` if it was deleted."""
    from service.automations import invalidate

    invalidate(store)
    return cached(store).by_id.get(automation_id)


# -- compound ----------------------------------------------------------------------------
def evaluate_compound(
    store: Store, automation: Automation, trigger: CompoundTrigger, event: Event
) -> bool:
    """Fire ``automation`` if ``event`` matches a part and, in the window it falls in,
    ``require`` parts were met; once per window."""
    hit = [
        matches(EventFilter(names=(p.event,), resource=p.resource, labels=p.labels), event)
        for p in trigger.triggers
    ]
    if not any(hit):
        return False
    epoch = int(event.occurred.timestamp())
    start = epoch - epoch % trigger.within
    begin = datetime.fromtimestamp(start, event.occurred.tzinfo)
    end = begin + timedelta(seconds=trigger.within)
    needed, met = trigger.needed(), 0
    for part, matched in zip(trigger.triggers, hit, strict=True):
        if matched and part.threshold == 1:
            met += 1
        else:
            flt = EventFilter(
                names=(part.event,),
                resource=part.resource,
                labels=part.labels,
                since=begin,
                until=end,
            )
            met += len(store.list_events(flt, part.threshold).items) >= part.threshold
        if met >= needed:
            return fire(store, automation, event, f"{automation.id}:compound:{start}")
    return False
