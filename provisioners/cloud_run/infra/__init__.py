"""A cloud-run pool's infrastructure as a plan: looked up, created, recorded, removed.

What a pool needs: the Cloud Run, Artifact Registry and IAM APIs enabled; a runtime
service account for its jobs holding ``roles/logging.logWriter`` on the project and
nothing else; for the control plane's identity (``control_plane_member``, when given)
``roles/run.developer`` and ``roles/logging.viewer`` (last words) on the project,
``roles/iam.serviceAccountUser`` on the runtime account only and
``roles/secretmanager.admin`` under a condition that limits it to the pool's block secrets
(:func:`secrets_condition`); an Artifact Registry docker repository; a private result bucket
(:mod:`.results`) on which the runtime account holds ``roles/storage.objectAdmin`` (that
bucket only). :meth:`Infrastructure.plan` only reads; :meth:`apply` creates what is
missing, in order, and returns what to record (``provisioned``: what it added);
:meth:`remove` deletes exactly that, newest first, tolerating what is gone and leaving
anything not the pool's.
"""

from __future__ import annotations

from typing import Any

from provisioners import infra
from provisioners.base import Progress, ProvisionPlan
from provisioners.cloud_run import links, permissions
from provisioners.cloud_run.infra.clients import ProvisioningClients
from provisioners.cloud_run.infra.resources import (
    AccountBinding,
    ApiService,
    Context,
    ProjectBinding,
    Repository,
    ServiceAccount,
)
from provisioners.cloud_run.infra.results import (
    OBJECT_ROLE,
    BucketBinding,
    ResultBucket,
    bucket_name,
)
from provisioners.cloud_run.models import CloudRunPoolConfig
from provisioners.cloud_run.names import secret_prefix, slug
from provisioners.infra import ProvisionedResource

APIS = (
    "run.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "secretmanager.googleapis.com",  # block secrets (secretKeyRef)
)
RUNTIME_ROLES = ("roles/logging.logWriter",)
#: Run jobs; read their Cloud Logging output for last words.
CONTROL_PLANE_PROJECT_ROLES = ("roles/run.developer", "roles/logging.viewer")
CONTROL_PLANE_ACCOUNT_ROLE = "roles/iam.serviceAccountUser"
#: Block secrets: create, add versions, grant the job's account, list, delete — on the
#: pool's own secrets only (:func:`secrets_condition`).
CONTROL_PLANE_SECRETS_ROLE = "roles/secretmanager.admin"


def secrets_condition(pool: str) -> dict[str, str]:
    """The IAM condition that narrows :data:`CONTROL_PLANE_SECRETS_ROLE` to the pool's
    secrets (ids starting ``pushpool-<pool>_``, their versions included) and to the
    project itself, where Secret Manager checks ``secrets.create`` and ``secrets.list``
    (``extract`` takes the id whatever the project's number is)."""
    prefix = secret_prefix(pool)
    return {
        "title": f"pushpool {slug(pool, 40)} secrets",
        "description": f"pushpool: the block secrets of pool {pool} ({prefix}*) only",
        "expression": (
            'resource.type == "cloudresourcemanager.googleapis.com/Project" || '
            '(resource.type.startsWith("secretmanager.googleapis.com/") && '
            f'resource.name.extract("/secrets/{{id}}").startsWith("{prefix}"))'
        ),
    }


__all__ = ["Infrastructure", "setup_notes"]


def account_id(pool: str) -> str:
    """``pushpool-<pool>``: 6-30 characters, as IAM requires."""
    return f"pushpool-{slug(pool, 21)}"


def repository_id(pool: str) -> str:
    return f"pushpool-{slug(pool, 40)}"


class Infrastructure(infra.Infrastructure[Context]):
    def __init__(self, config: CloudRunPoolConfig, pool: str) -> None:
        super().__init__(Context(ProvisioningClients(config.project, config.region), pool))
        self.config, self.pool = config, pool

    def resources(self) -> list[infra.Resource[Context]]:
        account = ServiceAccount(account_id(self.pool), self.config.project)
        runtime = f"serviceAccount:{account.email}"
        found: list[infra.Resource[Context]] = [ApiService(api) for api in APIS]
        found.append(account)
        found += [ProjectBinding(role, runtime) for role in RUNTIME_ROLES]
        member = self.config.control_plane_member
        if member:
            found += [ProjectBinding(role, member) for role in CONTROL_PLANE_PROJECT_ROLES]
            found.append(AccountBinding(CONTROL_PLANE_ACCOUNT_ROLE, member, account.email))
            condition = secrets_condition(self.pool)
            found.append(ProjectBinding(CONTROL_PLANE_SECRETS_ROLE, member, condition))
        found.append(Repository(repository_id(self.pool)))
        bucket = bucket_name(self.pool, self.config.project)
        found.append(ResultBucket(bucket, self.config.result_retention_days))
        found.append(BucketBinding(OBJECT_ROLE, runtime, bucket))
        return found

    def apply(
        self,
        plan: ProvisionPlan,
        recorded: list[ProvisionedResource],
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """What :meth:`infra.Infrastructure.apply` records, plus the default image."""
        outputs = super().apply(plan, recorded, progress)
        if self.config.image is None and "repository" in outputs:
            project, region = self.config.project, self.config.region
            outputs["image"] = links.image_uri(project, region, outputs["repository"])
        return outputs


def setup_notes(config: CloudRunPoolConfig, pool: str) -> dict[str, str]:
    notes: dict[str, str] = {}
    runtime = (
        config.service_account or f"{account_id(pool)}@{config.project}.iam.gserviceaccount.com"
    )
    grants = [f"{role} on project {config.project} -> {runtime}" for role in RUNTIME_ROLES]
    bucket = bucket_name(pool, config.project)
    grants.append(f"{OBJECT_ROLE} on bucket {bucket} only -> {runtime}")
    member = config.control_plane_member or "<the control plane's identity>"
    grants += [f"{r} on project {config.project} -> {member}" for r in CONTROL_PLANE_PROJECT_ROLES]
    grants.append(f"{CONTROL_PLANE_ACCOUNT_ROLE} on service account {runtime} -> {member}")
    condition = secrets_condition(pool)
    grants.append(
        f"{CONTROL_PLANE_SECRETS_ROLE} on project {config.project} -> {member}, under the "
        f"condition {condition['expression']}"
    )
    if not config.control_plane_member:
        grants.append(
            "(set config.control_plane_member and provision again to grant the last four)"
        )
    notes["IAM roles for this pool"] = "\n".join(grants)
    notes["Google API methods and the permissions they need"] = permissions.table()
    if config.repository:
        commands = links.push_commands(config.project, config.region, config.repository)
        notes["Build and push the runner image (runner_image/Dockerfile)"] = "\n".join(commands)
    return notes
