"""The one boundary between the ECS pool type and boto3.

:class:`AwsClient` creates one boto3 client per service, lazily, from a process-wide
session that follows boto3's own rules: the default credential chain, the configured region and
``AWS_ENDPOINT_URL`` (so the same code talks to AWS or to a moto server). Every call goes
through :meth:`AwsClient.call`, which turns botocore's exceptions into
:class:`~provisioners.ecs.errors.AwsError` (a ``ProvisionerError``). boto3 is imported
on first use, never at import of this module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypedDict

from provisioners.ecs.errors import AwsError, from_botocore_error, from_client_error
from provisioners.errors import ProvisionerError

Service = Literal["ecs", "ec2", "iam", "ecr", "logs", "sts", "s3", "secretsmanager"]
#: DescribeTasks takes at most this many tasks; DeleteTaskDefinitions at most 10.
DESCRIBE_BATCH = 100
DELETE_BATCH = 10


class EcsTag(TypedDict):
    key: str
    value: str


class EcsContainer(TypedDict, total=False):
    name: str
    exitCode: int
    reason: str
    lastStatus: str


class EcsTask(TypedDict, total=False):
    taskArn: str
    clusterArn: str
    taskDefinitionArn: str
    lastStatus: str
    desiredStatus: str
    stopCode: str
    stoppedReason: str
    startedBy: str
    createdAt: Any
    containers: list[EcsContainer]
    tags: list[EcsTag]


class EcsFailure(TypedDict, total=False):
    arn: str
    reason: str
    detail: str


class TaskPage(TypedDict):
    tasks: list[EcsTask]
    failures: list[EcsFailure]


_session: Any = None
_session_lock = threading.RLock()


def _shared_session() -> Any:
    """One boto3 session per process: credentials resolved and service models loaded once.

    boto3 sessions are not thread-safe, so clients are made under ``_session_lock``.
    """
    global _session
    with _session_lock:
        if _session is None:
            import boto3

            _session = boto3.session.Session()
        return _session


class AwsClient:
    """Typed, error-translating access to the AWS APIs the ECS pool type uses."""

    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------
    @property
    def region(self) -> str:
        region = self._region or _shared_session().region_name
        if not region:
            raise ProvisionerError(
                "no AWS region: set the pool's config.region, AWS_DEFAULT_REGION or a profile"
            )
        return str(region)

    def _new_client(self, service: Service) -> Any:
        """Make the boto3 client for ``service`` (the seam tests wrap)."""
        session = _shared_session()
        with _session_lock:
            return session.client(service, region_name=self.region)

    def client(self, service: Service) -> Any:
        """The boto3 client for ``service``, made on first use and kept."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._new_client(service)
            return self._clients[service]

    def call(self, service: Service, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (boto3's snake_case name); AWS errors become ``AwsError``."""
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as NetworkError

        label = f"{service}:{operation}"
        try:
            result: dict[str, Any] = getattr(self.client(service), operation)(**params)
        except ClientError as exc:
            raise from_client_error(exc, label) from exc
        except BotoCoreError as exc:
            network = isinstance(exc, NetworkError | HTTPClientError)
            raise from_botocore_error(exc, label, network=network) from exc
        return result

    def pages(self, service: Service, operation: str, key: str, **params: Any) -> Iterator[Any]:
        """Every item under ``key`` across the pages of ``operation``."""
        token_in, token_out = _PAGE_TOKENS.get(operation, ("nextToken", "nextToken"))
        while True:
            page = self.call(service, operation, **params)
            yield from page.get(key, [])
            token = page.get(token_out)
            if not token:
                return
            params = {**params, token_in: token}

    # -- ECS ---------------------------------------------------------------------------
    def run_task(self, params: dict[str, Any]) -> TaskPage:
        page = self.call("ecs", "run_task", **params)
        return {"tasks": page.get("tasks", []), "failures": page.get("failures", [])}

    def describe_tasks(self, cluster: str, arns: Sequence[str]) -> TaskPage:
        """Tasks (with tags) and failures, in batches DescribeTasks accepts."""
        result: TaskPage = {"tasks": [], "failures": []}
        for start in range(0, len(arns), DESCRIBE_BATCH):
            batch = list(arns[start : start + DESCRIBE_BATCH])
            page = self.call(
                "ecs", "describe_tasks", cluster=cluster, tasks=batch, include=["TAGS"]
            )
            result["tasks"].extend(page.get("tasks", []))
            result["failures"].extend(page.get("failures", []))
        return result

    def list_tasks(
        self, cluster: str, *, started_by: str | None = None, desired_status: str | None = None
    ) -> list[str]:
        params: dict[str, Any] = {"cluster": cluster}
        if started_by is not None:
            params["startedBy"] = started_by
        if desired_status is not None:
            params["desiredStatus"] = desired_status
        return list(self.pages("ecs", "list_tasks", "taskArns", **params))

    def stop_task(self, cluster: str, arn: str, reason: str) -> None:
        self.call("ecs", "stop_task", cluster=cluster, task=arn, reason=reason)

    def register_task_definition(self, body: dict[str, Any]) -> str:
        page = self.call("ecs", "register_task_definition", **body)
        return str(page["taskDefinition"]["taskDefinitionArn"])

    def list_task_definitions(self, family: str, status: str) -> list[str]:
        return list(
            self.pages(
                "ecs",
                "list_task_definitions",
                "taskDefinitionArns",
                familyPrefix=family,
                status=status,
            )
        )

    def list_task_definition_families(self, prefix: str) -> list[str]:
        return list(
            self.pages(
                "ecs",
                "list_task_definition_families",
                "families",
                familyPrefix=prefix,
                status="ALL",
            )
        )

    def deregister_task_definition(self, arn: str) -> None:
        self.call("ecs", "deregister_task_definition", taskDefinition=arn)

    def delete_task_definitions(self, arns: Sequence[str]) -> list[EcsFailure]:
        failures: list[EcsFailure] = []
        for start in range(0, len(arns), DELETE_BATCH):
            batch = list(arns[start : start + DELETE_BATCH])
            page = self.call("ecs", "delete_task_definitions", taskDefinitions=batch)
            failures.extend(page.get("failures", []))
        return failures

    # -- Secrets Manager (a pool's block secrets) ------------------------------------
    def put_secret_value(self, name: str, value: str) -> str:
        """A new current version of secret ``name``; its ARN. ``AwsError`` with code
        ``ResourceNotFoundException`` when the secret does not exist."""
        page = self.call("secretsmanager", "put_secret_value", SecretId=name, SecretString=value)
        return str(page["ARN"])

    def create_secret(self, name: str, value: str, tags: dict[str, str]) -> str:
        """Create secret ``name`` holding ``value``; its ARN."""
        page = self.call(
            "secretsmanager",
            "create_secret",
            Name=name,
            SecretString=value,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        return str(page["ARN"])

    def list_secrets(self, prefix: str) -> dict[str, str]:
        """``name -> ARN`` of the secrets whose name starts with ``prefix``."""
        found = self.pages(
            "secretsmanager",
            "list_secrets",
            "SecretList",
            Filters=[{"Key": "name", "Values": [prefix]}],
        )
        return {
            str(s["Name"]): str(s["ARN"])
            for s in found
            if str(s.get("Name", "")).startswith(prefix)
        }

    def delete_secret(self, arn: str) -> None:
        """Delete a secret at once (no recovery window: it is the control plane's copy)."""
        self.call("secretsmanager", "delete_secret", SecretId=arn, ForceDeleteWithoutRecovery=True)


#: Operations whose pagination tokens are not ``nextToken``: (request, response) names.
_PAGE_TOKENS: dict[str, tuple[str, str]] = {
    "list_attached_role_policies": ("Marker", "Marker"),
    "list_role_policies": ("Marker", "Marker"),
    "describe_vpcs": ("NextToken", "NextToken"),
    "describe_subnets": ("NextToken", "NextToken"),
    "describe_security_groups": ("NextToken", "NextToken"),
    "describe_route_tables": ("NextToken", "NextToken"),
    "describe_internet_gateways": ("NextToken", "NextToken"),
    "list_secrets": ("NextToken", "NextToken"),
}


__all__ = ["AwsClient", "AwsError", "EcsContainer", "EcsFailure", "EcsTag", "EcsTask", "TaskPage"]
