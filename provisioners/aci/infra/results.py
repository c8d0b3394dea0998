"""The pool's result store: a storage account (HTTPS only, TLS 1.2 at least, no public
blob access, its own tag), one blob container for results with a lifecycle management
policy that deletes them after ``result_retention_days``, and "Storage Blob Data
Contributor" for the pool's managed identity on that container only.

Removing the account removes every blob in it: nothing is left behind.
"""

from __future__ import annotations

from typing import Any

from provisioners.aci.infra.resources import Context, Resource, RoleAssignment
from provisioners.aci.names import storage_account_name
from provisioners.infra import Found

#: The blob container results are written to (the pool's ``result_storage``).
CONTAINER = "results"
#: Built-in "Storage Blob Data Contributor": read, write and delete blobs.
BLOB_CONTRIBUTOR_ROLE = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
POLICY = "default"  # a storage account has one management policy, named "default"
RULE = "pushpool-results-expire"


class StorageAccount(Resource):
    kind = "storage-account"

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("storage").storage_accounts

    def _remember(self, ctx: Context, account: Any) -> Found:
        owned = ctx.owned(account)
        ctx.facts[self.kind] = {"id": account.id, "owned": "yes" if owned else ""}
        return Found(account.id, owned)

    def find(self, ctx: Context) -> Found | None:
        got = ctx.arm.maybe(
            "storageAccounts/read",
            lambda: self._ops(ctx).get_properties(ctx.resource_group, self.name),
        )
        return None if got is None else self._remember(ctx, got)

    def create(self, ctx: Context) -> str:
        from azure.mgmt.storage import models as st

        body = st.StorageAccountCreateParameters(
            location=ctx.location,
            tags=ctx.tags,
            sku=st.Sku(name="Standard_LRS"),
            kind="StorageV2",
            properties=st.StorageAccountPropertiesCreateParameters(
                minimum_tls_version="TLS1_2",
                allow_blob_public_access=False,
                enable_https_traffic_only=True,
            ),
        )
        made = ctx.arm.call(
            "storageAccounts/write",
            lambda: self._ops(ctx).begin_create(ctx.resource_group, self.name, body).result(),
        )
        return self._remember(ctx, made).id

    def delete(self, ctx: Context, resource_id: str) -> None:
        """The account and every container and blob in it."""
        ctx.arm.maybe(
            "storageAccounts/delete", lambda: self._ops(ctx).delete(ctx.resource_group, self.name)
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or "HTTPS only, TLS 1.2+, no public blob access"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"result_storage": f"az://{self.name}/{CONTAINER}"}


class _InAccount(Resource):
    """A child of the pool's storage account: the pool's exactly when the account is."""

    def __init__(self, name: str, account: str) -> None:
        super().__init__(name)
        self.account = account

    def _found(self, ctx: Context, got: Any) -> Found:
        ctx.facts[self.kind] = {"id": got.id}
        return Found(got.id, bool(ctx.facts.get(StorageAccount.kind, {}).get("owned")))

    def _get(self, ctx: Context) -> Any | None:
        """The child as ARM has it, or None."""
        raise NotImplementedError

    def find(self, ctx: Context) -> Found | None:
        if StorageAccount.kind not in ctx.facts:
            return None  # the account does not exist yet
        got = self._get(ctx)
        return None if got is None else self._found(ctx, got)

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        """The recorded child, the pool's while its account is (looked up first)."""
        if StorageAccount(self.account).find(ctx) is None:
            return None
        got = self._get(ctx)
        return None if got is None else self._found(ctx, got)


class ResultContainer(_InAccount):
    kind = "blob-container"

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("storage").blob_containers

    def _get(self, ctx: Context) -> Any | None:
        return ctx.arm.maybe(
            "blobServices/containers/read",
            lambda: self._ops(ctx).get(ctx.resource_group, self.account, self.name),
        )

    def create(self, ctx: Context) -> str:
        from azure.mgmt.storage import models as st

        body = st.BlobContainer(container_properties=st.ContainerProperties(public_access="None"))
        made = ctx.arm.call(
            "blobServices/containers/write",
            lambda: self._ops(ctx).create(ctx.resource_group, self.account, self.name, body),
        )
        return self._found(ctx, made).id

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe(
            "blobServices/containers/delete",
            lambda: self._ops(ctx).delete(ctx.resource_group, self.account, self.name),
        )


class LifecyclePolicy(_InAccount):
    """Results are deleted ``days`` after they were last written."""

    kind = "storage-lifecycle-policy"

    def __init__(self, account: str, days: int) -> None:
        super().__init__(POLICY, account)
        self.days = days

    def _ops(self, ctx: Context) -> Any:
        return ctx.arm.client("storage").management_policies

    def _get(self, ctx: Context) -> Any | None:
        return ctx.arm.maybe(
            "managementPolicies/read",
            lambda: self._ops(ctx).get(ctx.resource_group, self.account, POLICY),
        )

    def find(self, ctx: Context) -> Found | None:
        """Found only with this retention: another is planned again (a PUT replaces it)."""
        found = super().find(ctx)
        if found is None or _expiry_days(self._get(ctx)) != self.days:
            return None
        return found

    def create(self, ctx: Context) -> str:
        from azure.mgmt.storage import models as st

        rule = st.ManagementPolicyRule(
            name=RULE,
            enabled=True,
            type="Lifecycle",
            definition=st.ManagementPolicyDefinition(
                filters=st.ManagementPolicyFilter(
                    blob_types=["blockBlob"], prefix_match=[f"{CONTAINER}/"]
                ),
                actions=st.ManagementPolicyAction(
                    base_blob=st.ManagementPolicyBaseBlob(
                        delete=st.DateAfterModification(
                            days_after_modification_greater_than=self.days
                        )
                    )
                ),
            ),
        )
        body = st.ManagementPolicy(
            properties=st.ManagementPolicyProperties(policy=st.ManagementPolicySchema(rules=[rule]))
        )
        made = ctx.arm.call(
            "managementPolicies/write",
            lambda: self._ops(ctx).create_or_update(ctx.resource_group, self.account, POLICY, body),
        )
        return self._found(ctx, made).id

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.arm.maybe(
            "managementPolicies/delete",
            lambda: self._ops(ctx).delete(ctx.resource_group, self.account, POLICY),
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or f"results expire after {self.days} days"


def _expiry_days(policy: Any) -> float | None:
    for rule in policy.properties.policy.rules or []:
        delete = (
            rule.definition.actions.base_blob.delete if rule.definition.actions.base_blob else None
        )
        if rule.name == "pushpool-results-expire" and delete is not None:
            return delete.days_after_modification_greater_than
    return None


def result_resources(ctx: Context, days: int) -> list[Resource]:
    """The account, its container and policy, and the identity's access (in order)."""
    account = storage_account_name(ctx.pool, ctx.arm.subscription_id)
    return [
        StorageAccount(account),
        ResultContainer(CONTAINER, account),
        LifecyclePolicy(account, days),
        RoleAssignment(
            "results-writer", BLOB_CONTRIBUTOR_ROLE, "blob-container", "managed-identity"
        ),
    ]
