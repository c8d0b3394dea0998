"""The resources of an ACI pool, each found, created and deleted through ARM (the plan
engine is :mod:`provisioners.infra`).

Everything that takes tags carries ``pushpool-pool=<pool>``; role assignments and the
custom role (which take none) have names derived from the pool, so they are found again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from provisioners import infra
from provisioners.aci import permissions
from provisioners.aci.arm import ArmClient
from provisioners.aci.names import POOL_TAG, identity_name, registry_name, role_name
from provisioners.infra import Found

ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
#: What the control plane does to a pool's container groups, and nothing more (each
#: with the ARM operations that need it: :mod:`provisioners.aci.permissions`).
CONTROL_PLANE_ACTIONS = [
    f"{permissions.ACI}/read",
    f"{permissions.ACI}/write",
    f"{permissions.ACI}/delete",
    f"{permissions.ACI}/stop/action",
    f"{permissions.ACI}/containers/logs/read",
    permissions.IDENTITY_ASSIGN,
]
#: Placing a container group in a subnet (``subnet_ids``): a linked check on the subnet.
SUBNET_JOIN_ACTION = permissions.SUBNET_JOIN


def control_plane_actions(subnet_ids: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The custom role's actions: the subnet join only where the pool uses subnets."""
    return CONTROL_PLANE_ACTIONS + ([SUBNET_JOIN_ACTION] if subnet_ids else [])


def subnet_scopes(subnet_ids: tuple[str, ...] | list[str]) -> list[str]:
    """The resource groups of the subnets' virtual networks (where the role must be
    assignable for an assignment on each subnet), in order, without repeats."""
    return list(dict.fromkeys("/".join(s.split("/")[:5]) for s in subnet_ids))


_NAMESPACE = uuid.UUID("5d0b6f0e-7c1d-4d8a-9a51-6f7075736870")


def stable_uuid(*parts: str) -> str:
    """A GUID (what ARM names role definitions and assignments with) fixed by ``parts``."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass
class Context:
    arm: ArmClient
    pool: str
    resource_group: str
    location: str
    control_plane_principal_id: str | None = None
    #: The pool's subnets: the control plane must be able to join each.
    subnet_ids: tuple[str, ...] = ()
    #: Resource kind -> what is known of it so far (id, principal id, login server).
    facts: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        return {POOL_TAG: self.pool}

    @property
    def rg_id(self) -> str:
        return f"/subscriptions/{self.arm.subscription_id}/resourceGroups/{self.resource_group}"

    def owned(self, resource: Any) -> bool:
        tags = resource.get("tags") if isinstance(resource, dict) else resource.tags
        return (tags or {}).get(POOL_TAG) == self.pool


class Resource(infra.Resource[Context]):
    """One resource of an ACI pool (see :class:`provisioners.infra.Resource`)."""


class ResourceGroup(Resource):
    kind = "resource-group"

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("resources").resource_groups

    def find(self, ctx: Context) -> Found | None:
        rg = ctx.arm.maybe("resourceGroups/read", lambda: self._ops(ctx).get(self.name))
        return None if rg is None else Found(rg.id, ctx.owned(rg))

    def create(self, ctx: Context) -> str:
        body = {"location": ctx.location, "tags": ctx.tags}
        rg = ctx.arm.call(
            "resourceGroups/write", lambda: self._ops(ctx).create_or_update(self.name, body)
        )
        return str(rg.id)

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe(
            "resourceGroups/delete", lambda: self._ops(ctx).begin_delete(self.name).result()
        )


class Identity(Resource):
    kind = "managed-identity"

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("msi").user_assigned_identities

    def _remember(self, ctx: Context, identity: Any) -> Found:
        ctx.facts[self.kind] = {
            "id": identity.id,
            "principal_id": identity.principal_id,
            "client_id": identity.client_id,
        }
        return Found(identity.id, ctx.owned(identity))

    def find(self, ctx: Context) -> Found | None:
        got = ctx.arm.maybe(
            "userAssignedIdentities/read", lambda: self._ops(ctx).get(ctx.resource_group, self.name)
        )
        return None if got is None else self._remember(ctx, got)

    def create(self, ctx: Context) -> str:
        body = {"location": ctx.location, "tags": ctx.tags}
        made = ctx.arm.call(
            "userAssignedIdentities/write",
            lambda: self._ops(ctx).create_or_update(ctx.resource_group, self.name, body),
        )
        return self._remember(ctx, made).id

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe(
            "userAssignedIdentities/delete",
            lambda: self._ops(ctx).delete(ctx.resource_group, self.name),
        )

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        fact = ctx.facts[self.kind]
        return {"identity_id": fact["id"], "identity_client_id": fact["client_id"]}


class Registry(Resource):
    kind = "container-registry"

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("registry").registries

    def _remember(self, ctx: Context, registry: Any) -> Found:
        ctx.facts[self.kind] = {"id": registry.id, "login_server": registry.properties.login_server}
        return Found(registry.id, ctx.owned(dict(registry)))

    def find(self, ctx: Context) -> Found | None:
        got = ctx.arm.maybe(
            "registries/read", lambda: self._ops(ctx).get(ctx.resource_group, self.name)
        )
        return None if got is None else self._remember(ctx, got)

    def create(self, ctx: Context) -> str:
        from azure.mgmt.containerregistry import models as acr

        body = acr.Registry(
            location=ctx.location,
            tags=ctx.tags,
            sku=acr.Sku(name="Basic"),
            properties=acr.RegistryProperties(admin_user_enabled=False),
        )
        made = ctx.arm.call(
            "registries/write",
            lambda: self._ops(ctx).begin_create(ctx.resource_group, self.name, body).result(),
        )
        return self._remember(ctx, made).id

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe(
            "registries/delete",
            lambda: self._ops(ctx).begin_delete(ctx.resource_group, self.name).result(),
        )

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        server = ctx.facts[self.kind]["login_server"]
        return {"registry_server": server, "image": f"{server}/pushpool-runner:latest"}


class RoleAssignment(Resource):
    """``role`` for ``principal`` (a fact of ``principal_of``, or a given id) at ``scope_of``
    (``resource-group``, a fact's kind, or an ARM id such as a subnet's)."""

    kind = "role-assignment"

    def __init__(self, name: str, role: str, scope_of: str, principal: str) -> None:
        super().__init__(name)
        self.role, self.scope_of, self.principal = role, scope_of, principal

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("authorization").role_assignments

    def _scope(self, ctx: Context) -> str:
        if self.scope_of.startswith("/"):
            return self.scope_of
        return ctx.rg_id if self.scope_of == "resource-group" else ctx.facts[self.scope_of]["id"]

    def _scope_known(self, ctx: Context) -> bool:
        return self.scope_of.startswith("/") or self.scope_of in ("resource-group", *ctx.facts)

    def _principal(self, ctx: Context) -> str:
        fact = ctx.facts.get(self.principal)
        return fact["principal_id"] if fact else self.principal

    def _guid(self, ctx: Context) -> str:
        return stable_uuid(ctx.pool, self.name, self._scope(ctx), self._principal(ctx))

    def _role_id(self, ctx: Context) -> str:
        role = ctx.facts["custom-role"]["guid"] if self.role == "custom" else self.role
        return (
            f"/subscriptions/{ctx.arm.subscription_id}"
            f"/providers/Microsoft.Authorization/roleDefinitions/{role}"
        )

    def find(self, ctx: Context) -> Found | None:
        if not self._scope_known(ctx):
            return None  # what it applies to does not exist yet
        got = ctx.arm.maybe(
            "roleAssignments/read", lambda: self._ops(ctx).get(self._scope(ctx), self._guid(ctx))
        )
        return None if got is None else Found(got.id, True)

    def create(self, ctx: Context) -> str:
        body = {
            "properties": {
                "roleDefinitionId": self._role_id(ctx),
                "principalId": self._principal(ctx),
                "principalType": "ServicePrincipal",
            }
        }
        made = ctx.arm.call(
            "roleAssignments/write",
            lambda: self._ops(ctx).create(self._scope(ctx), self._guid(ctx), body),
        )
        return str(made.id)

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        """The recorded assignment, by its id (what it applies to may be gone already)."""
        got = ctx.arm.maybe("roleAssignments/read", lambda: self._ops(ctx).get_by_id(resource_id))
        return None if got is None else Found(got.id, True)

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe("roleAssignments/delete", lambda: self._ops(ctx).delete_by_id(resource_id))


class CustomRole(Resource):
    """The narrowest role the control plane needs, assignable in the pool's resource group."""

    kind = "custom-role"

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("authorization").role_definitions

    def _guid(self, ctx: Context) -> str:
        guid = stable_uuid(ctx.arm.subscription_id, ctx.resource_group, ctx.pool, "role")
        ctx.facts[self.kind] = {"guid": guid}
        return guid

    @staticmethod
    def _scopes(ctx: Context) -> list[str]:
        return [ctx.rg_id, *subnet_scopes(ctx.subnet_ids)]

    def _get(self, ctx: Context) -> Any | None:
        return ctx.arm.maybe(
            "roleDefinitions/read", lambda: self._ops(ctx).get(ctx.rg_id, self._guid(ctx))
        )

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        """The recorded role, whatever it grants now."""
        got = self._get(ctx)
        return None if got is None else Found(got.id, True)

    def find(self, ctx: Context) -> Found | None:
        """The role, if it grants what the pool needs now (else it is planned again: a
        PUT of the same id updates it, e.g. once ``subnet_ids`` are added)."""
        got = self._get(ctx)
        if got is None:
            return None
        actions = [a for p in got.permissions or [] for a in p.actions or []]
        current = sorted(actions) == sorted(control_plane_actions(ctx.subnet_ids))
        scopes = sorted(s.lower() for s in got.assignable_scopes or [])
        current = current and scopes == sorted(s.lower() for s in self._scopes(ctx))
        return Found(got.id, True) if current else None

    def create(self, ctx: Context) -> str:
        body = {
            "properties": {
                "roleName": role_name(ctx.pool),
                "description": f"pushpool control plane for the ACI pool {ctx.pool}",
                "type": "CustomRole",
                "permissions": [
                    {"actions": control_plane_actions(ctx.subnet_ids), "notActions": []}
                ],
                "assignableScopes": self._scopes(ctx),
            }
        }
        made = ctx.arm.call(
            "roleDefinitions/write",
            lambda: self._ops(ctx).create_or_update(ctx.rg_id, self._guid(ctx), body),
        )
        return str(made.id)

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe(
            "roleDefinitions/delete", lambda: self._ops(ctx).delete(ctx.rg_id, self._guid(ctx))
        )


def pool_resources(ctx: Context) -> list[Resource]:
    """In dependency order."""
    resources: list[Resource] = [
        ResourceGroup(ctx.resource_group),
        Identity(identity_name(ctx.pool)),
        Registry(registry_name(ctx.pool, ctx.arm.subscription_id)),
        RoleAssignment("acr-pull", ACR_PULL_ROLE, "container-registry", "managed-identity"),
        CustomRole(role_name(ctx.pool)),
    ]
    principal = ctx.control_plane_principal_id
    if principal:
        resources.append(RoleAssignment("control-plane", "custom", "resource-group", principal))
        resources += [
            RoleAssignment(f"subnet-join-{i}", "custom", subnet, principal)
            for i, subnet in enumerate(ctx.subnet_ids, 1)
        ]
    return resources
