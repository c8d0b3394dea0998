"""Container-group operations over :class:`~provisioners.aci.arm.ArmClient`, one ARM call each.

Create returns once ARM has accepted the PUT (``polling=False``): provisioning goes on in
ACI and is read back by status. The PUT carries ``If-None-Match: *`` so that, where ARM
honours it, a second create of the same name never replaces the first group.
"""

from __future__ import annotations

from typing import Any

from provisioners.aci.arm import ArmClient
from provisioners.aci.names import CONTAINER


def group_id(subscription_id: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.ContainerInstance/containerGroups/{name}"
    )


def resource_group_id(subscription_id: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


class ContainerGroups:
    """The container groups of one resource group."""

    def __init__(self, arm: ArmClient, resource_group: str) -> None:
        self.arm, self.resource_group = arm, resource_group

    @property
    def _ops(self) -> Any:
        return self.arm.client("containers").container_groups

    def id(self, name: str) -> str:
        return group_id(self.arm.subscription_id, self.resource_group, name)

    def get(self, name: str) -> Any | None:
        """The group with its instance view, or ``None`` if ARM does not know it."""
        return self.arm.maybe(
            "containerGroups/read", lambda: self._ops.get(self.resource_group, name)
        )

    def create(self, name: str, body: Any) -> Any:
        """PUT the group; return ARM's first answer without waiting for provisioning."""

        def put() -> Any:
            poller = self._ops.begin_create_or_update(
                self.resource_group, name, body, polling=False, headers={"If-None-Match": "*"}
            )
            return poller.result()

        return self.arm.call("containerGroups/write", put)

    def list(self) -> list[Any]:
        """Every group of the resource group (without instance views: ARM omits them)."""
        return self.arm.call(
            "containerGroups/read (list)",
            lambda: list(self._ops.list_by_resource_group(self.resource_group)),
        )

    def stop(self, name: str) -> bool:
        """Stop every container of the group (billing ends); ``False`` if it is gone."""
        done = self.arm.maybe(
            "containerGroups/stop/action",
            lambda: self._ops.stop(self.resource_group, name) or True,
        )
        return done is not None

    def delete(self, name: str) -> bool:
        """Start deleting the group; ``False`` if it was gone already."""

        def delete() -> bool:
            self._ops.begin_delete(self.resource_group, name, polling=False).result()
            return True

        return self.arm.maybe("containerGroups/delete", delete) is not None

    def logs(self, name: str, tail: int) -> str | None:
        """The last ``tail`` lines of the flow container's output, ``None`` if gone."""
        containers = self.arm.client("containers").containers
        found = self.arm.maybe(
            "containerGroups/containers/logs/read",
            lambda: containers.list_logs(self.resource_group, name, CONTAINER, tail=tail),
        )
        return None if found is None else (found.content or "")
