"""The Google APIs provisioning uses, behind one error-translating boundary.

Service Usage, Artifact Registry and Resource Manager through their client libraries
(REST transport); Cloud Storage (the result bucket) through ``google-cloud-storage``;
IAM service accounts through their REST API on google-auth's ``AuthorizedSession``
(google-cloud-iam's admin client speaks gRPC only). Same credentials and emulator rule
as :mod:`provisioners.cloud_run.gcp`. Long-running operations are waited for: what comes
next depends on them.
"""

from __future__ import annotations

import json
from typing import Any

from provisioners.cloud_run.errors import GcpError
from provisioners.cloud_run.gcp import (
    Resource,
    client_kwargs,
    credentials,
    emulator_url,
    guarded,
    to_dict,
)

IAM_URL = "https://iam.googleapis.com"
#: How long to wait for an API to be enabled or a repository to be made, seconds.
OPERATION_TIMEOUT = 600.0
#: Per-call deadline of a Cloud Storage call, seconds.
TIMEOUT = 60.0
Policy = dict[str, Any]


def _none_if_missing(operation: str, call: Any) -> Any:
    try:
        return guarded(operation, call)
    except GcpError as exc:
        if exc.not_found:
            return None
        raise


class ProvisioningClients:
    """Typed calls to the APIs that make a pool's infrastructure, made once each."""

    def __init__(self, project: str, region: str) -> None:
        self.project, self.region = project, region
        self._made: dict[str, Any] = {}

    def _client(self, key: str) -> Any:
        if key not in self._made:
            self._made[key] = guarded(f"{key} client", lambda: self._new(key))
        return self._made[key]

    def _new(self, key: str) -> Any:
        if key == "services":
            from google.cloud import service_usage_v1

            return service_usage_v1.ServiceUsageClient(**client_kwargs())
        if key == "registry":
            from google.cloud import artifactregistry_v1

            return artifactregistry_v1.ArtifactRegistryClient(**client_kwargs())
        if key == "projects":
            from google.cloud import resourcemanager_v3

            return resourcemanager_v3.ProjectsClient(**client_kwargs())
        if key == "storage":
            return _storage_client(self.project)
        from google.auth.transport.requests import AuthorizedSession

        return AuthorizedSession(credentials())

    # -- Service Usage -------------------------------------------------------------------
    def service_enabled(self, service: str) -> bool:
        name = f"projects/{self.project}/services/{service}"
        found = guarded(
            "serviceusage.services.get",
            lambda: self._client("services").get_service(request={"name": name}, retry=None),
        )
        return bool(to_dict(found).get("state") == "ENABLED")

    def enable_service(self, service: str) -> None:
        name = f"projects/{self.project}/services/{service}"
        guarded(
            "serviceusage.services.enable",
            lambda: (
                self._client("services")
                .enable_service(request={"name": name}, retry=None)
                .result(timeout=OPERATION_TIMEOUT)
            ),
        )

    def disable_service(self, service: str) -> None:
        """Disable, refusing (Google's check) if the service was used in the last 30 days."""
        name = f"projects/{self.project}/services/{service}"
        request = {"name": name, "check_if_service_has_usage": "CHECK"}
        guarded(
            "serviceusage.services.disable",
            lambda: (
                self._client("services")
                .disable_service(request=request, retry=None)
                .result(timeout=OPERATION_TIMEOUT)
            ),
        )

    # -- Artifact Registry ---------------------------------------------------------------
    def repository_name(self, repository: str) -> str:
        return f"projects/{self.project}/locations/{self.region}/repositories/{repository}"

    def get_repository(self, repository: str) -> Resource | None:
        name = self.repository_name(repository)
        found = _none_if_missing(
            "artifactregistry.repositories.get",
            lambda: self._client("registry").get_repository(name=name, retry=None),
        )
        return None if found is None else to_dict(found)

    def create_repository(self, repository: str, labels: dict[str, str], about: str) -> None:
        body = {"format_": "DOCKER", "labels": labels, "description": about}
        parent = f"projects/{self.project}/locations/{self.region}"
        guarded(
            "artifactregistry.repositories.create",
            lambda: (
                self._client("registry")
                .create_repository(
                    parent=parent, repository=body, repository_id=repository, retry=None
                )
                .result(timeout=OPERATION_TIMEOUT)
            ),
        )

    def delete_repository(self, repository: str) -> None:
        name = self.repository_name(repository)
        _none_if_missing(
            "artifactregistry.repositories.delete",
            lambda: (
                self._client("registry")
                .delete_repository(name=name, retry=None)
                .result(timeout=OPERATION_TIMEOUT)
            ),
        )

    # -- Cloud Storage: the result bucket ------------------------------------------------
    def _bucket(self, bucket: str) -> Any:
        return self._client("storage").bucket(bucket, user_project=None)

    def get_bucket(self, bucket: str) -> Resource | None:
        """The bucket's resource (JSON API field names), or None if there is none."""
        found = _none_if_missing(
            "storage.buckets.get",
            lambda: self._client("storage").get_bucket(bucket, timeout=TIMEOUT, retry=None),
        )
        return None if found is None else dict(found._properties)

    def create_bucket(
        self, bucket: str, labels: dict[str, str], expire_days: int, prefix: str
    ) -> None:
        """Create a private bucket in the pool's region: uniform bucket-level access,
        public access prevention enforced, Google-managed encryption (no KMS key), and
        objects under ``prefix`` deleted ``expire_days`` after they were written."""

        def create() -> None:
            made = self._bucket(bucket)
            made.labels = labels
            made.iam_configuration.uniform_bucket_level_access_enabled = True
            made.iam_configuration.public_access_prevention = "enforced"
            made.add_lifecycle_delete_rule(age=expire_days, matches_prefix=[prefix])
            made.create(location=self.region, timeout=TIMEOUT, retry=None)

        guarded("storage.buckets.insert", create)

    def delete_bucket(self, bucket: str) -> None:
        """Delete every object in the bucket (every page), then the bucket; gone is fine."""

        def empty_then_delete() -> None:
            client, target = self._client("storage"), self._bucket(bucket)
            for blob in client.list_blobs(target, timeout=TIMEOUT, retry=None):
                blob.delete(timeout=TIMEOUT, retry=None)
            target.delete(timeout=TIMEOUT, retry=None)

        _none_if_missing("storage.buckets.delete", empty_then_delete)

    def bucket_policy(self, bucket: str) -> Policy:
        policy = guarded(
            "storage.buckets.getIamPolicy",
            lambda: self._bucket(bucket).get_iam_policy(
                requested_policy_version=3, timeout=TIMEOUT, retry=None
            ),
        )
        return {
            "version": policy.version,
            "etag": policy.etag,
            "bindings": [
                {"role": b["role"], "members": sorted(b["members"])} for b in policy.bindings
            ],
        }

    def set_bucket_policy(self, bucket: str, policy: Policy) -> None:
        def write() -> None:
            from google.api_core.iam import Policy as IamPolicy

            body = IamPolicy(etag=policy.get("etag"), version=policy.get("version") or 1)
            body.bindings = [
                {"role": b["role"], "members": set(b["members"])} for b in policy["bindings"]
            ]
            self._bucket(bucket).set_iam_policy(body, timeout=TIMEOUT, retry=None)

        guarded("storage.buckets.setIamPolicy", write)

    # -- Resource Manager: the project's IAM policy -----------------------------------------
    def project_policy(self) -> Policy:
        resource = f"projects/{self.project}"
        policy = guarded(
            "resourcemanager.projects.getIamPolicy",
            lambda: self._client("projects").get_iam_policy(
                request={"resource": resource, "options": {"requested_policy_version": 3}},
                retry=None,
            ),
        )
        return _policy_dict(policy)

    def set_project_policy(self, policy: Policy) -> None:
        """Write the project's policy, conditions kept (version 3 when any binding has one,
        as IAM requires)."""
        from google.iam.v1 import policy_pb2
        from google.type import expr_pb2

        def binding(b: dict[str, Any]) -> Any:
            if b.get("condition"):
                condition = expr_pb2.Expr(**b["condition"])
                return policy_pb2.Binding(role=b["role"], members=b["members"], condition=condition)
            return policy_pb2.Binding(role=b["role"], members=b["members"])

        conditional = any(b.get("condition") for b in policy["bindings"])
        body = policy_pb2.Policy(
            version=3 if conditional else policy.get("version", 1),
            etag=policy.get("etag", b""),
            bindings=[binding(b) for b in policy["bindings"]],
        )
        resource = f"projects/{self.project}"
        guarded(
            "resourcemanager.projects.setIamPolicy",
            lambda: self._client("projects").set_iam_policy(
                request={"resource": resource, "policy": body}, retry=None
            ),
        )

    # -- IAM: service accounts (REST) ----------------------------------------------------
    def _iam(self, method: str, path: str, operation: str, body: Any = None) -> Any:
        url = f"{emulator_url() or IAM_URL}/v1/{path}"
        session = self._client("iam")
        response = guarded(operation, lambda: session.request(method, url, json=body, timeout=60))
        if response.status_code >= 400:
            raise _iam_error(response, operation)
        return response.json() if response.content else {}

    def account_path(self, email: str) -> str:
        return f"projects/{self.project}/serviceAccounts/{email}"

    def get_account(self, email: str) -> Resource | None:
        try:
            found: Resource = self._iam("GET", self.account_path(email), "iam.serviceAccounts.get")
        except GcpError as exc:
            if exc.not_found:
                return None
            raise
        return found

    def create_account(self, account_id: str, display_name: str, description: str) -> str:
        body = {
            "accountId": account_id,
            "serviceAccount": {"displayName": display_name, "description": description},
        }
        created = self._iam(
            "POST", f"projects/{self.project}/serviceAccounts", "iam.serviceAccounts.create", body
        )
        return str(created["email"])

    def delete_account(self, email: str) -> None:
        try:
            self._iam("DELETE", self.account_path(email), "iam.serviceAccounts.delete")
        except GcpError as exc:
            if not exc.not_found:
                raise

    def account_policy(self, email: str) -> Policy:
        policy: Policy = self._iam(
            "POST",
            f"{self.account_path(email)}:getIamPolicy",
            "iam.serviceAccounts.getIamPolicy",
            {},
        )
        policy.setdefault("bindings", [])
        return policy

    def set_account_policy(self, email: str, policy: Policy) -> None:
        self._iam(
            "POST",
            f"{self.account_path(email)}:setIamPolicy",
            "iam.serviceAccounts.setIamPolicy",
            {"policy": policy},
        )


def _storage_client(project: str) -> Any:
    """A Cloud Storage client for the project's credentials (the emulator's, in tests)."""
    from google.cloud import storage  # type: ignore[attr-defined]  # untyped

    url = emulator_url()
    options = {"api_endpoint": url} if url else None
    return storage.Client(project=project, credentials=credentials(), client_options=options)


def _policy_dict(policy: Any) -> Policy:
    """A project policy as a dict; a binding's condition is kept (``title``,
    ``description``, ``expression``), so writing the policy back never drops one."""

    def binding(b: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"role": b.role, "members": list(b.members)}
        if b.HasField("condition"):
            c = b.condition
            out["condition"] = {
                "title": c.title,
                "description": c.description,
                "expression": c.expression,
            }
        return out

    return {
        "version": policy.version,
        "etag": policy.etag,
        "bindings": [binding(b) for b in policy.bindings],
    }


def _iam_error(response: Any, operation: str) -> GcpError:
    try:
        error = json.loads(response.text).get("error", {})
    except ValueError:
        error = {}
    status = int(error.get("code") or response.status_code)
    message = " ".join(str(error.get("message") or response.reason or "").split())
    name = error.get("status", "")
    reasons = [d.get("reason") for d in error.get("details", []) if d.get("reason")]
    detail = f" ({reasons[0]})" if reasons else ""
    return GcpError(
        f"Google Cloud {operation} failed: {status} {name}{detail}: {message}",
        status=status,
        operation=operation,
        reason=reasons[0] if reasons else "",
    )
