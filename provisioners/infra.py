"""Pool infrastructure as a plan of resources, for every pool type that has some.

Like a deployer's plan/apply: :meth:`Infrastructure.plan` only reads; :meth:`apply`
creates what is missing in dependency order and returns what to record in the pool
config (``provisioned``: every resource that is the pool's); :meth:`remove` deletes
exactly the recorded resources, newest first, skipping what is already gone and anything
no longer marked as the pool's. A pool type supplies the resources (a :class:`Resource`
subclass per kind, over its own context: clients, names) and the list of them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from provisioners.base import PlanStep, Progress, ProvisionPlan
from provisioners.errors import ProvisionerError

log = logging.getLogger("pushpool.provisioners")
C = TypeVar("C")


class ProvisionedResource(BaseModel):
    """One resource ``provision`` created (or found marked as the pool's) and may remove."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: str
    name: str
    id: str


@dataclass(frozen=True)
class Found:
    """A resource that exists: its id, and whether it is marked as this pool's."""

    id: str
    owned: bool


class Resource(ABC, Generic[C]):
    """One resource of a pool's infrastructure, identified by kind and name."""

    kind: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @abstractmethod
    def find(self, ctx: C) -> Found | None:
        """Look it up by name (read only)."""

    def check(self, ctx: C, resource_id: str) -> Found | None:
        """Look up the recorded ``resource_id`` (read only); by name unless overridden."""
        return self.find(ctx)

    @abstractmethod
    def create(self, ctx: C) -> str:
        """Create it (marked as the pool's); return its id."""

    @abstractmethod
    def delete(self, ctx: C, resource_id: str) -> None:
        """Remove it, and what hangs off it; a resource already gone is fine."""

    def detail(self, ctx: C, found: Found | None) -> str:
        """A note for the plan table."""
        if found is None:
            return ""
        return found.id if found.owned else f"{found.id} (not pushpool's: used, never removed)"

    def outputs(self, ctx: C, resource_id: str) -> dict[str, Any]:
        """Config values this resource contributes to the pool."""
        return {}

    def step(self, ctx: C, found: Found | None) -> PlanStep:
        return PlanStep(self.kind, self.name, found is not None, self.detail(ctx, found))


class Infrastructure(ABC, Generic[C]):
    """Plan, apply and remove a pool type's resources in ``ctx``."""

    def __init__(self, ctx: C) -> None:
        self.ctx = ctx

    @abstractmethod
    def resources(self) -> list[Resource[C]]:
        """What the pool needs, in dependency order."""

    def every_resource(self) -> list[Resource[C]]:
        """Every resource the pool may have recorded (to remove and to order them)."""
        return self.resources()

    def seen(self, resource: Resource[C], resource_id: str) -> None:
        """Called with each resource found or created, in order (a hook for contexts that
        pass ids on to the resources after them)."""

    def merge(self, outputs: dict[str, Any], values: dict[str, Any]) -> None:
        """Add one resource's config values to the pool's."""
        outputs.update(values)

    def _resource(self, kind: str, name: str) -> Resource[C] | None:
        return next((r for r in self.every_resource() if r.key == f"{kind}/{name}"), None)

    # -- plan, apply, remove -----------------------------------------------------------
    def plan(self) -> ProvisionPlan:
        steps = []
        for resource in self.resources():
            found = resource.find(self.ctx)
            if found is not None:
                self.seen(resource, found.id)
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
            self.merge(outputs, resource.outputs(self.ctx, found.id))
        outputs["provisioned"] = [r.model_dump() for r in self._ordered(owned)]
        return outputs

    def _ensure(self, resource: Resource[C], step: PlanStep, progress: Progress | None) -> Found:
        found = resource.find(self.ctx)
        if found is None:
            found = Found(resource.create(self.ctx), owned=True)
            log.info("created %s %s: %s", resource.kind, resource.name, found.id)
            if progress is not None:
                progress(replace(step, detail=found.id))
        self.seen(resource, found.id)
        return found

    def _ordered(self, owned: dict[str, ProvisionedResource]) -> list[ProvisionedResource]:
        """Recorded resources in dependency order (ones no longer planned first)."""
        rank = {r.key: i for i, r in enumerate(self.every_resource())}
        return sorted(owned.values(), key=lambda r: rank.get(f"{r.resource}/{r.name}", -1))

    def remove(self, recorded: list[ProvisionedResource], progress: Progress | None = None) -> None:
        """Delete the recorded resources, in reverse; ``progress`` per removal.

        A resource the platform refuses to delete does not stop the others; the refusals
        are raised together at the end (deprovisioning again retries just those).
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
            log.warning("left %s %s alone: not marked as pushpool's", entry.resource, entry.id)
            return False
        resource.delete(self.ctx, entry.id)
        return True


def _partial(exc: ProvisionerError, done: list[str]) -> ProvisionerError:
    in_place = ", ".join(done) or "nothing"
    return ProvisionerError(
        f"{exc} (already in place: {in_place}; provisioning again resumes from here)",
        transient=exc.transient,
    )
