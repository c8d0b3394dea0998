"""What a described ECS task means for a run: state, exit code, reason."""

from __future__ import annotations

from provisioners.base import InfraState, InfraStatus
from provisioners.ecs.aws import EcsContainer, EcsTask
from provisioners.ecs.taskdef import CONTAINER

#: ``lastStatus`` values before the container runs.
_STARTING = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})


def tag(task: EcsTask, key: str) -> str | None:
    return next((t["value"] for t in task.get("tags", []) if t.get("key") == key), None)


def flow_container(task: EcsTask) -> EcsContainer | None:
    return next((c for c in task.get("containers", []) if c.get("name") == CONTAINER), None)


def stop_reason(task: EcsTask) -> str:
    """``stopCode``, ``stoppedReason`` and the flow container's reason, for humans."""
    parts = []
    code, why = task.get("stopCode"), task.get("stoppedReason")
    head = "ECS task stopped" + (f" ({code})" if code else "")
    parts.append(f"{head}: {why}" if why else head)
    container = flow_container(task)
    if container is not None and container.get("reason"):
        parts.append(f"container {CONTAINER}: {container['reason']}")
    elif container is None:
        parts.append(f"container {CONTAINER} never started")
    return "; ".join(parts)


def task_status(task: EcsTask) -> InfraStatus:
    last = task.get("lastStatus", "")
    if last in _STARTING:
        return InfraStatus(InfraState.PENDING)
    if last != "STOPPED":
        # RUNNING, and DEACTIVATING/STOPPING/DEPROVISIONING: not gone until STOPPED.
        return InfraStatus(InfraState.RUNNING)
    container = flow_container(task)
    exit_code = container.get("exitCode") if container is not None else None
    return InfraStatus(InfraState.EXITED, exit_code=exit_code, reason=stop_reason(task))


def is_stopped(task: EcsTask) -> bool:
    """Stopped, or on its way: nothing more for ``StopTask`` to do."""
    return task.get("lastStatus") == "STOPPED" or task.get("desiredStatus") == "STOPPED"
