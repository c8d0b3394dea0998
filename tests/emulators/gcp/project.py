"""What provisioning touches in a project: enabled APIs (Service Usage), IAM service
accounts and their policies, the project's IAM policy (Resource Manager), Artifact
Registry repositories. Request bodies are parsed with the client libraries' own types."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from emulators.gcp.base import ApiError, not_found, parse

Json = dict[str, Any]


class Policies:
    """IAM policies with etags: a write with a stale etag is refused (409 ABORTED)."""

    def __init__(self) -> None:
        self.policies: dict[str, Json] = {}
        self._versions = itertools.count(1)

    def get(self, resource: str) -> Json:
        policy = self.policies.setdefault(resource, {"version": 1, "bindings": []})
        policy.setdefault("etag", self._etag())
        return json.loads(json.dumps(policy))

    def set(self, resource: str, raw: bytes) -> Json:
        from google.iam.v1 import iam_policy_pb2
        from google.protobuf import json_format

        request = parse(iam_policy_pb2.SetIamPolicyRequest, raw)
        current = self.get(resource)
        given = base64.b64encode(request.policy.etag).decode()
        if request.policy.etag and given != current["etag"]:
            raise ApiError(409, "There were concurrent policy changes", "ABORTED")
        new = json.loads(
            json_format.MessageToJson(request.policy, preserving_proto_field_name=False)
        )
        new.setdefault("bindings", [])
        if any("condition" in b for b in new["bindings"]) and new.get("version", 1) < 3:
            # as IAM answers: conditional role bindings need policy version 3
            raise ApiError(400, "Conditions require a policy version of 3", "INVALID_ARGUMENT")
        new["etag"] = self._etag()
        self.policies[resource] = new
        return self.get(resource)

    def _etag(self) -> str:
        return base64.b64encode(f"v{next(self._versions)}".encode()).decode()


class Project:
    def __init__(self, project: str) -> None:
        self.project = project
        self.services: dict[str, str] = {}
        self.accounts: dict[str, Json] = {}
        self.repositories: dict[str, Json] = {}
        self.policies = Policies()
        self._ops = itertools.count(1)

    def _operation(self, type_url: str, response: Json, prefix: str = "operations") -> Json:
        return {
            "name": f"{prefix}/op-{next(self._ops)}",
            "done": True,
            "response": {"@type": type_url, **response},
        }

    # -- Service Usage -------------------------------------------------------------------
    def service(self, name: str) -> Json:
        project, service = name.split("/services/")
        state = self.services.get(service, "DISABLED")
        return {"name": name, "parent": project, "state": state}

    def set_service(self, name: str, raw: bytes, enable: bool) -> Json:
        from google.cloud import service_usage_v1

        kind = (
            service_usage_v1.EnableServiceRequest
            if enable
            else (service_usage_v1.DisableServiceRequest)
        )
        parse(kind, raw)
        service = name.split("/services/")[1]
        self.services[service] = "ENABLED" if enable else "DISABLED"
        verb = "Enable" if enable else "Disable"
        type_url = f"type.googleapis.com/google.api.serviceusage.v1.{verb}ServiceResponse"
        return self._operation(type_url, {"service": self.service(name)})

    # -- IAM service accounts ------------------------------------------------------------
    def create_account(self, raw: bytes) -> Json:
        from google.cloud import iam_admin_v1

        request = parse(iam_admin_v1.CreateServiceAccountRequest, raw)
        email = f"{request.account_id}@{self.project}.iam.gserviceaccount.com"
        if email in self.accounts:
            raise ApiError(409, f"Service account {request.account_id} already exists")
        self.accounts[email] = {
            "name": f"projects/{self.project}/serviceAccounts/{email}",
            "projectId": self.project,
            "email": email,
            "uniqueId": str(100000 + len(self.accounts)),
            "displayName": request.service_account.display_name,
            "description": request.service_account.description,
        }
        return self.accounts[email]

    def account(self, email: str) -> Json:
        if email not in self.accounts:
            raise not_found(f"Service account {email}")
        return self.accounts[email]

    def delete_account(self, email: str) -> Json:
        self.account(email)
        del self.accounts[email]
        self.policies.policies.pop(f"serviceAccounts/{email}", None)
        return {}

    def account_policy(self, email: str, raw: bytes, write: bool) -> Json:
        from google.iam.v1 import iam_policy_pb2

        self.account(email)
        if write:
            return self.policies.set(f"serviceAccounts/{email}", raw)
        parse(iam_policy_pb2.GetIamPolicyRequest, raw)
        return self.policies.get(f"serviceAccounts/{email}")

    # -- Resource Manager ----------------------------------------------------------------
    def project_policy(self, raw: bytes, write: bool) -> Json:
        from google.iam.v1 import iam_policy_pb2

        if write:
            return self.policies.set(f"projects/{self.project}", raw)
        parse(iam_policy_pb2.GetIamPolicyRequest, raw)
        return self.policies.get(f"projects/{self.project}")

    # -- Artifact Registry ---------------------------------------------------------------
    def create_repository(self, parent: str, repository_id: str, raw: bytes) -> Json:
        from google.cloud import artifactregistry_v1

        repository = parse(artifactregistry_v1.Repository, raw)
        name = f"{parent}/repositories/{repository_id}"
        if name in self.repositories:
            raise ApiError(409, f"Repository {repository_id} already exists")
        body = json.loads(artifactregistry_v1.Repository.to_json(repository))
        body["name"] = name
        self.repositories[name] = body
        type_url = "type.googleapis.com/google.devtools.artifactregistry.v1.Repository"
        return self._operation(type_url, body, f"{parent}/operations")

    def repository(self, name: str) -> Json:
        if name not in self.repositories:
            raise not_found(f"Repository {name}")
        return self.repositories[name]

    def delete_repository(self, name: str) -> Json:
        self.repository(name)
        del self.repositories[name]
        parent = name.split("/repositories/")[0]
        return self._operation(
            "type.googleapis.com/google.protobuf.Empty", {}, f"{parent}/operations"
        )

    def snapshot(self) -> Json:
        """Everything provisioning may touch, to compare before and after."""
        return {
            "services": sorted(s for s, state in self.services.items() if state == "ENABLED"),
            "accounts": sorted(self.accounts),
            "repositories": sorted(self.repositories),
            "policies": {
                k: sorted((b["role"], sorted(b["members"])) for b in v.get("bindings", []))
                for k, v in self.policies.policies.items()
                if v.get("bindings")
            },
        }
