"""An ACI pool's infrastructure as a plan: looked up, created, recorded, removed (the
engine: :class:`provisioners.infra.Infrastructure`).

:meth:`Infrastructure.plan` only reads; ``apply`` creates what is missing in dependency
order (resource group, managed identity, registry, ``AcrPull`` for the identity, the
control plane's custom role and, given its principal, its assignments: on the resource
group and on each of the pool's subnets; then the result store of :mod:`.results`) and
returns the config to record, ``provisioned`` included; ``remove`` deletes exactly the
recorded resources, newest first, tolerating what is gone, and never a resource group
that was not created by this pool (one not tagged as the pool's is left alone).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from provisioners import infra
from provisioners.aci import permissions
from provisioners.aci.infra.resources import (
    Context,
    control_plane_actions,
    pool_resources,
    subnet_scopes,
)
from provisioners.aci.infra.results import result_resources
from provisioners.aci.links import push_commands

if TYPE_CHECKING:
    from provisioners.aci.provisioner import AciProvisioner


class Infrastructure(infra.Infrastructure[Context]):
    @classmethod
    def for_pool(cls, provisioner: AciProvisioner) -> Infrastructure:
        c = provisioner.config
        ctx = Context(
            provisioner.arm,
            provisioner.pool_name,
            c.resource_group,
            c.location,
            c.control_plane_principal_id,
            tuple(c.subnet_ids),
        )
        return cls(ctx, c.result_retention_days)

    def __init__(self, ctx: Context, result_retention_days: int = 30) -> None:
        super().__init__(ctx)
        self.result_retention_days = result_retention_days

    def resources(self) -> list[infra.Resource[Context]]:
        return [*pool_resources(self.ctx), *result_resources(self.ctx, self.result_retention_days)]


def setup_notes(provisioner: AciProvisioner) -> dict[str, str]:
    c = provisioner.config
    scope = f"/subscriptions/{c.subscription_id}/resourceGroups/{c.resource_group}"
    role = {
        "assignableScopes": [scope, *subnet_scopes(c.subnet_ids)],
        "permissions": [{"actions": control_plane_actions(c.subnet_ids)}],
    }
    notes = {
        "Azure role the control plane needs in this resource group": json.dumps(role, indent=2)
    }
    if not c.control_plane_principal_id:
        notes["Not granted yet"] = (
            "set control_plane_principal_id (the control plane's identity) and provision again"
            " to assign that role to it"
        )
    notes["ARM operations and the permissions they need"] = permissions.table()
    notes["Subnets"] = (
        "the role is assigned on each of the pool's subnet_ids (to join them); a deployment's"
        " own subnet_ids need the same: add them to the pool's subnet_ids and provision again"
    )
    if c.registry_server:
        notes["Build and push the runner image (runner_image/Dockerfile)"] = "\n".join(
            push_commands(c.registry_server)
        )
    return notes
