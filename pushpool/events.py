"""``emit_event``: flow code tells the control plane that something happened.

Inside a run the event goes through the run's credentials (the runner's client, the
same one that reports task runs) to ``POST /api/runner/flow-runs/{id}/events``; the
service makes the run a related resource, and the resource defaults to the run itself.
Outside a run (plain ``python my_flow.py``) events are kept by the local reporter
(``LocalReporter.events``) so a test can look at them.

Emitting never fails the flow: an event the service refuses or cannot take is logged
and ``None`` is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pushpool.context import get_environment, local_environment

logger = logging.getLogger("pushpool.events")

Resource = str | Mapping[str, Any]


def _resource(value: Resource) -> dict[str, Any]:
    """``"shop.order.42"`` or ``{"id": "shop.order.42", "labels": {...}}``."""
    if isinstance(value, str):
        return {"id": value, "labels": {}}
    return {"id": value["id"], "labels": dict(value.get("labels") or {})}


def emit_event(
    name: str,
    resource: Resource | None = None,
    payload: Mapping[str, Any] | None = None,
    related: Sequence[Resource] = (),
) -> dict[str, Any] | None:
    """Emit the event ``name`` about ``resource`` (default: this flow run) with a JSON
    ``payload``; returns the stored event, or ``None`` if it could not be emitted.

    Names starting with ``pushpool.`` are the service's own and are refused."""
    event: dict[str, Any] = {
        "name": name,
        "payload": dict(payload or {}),
        "related": [_resource(r) for r in related],
    }
    if resource is not None:
        event["resource"] = _resource(resource)
    env = get_environment() or local_environment()
    send = getattr(env.reporter, "emit_event", None)
    if send is None:
        logger.warning("event %r not emitted: this run's reporter cannot send events", name)
        return None
    try:
        stored: dict[str, Any] | None = send(event)
    except Exception as exc:  # the transport's errors: never fail the flow
        logger.warning("could not emit event %r: %s", name, exc)
        return None
    return stored
