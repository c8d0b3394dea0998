"""What a container group says about its run: state, the container's exit code, reasons.

Read from the group's instance view (``GET``; ARM's list leaves instance views out):
provisioning ``Failed`` (bad image, a quota, the 30-minute timeout) and a terminated
container are ``EXITED`` with ARM's own words; a group ARM does not know is ``MISSING``.
"""

from __future__ import annotations

from typing import Any

from provisioners.aci.names import CONTAINER
from provisioners.base import InfraState, InfraStatus

#: Provisioning states that are still on their way.
_PROVISIONING = frozenset({"Pending", "Creating", "Accepted", "Updating", "Repairing"})
MAX_EVENTS = 3


def container(group: Any) -> Any | None:
    return next((c for c in group.containers or [] if c.name == CONTAINER), None)


def _events(view: Any) -> list[str]:
    """The latest warning events' messages (all events if there is no warning)."""
    events = list(getattr(view, "events", None) or [])
    warnings = [e for e in events if (e.type or "").lower() == "warning"] or events
    return [f"{e.name}: {e.message}" if e.name else str(e.message) for e in warnings][-MAX_EVENTS:]


def _reason(head: str, group: Any, flow: Any | None) -> str:
    view = getattr(flow, "instance_view", None)
    parts = [head, *_events(group.instance_view), *_events(view)]
    return "; ".join(dict.fromkeys(p for p in parts if p))


def group_status(group: Any | None, resource_id: str) -> InfraStatus:
    if group is None:
        return InfraStatus(InfraState.MISSING, reason=f"ARM does not know {resource_id}")
    flow = container(group)
    current = getattr(getattr(flow, "instance_view", None), "current_state", None)
    state = getattr(current, "state", None)
    exit_code = getattr(current, "exit_code", None)
    if group.provisioning_state == "Failed":
        head = "ACI could not start the container group (provisioning Failed)"
        return InfraStatus(InfraState.EXITED, exit_code, _reason(head, group, flow))
    if state == "Terminated" or getattr(group.instance_view, "state", None) == "Stopped":
        detail = getattr(current, "detail_status", None) or "Terminated"
        head = f"container {CONTAINER} terminated ({detail})"
        if exit_code is not None:
            head += f" with exit code {exit_code}"
        return InfraStatus(InfraState.EXITED, exit_code, _reason(head, group, flow))
    if state == "Running":
        return InfraStatus(InfraState.RUNNING)
    return InfraStatus(InfraState.PENDING)


def listed_status(group: Any) -> InfraStatus | None:
    """The status a list entry (no instance view) settles, or ``None`` if a GET must."""
    if group.provisioning_state in _PROVISIONING:
        return InfraStatus(InfraState.PENDING)
    return None
