"""A pool's infrastructure as a plan of resources: looked up, created, recorded, removed.

Like a deployer's plan/apply: :meth:`Infrastructure.plan` only reads; :meth:`apply`
creates what is missing in dependency order and returns what to record in the pool
config (including ``provisioned``, every resource tagged as this pool's); :meth:`remove`
deletes exactly the recorded resources, newest first, skipping what is already gone and
anything that does not carry the pool's tag.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from provisioners.base import PlanStep, Progress, ProvisionPlan
from provisioners.ecs.infra.base import Context, Found, Resource
from provisioners.ecs.infra.default_vpc import DefaultVpc
from provisioners.ecs.infra.iam import execution_role, task_role
from provisioners.ecs.infra.network import (
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Subnet,
    Vpc,
)
from provisioners.ecs.infra.services import Cluster, LogGroup, Repository
from provisioners.ecs.models import ProvisionedResource
from provisioners.errors import ProvisionerError

log = logging.getLogger("pushpool.ecs")
_LIST_OUTPUTS = frozenset({"subnets", "security_groups"})

__all__ = ["Context", "Infrastructure"]


class Infrastructure:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- the resources ---------------------------------------------------------------------
    def _core(self) -> list[Resource]:
        names = self.ctx.names
        return [
            execution_role(names.execution_role, names.log_group),
            task_role(names.task_role),
            LogGroup(names.log_group),
            Repository(names.repository),
            Cluster(names.cluster),
        ]

    def _own_network(self) -> list[Resource]:
        names = self.ctx.names
        return [
            Vpc(names.network),
            InternetGateway(names.network),
            Subnet(names.subnet(0), 0),
            Subnet(names.subnet(1), 1),
            RouteTable(names.network),
            SecurityGroup(names.network),
        ]

    def resources(self) -> list[Resource]:
        """What the pool needs here: the default VPC if there is one, else its own."""
        default = DefaultVpc("default")
        network = [default] if default.find(self.ctx) else self._own_network()
        return self._core() + network

    def _every_resource(self) -> list[Resource]:
        return [*self._core(), DefaultVpc("default"), *self._own_network()]

    def _resource(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self._every_resource() if r.key == f"{kind}/{name}"), None)

    # -- plan, apply, remove -----------------------------------------------------------
    def plan(self) -> ProvisionPlan:
        steps = []
        for resource in self.resources():
            found = resource.find(self.ctx)
            if found is not None:
                self.ctx.ids[resource.key] = found.id
            steps.append(resource.step(self.ctx, found))
        return ProvisionPlan(steps)

    def apply(
        self,
        plan: ProvisionPlan,
        recorded: list[ProvisionedResource],
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Create what is missing (``progress`` per creation); return config to record."""
        owned = {f"{r.resource}/{r.name}": r for r in recorded}
        outputs: dict[str, Any] = {}
        done: list[str] = []
        for step in plan.steps:
            resource = self._resource(step.resource, step.name)
            if resource is None:
                raise ProvisionerError(f"unknown plan step {step.resource} {step.name}")
            try:
                found = self._ensure(resource, step, progress)
            except ProvisionerError as exc:
                raise _partial(exc, done) from exc
            done.append(resource.key)
            if found.owned:
                owned[resource.key] = ProvisionedResource(
                    resource=resource.kind, name=resource.name, id=found.id
                )
            _merge(outputs, resource.outputs(self.ctx, found.id))
        outputs["provisioned"] = [r.model_dump() for r in self._ordered(owned)]
        return outputs

    def _ensure(self, resource: Resource, step: PlanStep, progress: Progress | None) -> Found:
        found = resource.find(self.ctx)
        if found is None:
            found = Found(resource.create(self.ctx), owned=True)
            log.info("created %s %s: %s", resource.kind, resource.name, found.id)
            if progress is not None:
                progress(replace(step, detail=found.id))
        self.ctx.ids[resource.key] = found.id
        return found

    def _ordered(self, owned: dict[str, ProvisionedResource]) -> list[ProvisionedResource]:
        """Recorded resources in dependency order (ones no longer planned first)."""
        order = [r.key for r in self._every_resource()]
        rank = {key: i for i, key in enumerate(order)}
        return sorted(owned.values(), key=lambda r: rank.get(f"{r.resource}/{r.name}", -1))

    def remove(self, recorded: list[ProvisionedResource], progress: Progress | None = None) -> None:
        """Delete the recorded resources, in reverse; ``progress`` per removal.

        A resource AWS refuses to delete does not stop the others; the refusals are
        raised together at the end (deprovisioning again retries just those).
        """
        refused: list[str] = []
        for entry in reversed(recorded):
            try:
                removed = self._remove(entry)
            except ProvisionerError as exc:
                refused.append(f"{entry.resource} {entry.name} ({entry.id}): {exc}")
                continue
            if removed and progress is not None:
                progress(PlanStep(entry.resource, entry.name, False, entry.id))
        if refused:
            raise ProvisionerError("could not remove " + "; ".join(refused))

    def _remove(self, entry: ProvisionedResource) -> bool:
        resource = self._resource(entry.resource, entry.name)
        if resource is None:
            log.warning("left %s %s alone: not a pool resource", entry.resource, entry.name)
            return False
        found = resource.check(self.ctx, entry.id)
        if found is None:
            return False  # gone already
        if not found.owned:
            log.warning("left %s %s alone: not tagged as pushpool's", entry.resource, entry.id)
            return False
        resource.delete(self.ctx, entry.id)
        return True


def _merge(outputs: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if key in _LIST_OUTPUTS:
            outputs.setdefault(key, []).extend(value)
        else:
            outputs[key] = value


def _partial(exc: ProvisionerError, done: list[str]) -> ProvisionerError:
    in_place = ", ".join(done) or "nothing"
    return ProvisionerError(
        f"{exc} (already in place: {in_place}; provisioning again resumes from here)",
        transient=exc.transient,
    )
