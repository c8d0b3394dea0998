"""Recording events: the one function every part of the service calls, and the resources
the service's own events are about.

:func:`record` is the single entry point (flow-run state changes, deployments, pools,
blocks, automations, …). Its signature is stable: other features depend on it. Recording
never undoes or fails the change it reports: the change is already committed, so a store
error while writing the event is logged and the event is lost (an event stream is a
record of what happened, not the source of truth).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, Field

from service.errors import InvalidInput
from service.event_records import MAX_RELATED, Event, EventName, Resource, new_event
from service.models import BoundedDict, Strict

if TYPE_CHECKING:
    from service.models import Deployment, FlowRun
    from service.services import Services
    from service.store.base import Store

log = logging.getLogger("pushpool.events")

#: Names under this prefix are the service's own: nobody else may emit them (an
#: automation that reacts to ``pushpool.flow-run.Failed`` must not be fooled).
RESERVED = "pushpool."
#: How far ahead of the server's clock an emitted event's time may be.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: Event name prefixes of the service's own events.
FLOW_RUN = "pushpool.flow-run"
DEPLOYMENT = "pushpool.deployment"
WORK_POOL = "pushpool.work-pool"


def record(
    store: Store,
    name: str,
    resource: Resource,
    *,
    now: datetime,
    related: Sequence[Resource] = (),
    payload: Mapping[str, object] | None = None,
) -> Event:
    """Record that ``name`` happened to ``resource`` at ``now`` and return the event.

    Raises ``ValueError`` (pydantic's ``ValidationError``) for a malformed name, resource
    or payload — a caller's bug. A store failure is logged, never raised: the event is
    then lost and the caller's own change stands."""
    event = new_event(name, resource, occurred=now, related=related, payload=payload)
    append(store, [event])
    return event


def append(store: Store, events: Sequence[Event]) -> None:
    """Store ready-made events (a batch), logging rather than raising a store failure."""
    if not events:
        return
    try:
        store.append_events(events)
    except Exception:  # an event must never fail the change it records
        log.exception("could not record %d event(s), first %r", len(events), events[0].name)
        return
    react(store, events)


def react(store: Store, events: Sequence[Event]) -> None:
    """Evaluate automations against just-recorded events (never raises)."""
    from service import automations

    automations.react(store, events)


def _set(labels: dict[str, str]) -> dict[str, str]:
    """The labels that have a value, each made a valid label value (no NUL, at most
    1,000 characters: a run's tags, joined, may be longer), so recording never fails."""
    cleaned = {k: v.replace("\x00", "")[:1000] for k, v in labels.items()}
    return {k: v for k, v in cleaned.items() if v}


def run_resource(run: FlowRun) -> Resource:
    """``pushpool.flow-run.<id>`` with its flow, deployment, pool, tags and state labels."""
    labels = {
        "name": run.name or "",
        "flow": run.flow_name,
        "deployment": run.deployment_name or "",
        "deployment-id": run.deployment_id or "",
        "pool": run.work_pool,
        "tags": ",".join(run.tags),
        "state": run.state.name,
        "state-type": run.state.type.value,
    }
    return Resource(id=f"{FLOW_RUN}.{run.id}", labels=_set(labels))


def run_related(run: FlowRun) -> list[Resource]:
    """The deployment and pool a run belongs to, as related resources."""
    out = [Resource(id=f"{WORK_POOL}.{run.work_pool}", labels={"name": run.work_pool})]
    if run.deployment_id:
        labels = {"name": run.deployment_name or "", "flow": run.flow_name}
        out.insert(0, Resource(id=f"{DEPLOYMENT}.{run.deployment_id}", labels=labels))
    return out


def run_state_event(run: FlowRun) -> Event:
    """``pushpool.flow-run.<State name>`` for the state ``run`` is in now."""
    state = run.state
    return new_event(
        f"{FLOW_RUN}.{state.name}",
        run_resource(run),
        occurred=state.timestamp,
        related=run_related(run),
        payload={
            "state": {"type": state.type.value, "name": state.name, "message": state.message},
            "run_count": run.run_count,
        },
    )


def deployment_resource(deployment: Deployment) -> Resource:
    """``pushpool.deployment.<id>`` with its name, flow, pool and tags."""
    labels = {
        "name": deployment.name,
        "flow": deployment.flow_name,
        "pool": deployment.work_pool,
        "tags": ",".join(deployment.tags),
    }
    return Resource(id=f"{DEPLOYMENT}.{deployment.id}", labels=_set(labels))


def pool_resource(name: str, pool_type: str | None = None) -> Resource:
    """``pushpool.work-pool.<name>``."""
    labels = {"name": name} | ({"type": pool_type} if pool_type else {})
    return Resource(id=f"{WORK_POOL}.{name}", labels=labels)


def change_names(prefix: str, before_paused: bool | None, after_paused: bool | None) -> list[str]:
    """The events of a change to a deployment or pool: ``created`` (no ``before``),
    ``deleted`` (no ``after``), else ``updated`` and, if that flipped it, ``paused`` or
    ``resumed``."""
    if before_paused is None:
        return [f"{prefix}.created"]
    if after_paused is None:
        return [f"{prefix}.deleted"]
    names = [f"{prefix}.updated"]
    if before_paused != after_paused:
        names.append(f"{prefix}.{'paused' if after_paused else 'resumed'}")
    return names


def record_change(
    store: Store,
    prefix: str,
    resource: Resource,
    *,
    now: datetime,
    before_paused: bool | None,
    after_paused: bool | None,
) -> None:
    """Record :func:`change_names` of one deployment or pool change, in one write."""
    names = change_names(prefix, before_paused, after_paused)
    append(store, [new_event(name, resource, occurred=now) for name in names])


class EventIn(Strict):
    """An event emitted by a user (``POST /api/events``) or by flow code (the runner
    route; there ``resource`` defaults to the flow run)."""

    name: EventName = Field(description="Not starting with 'pushpool.' (the service's own)")
    resource: Resource | None = None
    related: list[Resource] = Field(default_factory=list, max_length=MAX_RELATED - 2)
    payload: BoundedDict = Field(default_factory=dict)
    occurred: AwareDatetime | None = Field(
        default=None, description="When it happened (default: now); not in the future"
    )


def emit(svc: Services, body: EventIn, *, run: FlowRun | None = None) -> Event:
    """Store an emitted event and return it. From flow code (``run``) the resource
    defaults to the run, and the run (with its deployment and pool) is always related.

    Raises ``InvalidInput`` for a reserved name, a missing resource (without ``run``) or
    a time in the future; a store failure is raised (the caller asked for this write).
    """
    now = svc.clock()
    if body.name.startswith(RESERVED):
        raise InvalidInput("name", f"names starting with {RESERVED!r} are the service's own")
    if body.occurred is not None and body.occurred > now + MAX_CLOCK_SKEW:
        raise InvalidInput("occurred", "is in the future")
    related = list(body.related)
    resource = body.resource
    if run is not None:
        own = run_resource(run)
        related += run_related(run) if resource is None else [own, *run_related(run)]
        resource = resource or own
    if resource is None:
        raise InvalidInput("resource", "is required")
    event = new_event(
        body.name, resource, occurred=body.occurred or now, related=related, payload=body.payload
    )
    svc.store.append_events([event])
    react(svc.store, [event])
    return event
