"""The resources of a cloud-run pool: each found (read only), created, checked and deleted.

Ownership: what can carry labels carries ``pushpool-pool=<name>`` (the repository); a
service account says so in its description; an enabled API or an IAM binding cannot be
labelled, so it is the pool's only if provisioning recorded it (it was missing and
provisioning added it). Deprovisioning removes only recorded, owned resources.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioners import infra
from provisioners.cloud_run.errors import GcpError
from provisioners.cloud_run.infra.clients import Policy, ProvisioningClients
from provisioners.cloud_run.names import POOL_LABEL, label_value
from provisioners.infra import Found

#: Attempts at a read-modify-write of an IAM policy that others change at the same time.
POLICY_ATTEMPTS = 5


@dataclass
class Context:
    clients: ProvisioningClients
    pool: str

    @property
    def marker(self) -> str:
        """How a resource that takes no labels says it is this pool's."""
        return f"{POOL_LABEL}={label_value(self.pool)}"


class Resource(infra.Resource[Context]):
    """One resource of a cloud-run pool (see :class:`provisioners.infra.Resource`)."""


class ApiService(Resource):
    """An API enabled in the project (Service Usage)."""

    kind = "api"

    def find(self, ctx: Context) -> Found | None:
        return Found(self.name, owned=False) if ctx.clients.service_enabled(self.name) else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        enabled = ctx.clients.service_enabled(self.name)
        return Found(self.name, owned=True) if enabled else None

    def create(self, ctx: Context) -> str:
        ctx.clients.enable_service(self.name)
        return self.name

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.clients.disable_service(self.name)


class ServiceAccount(Resource):
    """The runtime identity of the pool's jobs."""

    kind = "service-account"

    def __init__(self, account_id: str, project: str) -> None:
        super().__init__(account_id)
        self.email = f"{account_id}@{project}.iam.gserviceaccount.com"

    def find(self, ctx: Context) -> Found | None:
        account = ctx.clients.get_account(self.email)
        if account is None:
            return None
        return Found(self.email, owned=ctx.marker in str(account.get("description", "")))

    def create(self, ctx: Context) -> str:
        about = f"pushpool: the identity of flow runs on pool {ctx.pool} ({ctx.marker})"
        return ctx.clients.create_account(self.name, f"pushpool {ctx.pool}", about)

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.clients.delete_account(resource_id)

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"service_account": resource_id}


class Binding(Resource):
    """``member`` holds ``role`` in an IAM policy (the project's, or one account's), under
    ``condition`` (an IAM condition: ``title``, ``description``, ``expression``) if given:
    a binding is the role and the condition together, as IAM keeps them."""

    def __init__(
        self,
        role: str,
        member: str,
        read: Callable[[ProvisioningClients], Policy | None],
        write: Callable[[ProvisioningClients, Policy], None],
        condition: dict[str, str] | None = None,
    ) -> None:
        when = f" if {condition['title']}" if condition else ""
        super().__init__(f"{role} {member}{when}")
        self.role, self.member, self.condition = role, member, condition
        self._read, self._write = read, write

    def _same(self, binding: dict[str, Any]) -> bool:
        """Whether ``binding`` is this role under this condition (or none)."""
        return bool(binding["role"] == self.role and binding.get("condition") == self.condition)

    def _holds(self, policy: Policy | None) -> bool:
        return policy is not None and any(
            self._same(b) and self.member in b["members"] for b in policy["bindings"]
        )

    def find(self, ctx: Context) -> Found | None:
        return Found(self.name, owned=False) if self._holds(self._read(ctx.clients)) else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        return Found(self.name, owned=True) if self._holds(self._read(ctx.clients)) else None

    def _change(self, ctx: Context, add: bool) -> None:
        """Read, change, write with the policy's etag; again if someone wrote in between."""
        for attempt in range(POLICY_ATTEMPTS):
            policy = self._read(ctx.clients)
            if policy is None or self._holds(policy) == add:
                return
            bindings = [dict(b, members=list(b["members"])) for b in policy["bindings"]]
            target = next((b for b in bindings if self._same(b)), None)
            if add:
                if target is None:
                    new: dict[str, Any] = {"role": self.role, "members": [self.member]}
                    if self.condition:
                        new["condition"] = dict(self.condition)
                    bindings.append(new)
                else:
                    target["members"].append(self.member)
            elif target is not None:
                target["members"].remove(self.member)
            kept = [b for b in bindings if b["members"]]
            try:
                self._write(ctx.clients, {**policy, "bindings": kept})
                return
            except GcpError as exc:
                if exc.status != 409 or attempt == POLICY_ATTEMPTS - 1:
                    raise

    def create(self, ctx: Context) -> str:
        self._change(ctx, add=True)
        return self.name

    def delete(self, ctx: Context, resource_id: str) -> None:
        self._change(ctx, add=False)


class ProjectBinding(Binding):
    kind = "project-iam-binding"

    def __init__(self, role: str, member: str, condition: dict[str, str] | None = None) -> None:
        super().__init__(
            role,
            member,
            lambda c: c.project_policy(),
            lambda c, p: c.set_project_policy(p),
            condition,
        )


class AccountBinding(Binding):
    """A role on one service account only (not the project)."""

    kind = "service-account-iam-binding"

    def __init__(self, role: str, member: str, email: str) -> None:
        def read(c: ProvisioningClients) -> Policy | None:
            return c.account_policy(email) if c.get_account(email) is not None else None

        super().__init__(role, member, read, lambda c, p: c.set_account_policy(email, p))


class Repository(Resource):
    """The Artifact Registry docker repository for the runner image."""

    kind = "artifact-registry-repository"

    def find(self, ctx: Context) -> Found | None:
        found = ctx.clients.get_repository(self.name)
        if found is None:
            return None
        owned = (found.get("labels") or {}).get(POOL_LABEL) == label_value(ctx.pool)
        return Found(str(found["name"]), owned=owned)

    def create(self, ctx: Context) -> str:
        labels = {POOL_LABEL: label_value(ctx.pool)}
        ctx.clients.create_repository(self.name, labels, f"pushpool: runner images ({ctx.pool})")
        return ctx.clients.repository_name(self.name)

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.clients.delete_repository(self.name)

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"repository": self.name}
