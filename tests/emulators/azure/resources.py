"""The resources provisioning touches, stored as ARM serves them: resource groups,
user-assigned identities, container registries, role definitions and assignments.

Each PUT body is checked against the SDK model of its type (see :mod:`.validate`).
Deleting a resource group deletes everything in it, container groups included.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from emulators.azure.containers import Answer, arm_error
from emulators.azure.state import Azure
from emulators.azure.validate import check

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
BLOB_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BUILT_IN_ROLES = {ACR_PULL: "AcrPull", BLOB_CONTRIBUTOR: "Storage Blob Data Contributor"}
_ANY = r"[^/]+"
RG = rf"/subscriptions/{_ANY}/resourcegroups/{_ANY}"


def _models() -> list[tuple[str, str, Any]]:
    from azure.mgmt.authorization.v2022_04_01 import models as auth
    from azure.mgmt.containerregistry import models as acr
    from azure.mgmt.msi.v2024_11_30 import models as msi
    from azure.mgmt.resource.resources import models as res
    from azure.mgmt.storage import models as st

    account = RG + rf"/providers/microsoft\.storage/storageaccounts/{_ANY}"

    return [
        ("resourceGroups", RG, res.ResourceGroup),
        (
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            RG + rf"/providers/microsoft\.managedidentity/userassignedidentities/{_ANY}",
            msi.Identity,
        ),
        (
            "Microsoft.ContainerRegistry/registries",
            RG + rf"/providers/microsoft\.containerregistry/registries/{_ANY}",
            acr.Registry,
        ),
        ("Microsoft.Storage/storageAccounts", account, st.StorageAccountCreateParameters),
        (
            "Microsoft.Storage/storageAccounts/blobServices/containers",
            account + rf"/blobservices/default/containers/{_ANY}",
            st.BlobContainer,
        ),
        (
            "Microsoft.Storage/storageAccounts/managementPolicies",
            account + r"/managementpolicies/default",
            st.ManagementPolicy,
        ),
        (
            "Microsoft.Authorization/roleDefinitions",
            rf"(?P<scope>.*)/providers/microsoft\.authorization/roledefinitions/{_ANY}",
            auth.RoleDefinition,
        ),
        (
            "Microsoft.Authorization/roleAssignments",
            rf"(?P<scope>.*)/providers/microsoft\.authorization/roleassignments/{_ANY}",
            auth.RoleAssignmentCreateParameters,
        ),
    ]


class Resources:
    def __init__(self, azure: Azure) -> None:
        self.azure = azure
        self.models = _models()

    def _kind(self, path: str) -> tuple[str, Any] | None:
        for kind, pattern, model in self.models:
            if re.fullmatch(pattern, path, re.IGNORECASE):
                return kind, model
        return None

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, base: str) -> Answer:
        if method == "GET" and re.search(
            r"/providers/microsoft\.authorization/role(definitions|assignments)$", path, re.I
        ):
            return self._list(path, query)
        kind = self._kind(path)
        if kind is None:
            return arm_error(404, "InvalidResourceType", f"no emulated resource at {path}")
        key = path.lower()
        if method in ("GET", "HEAD"):
            found = self.azure.resources.get(key) or self._built_in(path)
            if found is None:
                return arm_error(404, "ResourceNotFound", f"The Resource '{path}' was not found.")
            return (200 if method == "GET" else 204), (found if method == "GET" else None), {}
        if method == "PUT":
            return self._put(kind, path, body)
        if method == "DELETE":
            return self._delete(key)
        return arm_error(405, "MethodNotAllowed", method)

    def _put(self, kind: tuple[str, Any], path: str, body: Any) -> Answer:
        name, model = kind
        _, errors = check(model, body)
        if errors:
            return arm_error(400, "InvalidRequestContent", "; ".join(errors))
        rg = re.match(RG, path, re.I)
        if name != "resourceGroups" and rg and rg.group(0).lower() not in self.azure.resources:
            return arm_error(404, "ResourceGroupNotFound", f"Resource group of {path} not found.")
        key = path.lower()
        # Role definitions answer 201 to an update too (their API's only success code);
        # a storage account's create and a management policy's PUT answer 200, never 201.
        status = 200 if key in self.azure.resources and "roleDefinitions" not in name else 201
        status = 200 if name.endswith(("storageAccounts", "managementPolicies")) else status
        stored = dict(body) | {"id": path, "name": path.rsplit("/", 1)[-1], "type": name}
        props = dict(stored.get("properties") or {})
        props.setdefault("provisioningState", "Succeeded")
        if name.endswith("userAssignedIdentities"):
            old = (self.azure.resources.get(key) or {}).get("properties", {})
            props |= {
                "principalId": old.get("principalId", str(uuid.uuid4())),
                "clientId": old.get("clientId", str(uuid.uuid4())),
                "tenantId": "00000000-0000-0000-0000-00000000cafe",
            }
        if name.endswith("registries"):
            props["loginServer"] = f"{stored['name'].lower()}.azurecr.io"
        if name.endswith("storageAccounts"):
            account = stored["name"]
            props["primaryEndpoints"] = {"blob": f"https://{account}.blob.core.windows.net/"}
        if name.endswith("roleAssignments"):
            props["scope"] = path.split("/providers/Microsoft.Authorization", 1)[0]
        stored["properties"] = props
        self.azure.resources[key] = stored
        return status, stored, {}

    def _delete(self, key: str) -> Answer:
        found = self.azure.resources.pop(key, None)
        if found is None:
            return 204, None, {}
        inside = key + "/"  # what is in it goes with it (a group's resources, an account's)
        for k in [k for k in self.azure.resources if k.startswith(inside)]:
            del self.azure.resources[k]
        for k in [k for k in self.azure.groups if k.startswith(inside)]:
            del self.azure.groups[k]
        return 200, None, {}

    def _built_in(self, path: str) -> dict[str, Any] | None:
        role_id = path.rsplit("/", 1)[-1]
        if "/roledefinitions/" not in path.lower() or role_id not in BUILT_IN_ROLES:
            return None
        return {
            "id": f"/providers/Microsoft.Authorization/roleDefinitions/{role_id}",
            "name": role_id,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {"roleName": BUILT_IN_ROLES[role_id], "type": "BuiltInRole"},
        }

    def _list(self, path: str, query: dict[str, str]) -> Answer:
        prefix = path.lower() + "/"
        values = [v for k, v in sorted(self.azure.resources.items()) if k.startswith(prefix)]
        wanted = re.search(r"roleName eq '([^']+)'", query.get("$filter", ""))
        if wanted:
            values = [v for v in values if v["properties"].get("roleName") == wanted.group(1)]
        return 200, {"value": values}, {}
