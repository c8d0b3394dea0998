"""Microsoft.ContainerInstance as ARM serves it: container groups, stop, logs, operations."""

from __future__ import annotations

import copy
import re
from typing import Any

from azure.mgmt.containerinstance import models as aci

from emulators.azure.state import Azure, Group
from emulators.azure.validate import check

GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
NAME_RULE = re.compile(r"^(?=.{1,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
RESTART_POLICIES = {"Always", "OnFailure", "Never"}
OS_TYPES = {"Linux", "Windows"}
Answer = tuple[int, Any, dict[str, str]]


def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Answer:
    return status, {"error": {"code": code, "message": message}}, headers or {}


def _group_state(g: Group) -> str:
    if g.provisioning == "Failed":
        return "Failed"
    if g.stopped:
        return "Stopped"
    if g.container == "Terminated":
        return "Succeeded" if g.exit_code == 0 else "Failed"
    return "Running" if g.container == "Running" else "Pending"


def render(gid: str, g: Group, *, view: bool) -> dict[str, Any]:
    """The group as ARM returns it: no secure values; instance views only on GET."""
    out = copy.deepcopy(g.body)
    props = out["properties"]
    for c in props["containers"]:
        for var in c["properties"].get("environmentVariables", []):
            var.pop("secureValue", None)
        if view:
            current: dict[str, Any] = {"state": g.container}
            if g.container == "Terminated":
                current |= {"exitCode": g.exit_code, "detailStatus": g.detail or ""}
            c["properties"]["instanceView"] = {
                "restartCount": 0,
                "currentState": current,
                "events": [],
            }
    props["provisioningState"] = g.provisioning
    if view:
        props["instanceView"] = {"state": _group_state(g), "events": g.events}
    identity = out.get("identity")
    if identity:
        for entry in (identity.get("userAssignedIdentities") or {}).values():
            entry |= {"principalId": "00000000-0000-0000-0000-0000000000aa", "clientId": "c"}
    name = gid.rsplit("/", 1)[-1]
    return out | {"id": gid, "name": name, "type": GROUP_TYPE}


def _invalid(body: Any, name: str) -> str | None:
    if not NAME_RULE.match(name):
        return f"container group name {name!r} is invalid"
    group, errors = check(aci.ContainerGroup, body)
    if errors:
        return "; ".join(errors)
    if group.restart_policy not in RESTART_POLICIES | {None}:
        return f"restartPolicy {group.restart_policy!r} is invalid"
    if group.os_type not in OS_TYPES:
        return f"osType {group.os_type!r} is invalid"
    if not group.location:
        return "location is required"
    return None


class ContainerInstance:
    def __init__(self, azure: Azure) -> None:
        self.azure = azure
        self._ops: dict[str, str] = {}

    def put(self, base: str, gid: str, rg_id: str, body: Any, headers: dict[str, str]) -> Answer:
        a, name = self.azure, gid.rsplit("/", 1)[-1]
        if rg_id.lower() not in a.resources:
            return arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg_id}' not found.")
        problem = _invalid(body, name)
        if problem:
            return arm_error(400, "InvalidRequestContent", problem)
        key = gid.lower()
        existing = a.groups.get(key)
        if existing is not None:
            if headers.get("if-none-match") == "*":
                return arm_error(412, "PreconditionFailed", f"{name} already exists")
            existing.body = body
            self._index(key)
            return 200, render(gid, existing, view=False), {}
        refused = self._quota()
        if refused is not None:
            return refused
        g = Group(body=body, created_at=a.clock(), id=gid)
        a.groups[key] = g
        a.create_times.append(g.created_at)
        a.on_create(name, g)
        self._index(key)
        op = a.new_operation()
        self._ops[op] = key
        location = body["location"]
        sub = gid.split("/")[2]
        url = (
            f"{base}/subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/"
            f"{location}/operations/{op}?api-version=2023-05-01"
        )
        return 201, render(gid, g, view=False), {"Azure-AsyncOperation": url}

    def _index(self, key: str) -> None:
        """ARM notifies Resource Graph of a write: the group is indexed again at once."""
        g = self.azure.groups[key]
        self.azure.graph[key] = render(g.id, g, view=True)

    def _quota(self) -> Answer | None:
        a, now = self.azure, self.azure.clock()
        if a.max_groups is not None and len(a.groups) >= a.max_groups:
            return arm_error(
                400,
                "ContainerGroupQuotaReached",
                f"Resource type 'Microsoft.ContainerInstance/containerGroups' container group "
                f"quota '{a.max_groups}' exceeded in region.",
            )
        if a.rate_limits is not None:
            per5, per_hour = a.rate_limits
            recent5 = [t for t in a.create_times if t > now - 300]
            recent_h = [t for t in a.create_times if t > now - 3600]
            if len(recent5) >= per5 or len(recent_h) >= per_hour:
                return arm_error(
                    429,
                    "ContainerGroupCreationRateLimitExceeded",
                    "Too many container group creates.",
                    {"Retry-After": "60"},
                )
        return None

    def get(self, gid: str) -> Answer:
        g = self.azure.groups.get(gid.lower())
        if g is None:
            return arm_error(
                404,
                "ResourceNotFound",
                f"The Resource '{GROUP_TYPE}/{gid.rsplit('/', 1)[-1]}' was not found.",
            )
        return 200, render(gid, g, view=True), {}

    def list(self, rg_id: str) -> Answer:
        if rg_id.lower() not in self.azure.resources:
            return arm_error(404, "ResourceGroupNotFound", f"Resource group '{rg_id}' not found.")
        prefix = rg_id.lower() + "/providers/microsoft.containerinstance/containergroups/"
        values = [
            render(g.id, g, view=False)
            for k, g in sorted(self.azure.groups.items())
            if k.startswith(prefix)
        ]
        return 200, {"value": values}, {}

    def delete(self, gid: str) -> Answer:
        g = self.azure.groups.pop(gid.lower(), None)
        self.azure.graph.pop(gid.lower(), None)  # ARM tells Resource Graph of deletes
        if g is None:
            return 204, None, {}
        self.azure.delete_times.append(self.azure.clock())
        return 200, render(gid, g, view=False), {}

    def stop(self, gid: str) -> Answer:
        g = self.azure.groups.get(gid.lower())
        if g is None:
            return self.get(gid)
        if g.container != "Terminated":
            g.container, g.detail, g.stopped = "Terminated", "Stopped", True
        g.stopped = True
        self._index(gid.lower())
        return 204, None, {}

    def logs(self, gid: str, tail: int | None) -> Answer:
        g = self.azure.groups.get(gid.lower())
        if g is None:
            return self.get(gid)
        lines = g.logs.splitlines(keepends=True)
        return 200, {"content": "".join(lines[-tail:] if tail else lines)}, {}

    def operation(self, op: str) -> Answer:
        key = self._ops.get(op)
        g = self.azure.groups.get(key) if key else None
        if g is None:
            return 200, {"id": op, "status": "Succeeded"}, {}
        status = {"Succeeded": "Succeeded", "Failed": "Failed"}.get(g.provisioning, "InProgress")
        answer: dict[str, Any] = {"id": op, "status": status}
        if status == "Failed":
            answer["error"] = {"code": "DeploymentFailed", "message": g.events[-1]["message"]}
        return 200, answer, {}
