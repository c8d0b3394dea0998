"""Every ARM operation the ``aci`` pool type calls (the names :class:`~provisioners.aci.arm.
ArmClient` calls carry), and the Azure RBAC permission each needs: who calls it (the control
plane, or the user provisioning from the CLI) and what for."""

from __future__ import annotations

ACI = "Microsoft.ContainerInstance/containerGroups"
IDENTITY_ASSIGN = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"

#: (operation, permission, what for) — what the control plane does to a pool's groups.
CONTROL_PLANE = (
    ("containerGroups/read", f"{ACI}/read", "find / adopt, the status GETs"),
    ("containerGroups/read (list)", f"{ACI}/read", "status pass (one list), sweep"),
    ("containerGroups/write", f"{ACI}/write", "submit: PUT with If-None-Match: *"),
    ("containerGroups/stop/action", f"{ACI}/stop/action", "cancel"),
    ("containerGroups/delete", f"{ACI}/delete", "teardown, sweep"),
    ("containerGroups/containers/logs/read", f"{ACI}/containers/logs/read", "log_tail"),
    ("(a PUT naming a user-assigned identity)", IDENTITY_ASSIGN, "submit, for that identity"),
    ("(a PUT naming subnet_ids)", SUBNET_JOIN, "submit, on each subnet"),
    (
        "Microsoft.ResourceGraph/resources (query)",
        "(none of its own: Resource Graph returns the rows the caller may read)",
        "status pass: instance states of up to 1,000 groups a call",
    ),
)
_AUTH = "Microsoft.Authorization"
_STORAGE = "Microsoft.Storage/storageAccounts"
#: (operation, permission, what for) — what ``--provision-infra`` / ``--deprovision`` do.
PROVISIONING = tuple(
    (f"{kind}/{verb}", f"{provider}/{verb}", why)
    for kind, provider, why in (
        ("resourceGroups", "Microsoft.Resources/subscriptions/resourceGroups", "the pool's group"),
        (
            "userAssignedIdentities",
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "the runs' identity",
        ),
        ("registries", "Microsoft.ContainerRegistry/registries", "the image registry"),
        ("roleDefinitions", f"{_AUTH}/roleDefinitions", "the control plane's custom role"),
        (
            "roleAssignments",
            f"{_AUTH}/roleAssignments",
            "AcrPull; Storage Blob Data Contributor on the result container; the custom"
            " role's assignments",
        ),
        ("storageAccounts", _STORAGE, "the result store's account"),
        ("blobServices/containers", f"{_STORAGE}/blobServices/containers", "the result container"),
        (
            "managementPolicies",
            f"{_STORAGE}/managementPolicies",
            "the lifecycle policy that expires results",
        ),
    )
    for verb in ("read", "write", "delete")
)


def table() -> str:
    """Both lists as text (for the setup notes and the README)."""
    rows = [("control plane", *r) for r in CONTROL_PLANE]
    rows += [("provisioning (CLI)", *r) for r in PROVISIONING]
    return "\n".join(f"{who}: {op} -> {perm} ({why})" for who, op, perm, why in rows)
