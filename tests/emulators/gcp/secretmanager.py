"""Secret Manager v1 in memory: the calls the cloud-run pool makes for block secrets
(create, add a version, list, delete, a secret's IAM policy). Requests are parsed with the
library's own types (``google-cloud-secret-manager``, ``google-iam-v1``); unknown fields
are a 400 as on Google."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulators.gcp.base import ApiError, not_found, parse

Json = dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Secret:
    body: Json
    versions: list[bytes] = field(default_factory=list)
    policy: Json = field(default_factory=lambda: {"version": 1, "bindings": []})


class SecretManager:
    def __init__(self) -> None:
        self.secrets: dict[str, Secret] = {}

    def _secret(self, name: str) -> Secret:
        if name not in self.secrets:
            raise not_found(f"Secret [{name}]")
        return self.secrets[name]

    def create_secret(self, parent: str, secret_id: str, raw: bytes) -> Json:
        from google.cloud import secretmanager_v1

        if not secret_id:
            raise ApiError(400, "secretId is required")
        body = json.loads(secretmanager_v1.Secret.to_json(parse(secretmanager_v1.Secret, raw)))
        if not body.get("replication"):
            raise ApiError(400, "Secret.replication is required")
        name = f"{parent}/secrets/{secret_id}"
        if name in self.secrets:
            raise ApiError(409, f"Secret [{name}] already exists.")
        body.update(name=name, createTime=_now())
        self.secrets[name] = Secret(body)
        return body

    def add_version(self, name: str, raw: bytes) -> Json:
        from google.cloud import secretmanager_v1

        request = parse(secretmanager_v1.AddSecretVersionRequest, raw)
        secret = self._secret(name)
        secret.versions.append(bytes(request.payload.data))
        number = len(secret.versions)
        return {"name": f"{name}/versions/{number}", "createTime": _now(), "state": "ENABLED"}

    def list_secrets(self, parent: str) -> list[Json]:
        return [s.body for n, s in sorted(self.secrets.items()) if n.startswith(f"{parent}/")]

    def delete_secret(self, name: str) -> Json:
        self._secret(name)
        del self.secrets[name]
        return {}

    def get_policy(self, name: str) -> Json:
        return self._secret(name).policy

    def set_policy(self, name: str, raw: bytes) -> Json:
        from google.iam.v1 import iam_policy_pb2
        from google.protobuf import json_format

        request = parse(iam_policy_pb2.SetIamPolicyRequest, raw)
        secret = self._secret(name)
        secret.policy = json_format.MessageToDict(request.policy)
        return secret.policy

    # -- for tests ---------------------------------------------------------------------
    def value(self, version: str) -> str:
        """The clear text of ``projects/P/secrets/S/versions/N``."""
        name, _, number = version.partition("/versions/")
        return self._secret(name).versions[int(number) - 1].decode()

    def readers(self, name: str, role: str) -> list[str]:
        bindings = self._secret(name).policy.get("bindings", [])
        return [m for b in bindings if b.get("role") == role for m in b.get("members", [])]
