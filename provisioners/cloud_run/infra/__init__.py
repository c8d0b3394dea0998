"""A cloud-run pool's infrastructure as a plan: looked up, created, recorded, removed.

What a pool needs: the Cloud Run, Artifact Registry and IAM APIs enabled; a runtime
service account for its jobs holding ``roles/logging.logWriter`` on the project and
nothing else; for the control plane's identity (``control_plane_member``, when given)
``roles/run.developer`` and ``roles/logging.viewer`` (last words) on the project and
``roles/iam.serviceAccountUser`` on the runtime account only; an Artifact Registry
docker repository. :meth:`Infrastructure.plan` only reads; :meth:`apply` creates what is
missing, in order, and returns what to record (``provisioned``: what it added);
:meth:`remove` deletes exactly that, newest first, tolerating what is gone and leaving
anything not the pool's.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from provisioners.base import PlanStep, Progress, ProvisionPlan
from provisioners.cloud_run import links, permissions
from provisioners.cloud_run.infra.clients import ProvisioningClients
from provisioners.cloud_run.infra.resources import (
    AccountBinding,
    ApiService,
    Context,
    Found,
    ProjectBinding,
    Repository,
    Resource,
    ServiceAccount,
)
from provisioners.cloud_run.models import CloudRunPoolConfig, ProvisionedResource
from provisioners.cloud_run.names import slug
from provisioners.errors import ProvisionerError

log = logging.getLogger("pushpool.cloud_run")

APIS = ("run.googleapis.com", "artifactregistry.googleapis.com", "iam.googleapis.com")
RUNTIME_ROLES = ("roles/logging.logWriter",)
#: Run jobs; read their Cloud Logging output for last words.
CONTROL_PLANE_PROJECT_ROLES = ("roles/run.developer", "roles/logging.viewer")
CONTROL_PLANE_ACCOUNT_ROLE = "roles/iam.serviceAccountUser"

__all__ = ["Infrastructure", "setup_notes"]


def account_id(pool: str) -> str:
    """``pushpool-<pool>``: 6-30 characters, as IAM requires."""
    return f"pushpool-{slug(pool, 21)}"


def repository_id(pool: str) -> str:
    return f"pushpool-{slug(pool, 40)}"


class Infrastructure:
    def __init__(self, config: CloudRunPoolConfig, pool: str) -> None:
        self.config, self.pool = config, pool
        self.ctx = Context(ProvisioningClients(config.project, config.region), pool)

    def resources(self) -> list[Resource]:
        account = ServiceAccount(account_id(self.pool), self.config.project)
        runtime = f"serviceAccount:{account.email}"
        found: list[Resource] = [ApiService(api) for api in APIS]
        found.append(account)
        found += [ProjectBinding(role, runtime) for role in RUNTIME_ROLES]
        member = self.config.control_plane_member
        if member:
            found += [ProjectBinding(role, member) for role in CONTROL_PLANE_PROJECT_ROLES]
            found.append(AccountBinding(CONTROL_PLANE_ACCOUNT_ROLE, member, account.email))
        found.append(Repository(repository_id(self.pool)))
        return found

    def _resource(self, kind: str, name: str) -> Resource | None:
        return next((r for r in self.resources() if r.key == f"{kind}/{name}"), None)

    def plan(self) -> ProvisionPlan:
        return ProvisionPlan([r.step(r.find(self.ctx)) for r in self.resources()])

    def apply(
        self,
        plan: ProvisionPlan,
        recorded: list[ProvisionedResource],
        progress: Progress | None = None,
    ) -> dict[str, Any]:
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
            outputs.update(resource.outputs(found.id))
        outputs["provisioned"] = [r.model_dump() for r in owned.values()]
        if self.config.image is None and "repository" in outputs:
            project, region = self.config.project, self.config.region
            outputs["image"] = links.image_uri(project, region, outputs["repository"])
        return outputs

    def _ensure(self, resource: Resource, step: PlanStep, progress: Progress | None) -> Found:
        found = resource.find(self.ctx)
        if found is None:
            found = Found(resource.create(self.ctx), owned=True)
            log.info("created %s %s", resource.kind, resource.name)
            if progress is not None:
                progress(replace(step, detail=found.id))
        return found

    def remove(self, recorded: list[ProvisionedResource], progress: Progress | None = None) -> None:
        """Remove what was recorded, newest first; refusals are raised together at the end."""
        refused: list[str] = []
        for entry in reversed(recorded):
            try:
                removed = self._remove(entry)
            except ProvisionerError as exc:
                refused.append(f"{entry.resource} {entry.name}: {exc}")
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
            return False
        if not found.owned:
            log.warning("left %s %s alone: not marked as the pool's", entry.resource, entry.id)
            return False
        resource.delete(self.ctx, entry.id)
        return True


def _partial(exc: ProvisionerError, done: list[str]) -> ProvisionerError:
    in_place = ", ".join(done) or "nothing"
    return ProvisionerError(
        f"{exc} (already in place: {in_place}; provisioning again resumes from here)",
        transient=exc.transient,
    )


def setup_notes(config: CloudRunPoolConfig, pool: str) -> dict[str, str]:
    notes: dict[str, str] = {}
    runtime = (
        config.service_account or f"{account_id(pool)}@{config.project}.iam.gserviceaccount.com"
    )
    grants = [f"{role} on project {config.project} -> {runtime}" for role in RUNTIME_ROLES]
    member = config.control_plane_member or "<the control plane's identity>"
    grants += [f"{r} on project {config.project} -> {member}" for r in CONTROL_PLANE_PROJECT_ROLES]
    grants.append(f"{CONTROL_PLANE_ACCOUNT_ROLE} on service account {runtime} -> {member}")
    if not config.control_plane_member:
        grants.append(
            "(set config.control_plane_member and provision again to grant the last three)"
        )
    notes["IAM roles for this pool"] = "\n".join(grants)
    notes["Google API methods and the permissions they need"] = permissions.table()
    if config.repository:
        commands = links.push_commands(config.project, config.region, config.repository)
        notes["Build and push the runner image (runner_image/Dockerfile)"] = "\n".join(commands)
    return notes
