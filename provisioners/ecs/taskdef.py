"""Content-addressed task definitions.

A task definition holds only what a deployment decides (image, size, roles, command,
storage, logging, stop timeout, the ARNs of its block secrets), never a per-run value:
those travel as ``RunTask`` overrides. Its family is the pool's prefix plus a hash of that
content, so every run that needs the same definition finds it registered already, and a
change of job variables makes a new family instead of piling revisions onto one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from provisioners.ecs.aws import AwsClient
from provisioners.ecs.names import POOL_TAG, Names

log = logging.getLogger("pushpool.ecs")

CONTAINER = "flow"
LOG_STREAM_PREFIX = "pushpool"


@dataclass(frozen=True)
class Logs:
    """Where a task's output goes in CloudWatch Logs."""

    group: str
    region: str

    def stream(self, task_id: str) -> str:
        """The stream the awslogs driver writes a task's ``flow`` container to."""
        return f"{LOG_STREAM_PREFIX}/{CONTAINER}/{task_id}"


@dataclass(frozen=True)
class TaskDefinitionContent:
    """What goes into a task definition; the family and tags are derived from it."""

    image: str
    cpu: int
    memory: int
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    command: tuple[str, ...] | None = None
    ephemeral_storage_gib: int | None = None
    logs: Logs | None = None
    #: The container's ``stopTimeout``; unset leaves the key out (ECS's 30 s), so the
    #: digest of a definition without it is what it was before this field existed.
    stop_timeout_seconds: int | None = None
    #: ``(variable, Secrets Manager ARN)`` pairs: the container's ``secrets``. ARNs only,
    #: never values; empty leaves the key out (digests of older definitions unchanged).
    secrets: tuple[tuple[str, str], ...] = ()

    def container(self) -> dict[str, Any]:
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": self.image,
            "essential": True,
            # Container-level memory: legitimate on Fargate, and required by moto.
            "memory": self.memory,
        }
        if self.command is not None:
            container["command"] = list(self.command)
        if self.stop_timeout_seconds is not None:
            container["stopTimeout"] = self.stop_timeout_seconds
        if self.secrets:
            container["secrets"] = [{"name": k, "valueFrom": arn} for k, arn in self.secrets]
        if self.logs is not None:
            container["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.logs.group,
                    "awslogs-region": self.logs.region,
                    "awslogs-stream-prefix": LOG_STREAM_PREFIX,
                    "awslogs-create-group": "true",
                },
            }
        return container

    def definition(self) -> dict[str, Any]:
        """``RegisterTaskDefinition`` parameters, without family and tags."""
        body: dict[str, Any] = {
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": str(self.cpu),
            "memory": str(self.memory),
            "containerDefinitions": [self.container()],
        }
        if self.execution_role_arn:
            body["executionRoleArn"] = self.execution_role_arn
        if self.task_role_arn:
            body["taskRoleArn"] = self.task_role_arn
        if self.ephemeral_storage_gib is not None:
            body["ephemeralStorage"] = {"sizeInGiB": self.ephemeral_storage_gib}
        return body

    def digest(self) -> str:
        canonical = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def family_of(arn: str) -> str:
    """``arn:…:task-definition/FAMILY:REV`` -> ``FAMILY``."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def revision_of(arn: str) -> int:
    return int(arn.rsplit(":", 1)[-1])


class TaskDefinitions:
    """Registers a pool's task definitions once, reuses them, and prunes unused ones."""

    def __init__(self, aws: AwsClient, names: Names) -> None:
        self.aws = aws
        self.names = names
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def family(self, content: TaskDefinitionContent) -> str:
        return self.names.family(content.digest())

    def ensure(self, content: TaskDefinitionContent) -> str:
        """The ARN of an active task definition with ``content``, registering it if need be."""
        family = self.family(content)
        with self._lock:
            known = self._known.get(family)
        if known is not None:
            return known
        active = self.aws.list_task_definitions(family, "ACTIVE")
        arn = max(active, key=revision_of) if active else self._register(family, content)
        with self._lock:
            self._known[family] = arn
        return arn

    def _register(self, family: str, content: TaskDefinitionContent) -> str:
        body = {
            "family": family,
            **content.definition(),
            "tags": [{"key": POOL_TAG, "value": self.names.pool}],
        }
        arn = self.aws.register_task_definition(body)
        log.info("registered task definition %s", arn)
        return arn

    def forget(self, family: str) -> None:
        """Drop a cached ARN (it may have been deregistered elsewhere)."""
        with self._lock:
            self._known.pop(family, None)

    def prune(self, keep: set[str]) -> list[str]:
        """Deregister and delete this pool's revisions not in ``keep`` (families or ARNs).

        Returns the ARNs removed. Families of other pools are never touched.
        """
        removed: list[str] = []
        for family in self.aws.list_task_definition_families(self.names.family_prefix):
            if self.names.owns_family(family) and family not in keep:
                removed.extend(self._prune_family(family, keep))
        return removed

    def _prune_family(self, family: str, keep: set[str]) -> list[str]:
        self.forget(family)
        for arn in self.aws.list_task_definitions(family, "ACTIVE"):
            if arn not in keep:
                self.aws.deregister_task_definition(arn)
        inactive = [a for a in self.aws.list_task_definitions(family, "INACTIVE") if a not in keep]
        if inactive:
            for failure in self.aws.delete_task_definitions(inactive):
                log.warning("could not delete %s: %s", failure.get("arn"), failure.get("reason"))
        return inactive
