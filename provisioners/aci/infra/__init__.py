"""An ACI pool's infrastructure as a plan: looked up, created, recorded, removed.

:meth:`Infrastructure.plan` only reads; :meth:`apply` creates what is missing in
dependency order (resource group, managed identity, registry, ``AcrPull`` for the
identity, the control plane's custom role and, given its principal, its assignment) and
returns the config to record, ``provisioned`` included; :meth:`remove` deletes exactly the
recorded resources, newest first, tolerating what is gone, and never a resource group
that was not created by this pool.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from provisioners.aci.infra.resources import (
    Context,
    Found,
    Resource,
    control_plane_actions,
    subnet_scopes,
)
from provisioners.aci.infra.resources import pool_resources as _pool_resources
from provisioners.aci.links import push_commands
from provisioners.aci.models import ProvisionedResource
from provisioners.base import PlanStep, Progress, ProvisionPlan
from provisioners.errors import ProvisionerError

if TYPE_CHECKING:
    from provisioners.aci.provisioner import AciProvisioner

log = logging.getLogger("pushpool.aci")


class Infrastructure:
    def __init__(self, ctx: Context, recorded: list[ProvisionedResource]) -> None:
        self.ctx, self.recorded = ctx, recorded

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
        return cls(ctx, list(c.provisioned))

    def resources(self) -> list[Resource]:
        return _pool_resources(self.ctx)

    def plan(self) -> ProvisionPlan:
        steps = []
        for resource in self.resources():
            found = resource.find(self.ctx)
            detail = "" if found is None else _detail(found)
            steps.append(PlanStep(resource.kind, resource.name, found is not None, detail))
        return ProvisionPlan(steps)

    def apply(self, plan: ProvisionPlan, progress: Progress | None = None) -> dict[str, Any]:
        owned = {f"{r.resource}/{r.name}": r for r in self.recorded}
        outputs: dict[str, Any] = {}
        done: list[str] = []
        by_key = {r.key: r for r in self.resources()}
        for step in plan.steps:
            resource = by_key.get(f"{step.resource}/{step.name}")
            if resource is None:
                raise ProvisionerError(f"unknown plan step {step.resource} {step.name}")
            try:
                found = self._ensure(resource, step, progress)
            except ProvisionerError as exc:
                raise ProvisionerError(
                    f"{exc} (already in place: {', '.join(done) or 'nothing'}; "
                    "provisioning again resumes from here)",
                    transient=exc.transient,
                ) from exc
            done.append(resource.key)
            if found.owned:
                owned[resource.key] = ProvisionedResource(
                    resource=resource.kind, name=resource.name, id=found.id
                )
            outputs |= resource.outputs(self.ctx)
        order = {r.key: i for i, r in enumerate(self.resources())}
        ordered = sorted(owned.values(), key=lambda r: order.get(f"{r.resource}/{r.name}", -1))
        outputs["provisioned"] = [r.model_dump() for r in ordered]
        return outputs

    def _ensure(self, resource: Resource, step: PlanStep, progress: Progress | None) -> Found:
        found = resource.find(self.ctx)
        if found is None:
            found = Found(resource.create(self.ctx), owned=True)
            log.info("created %s %s", resource.kind, resource.name)
            if progress is not None:
                progress(replace(step, detail=found.id))
        return found

    def remove(self, progress: Progress | None = None) -> None:
        """Delete the recorded resources in reverse order. A refusal does not stop the
        others; the refusals are raised together at the end."""
        every = self.resources()
        by_key = {r.key: r for r in every}
        refused = []
        for entry in reversed(self.recorded):
            resource = by_key.get(f"{entry.resource}/{entry.name}")
            if resource is None:
                log.warning("left %s %s alone: not a pool resource", entry.resource, entry.name)
                continue
            try:
                resource.find(self.ctx)  # learn the facts later steps need (ids, guids)
                resource.delete(self.ctx, entry.id)
            except ProvisionerError as exc:
                refused.append(f"{entry.resource} {entry.name}: {exc}")
                continue
            if progress is not None:
                progress(PlanStep(entry.resource, entry.name, False, entry.id))
        if refused:
            raise ProvisionerError("could not remove " + "; ".join(refused))


def _detail(found: Found) -> str:
    return found.id if found.owned else f"{found.id} (not pushpool's: used, never removed)"


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
    notes["Subnets"] = (
        "the role is assigned on each of the pool's subnet_ids (to join them); a deployment's"
        " own subnet_ids need the same: add them to the pool's subnet_ids and provision again"
    )
    if c.registry_server:
        notes["Build and push the runner image (runner_image/Dockerfile)"] = "\n".join(
            push_commands(c.registry_server)
        )
    return notes
