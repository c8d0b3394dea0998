"""From pool config, job variables and a submit request to a ``RunTask`` request.

The task definition gets what a deployment decides; the run's own values (run id, API
URL, run token, and the job's ``env``) travel only in ``containerOverrides``, so no
secret ever lands in a task definition, a tag or a log line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from provisioners import validation
from provisioners.base import SubmitRequest
from provisioners.ecs.models import EcsJobVariables, EcsPoolConfig
from provisioners.ecs.names import ATTEMPT_TAG, POOL_TAG, RUN_TAG, Names
from provisioners.ecs.taskdef import CONTAINER, Logs, TaskDefinitionContent
from provisioners.errors import NotAllowed, ProvisionerError

#: ECS limits: ``startedBy`` 36 characters, ``clientToken`` 64.
STARTED_BY_MAX = 36
CLIENT_TOKEN_MAX = 64
_STARTED_BY_CHARS = re.compile(r"[A-Za-z0-9_-]+")


def started_by(run_id: str) -> str:
    """The run id itself when ECS accepts it (a uuid does), else a digest of it."""
    if len(run_id) <= STARTED_BY_MAX and _STARTED_BY_CHARS.fullmatch(run_id):
        return run_id
    return hashlib.sha256(run_id.encode()).hexdigest()[:STARTED_BY_MAX]


def client_token(idempotency_key: str) -> str:
    if len(idempotency_key) <= CLIENT_TOKEN_MAX and idempotency_key.isascii():
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def job_variables(raw: dict[str, Any]) -> EcsJobVariables:
    """Validated job variables; errors name the field, never echo the values."""
    return validation.job_variables(EcsJobVariables, raw)


@dataclass(frozen=True)
class RunSpec:
    """Where and how a run's task runs, resolved from config and job variables."""

    cluster: str
    subnets: list[str]
    security_groups: list[str]
    assign_public_ip: bool
    capacity_provider: str
    content: TaskDefinitionContent

    @property
    def logs(self) -> Logs | None:
        return self.content.logs


def _required(value: Any, what: str, pool: str) -> Any:
    if not value:
        raise ProvisionerError(
            f"work pool {pool!r} has no {what}: run `pushpool work-pool provision-infra {pool}`"
            f" or set it in the pool config"
        )
    return value


def task_definition_content(
    config: EcsPoolConfig, job: EcsJobVariables, names: Names, region: str
) -> TaskDefinitionContent:
    try:
        config.check_job_variables(job)  # the pool's config may have changed since deploy
    except NotAllowed as exc:
        raise ProvisionerError(str(exc)) from exc
    image = job.image or config.image
    if not image:
        raise ProvisionerError("no image: set the job variable `image` or the pool's `image`")
    execution_role = job.execution_role_arn or config.execution_role_arn
    logs = None
    if job.cloudwatch_logs:
        if not execution_role:
            raise ProvisionerError(
                "CloudWatch logs need a task execution role: set `execution_role_arn` "
                "(provisioning does) or the job variable `cloudwatch_logs: false`"
            )
        logs = Logs(group=config.log_group or names.log_group, region=region)
    cpu, memory = job.size
    return TaskDefinitionContent(
        image=image,
        cpu=cpu,
        memory=memory,
        execution_role_arn=execution_role,
        task_role_arn=job.task_role_arn or config.task_role_arn,
        command=tuple(job.command) if job.command else None,
        ephemeral_storage_gib=job.ephemeral_storage_gib,
        stop_timeout_seconds=job.stop_timeout_seconds,
        logs=logs,
    )


def run_spec(config: EcsPoolConfig, job: EcsJobVariables, names: Names, region: str) -> RunSpec:
    pool = names.pool
    assign = job.assign_public_ip
    return RunSpec(
        cluster=_required(config.cluster, "cluster", pool),
        subnets=_required(job.subnets or config.subnets, "subnets", pool),
        security_groups=job.security_groups
        if job.security_groups is not None
        else config.security_groups,
        assign_public_ip=config.assign_public_ip if assign is None else assign,
        capacity_provider=job.capacity_provider,
        content=task_definition_content(config, job, names, region),
    )


def _tags(request: SubmitRequest, job: EcsJobVariables, pool: str) -> list[dict[str, str]]:
    ours = {POOL_TAG: pool, RUN_TAG: request.run_id, ATTEMPT_TAG: str(request.attempt)}
    return [{"key": k, "value": v} for k, v in {**job.tags, **ours}.items()]


def run_task_params(
    spec: RunSpec, task_definition_arn: str, request: SubmitRequest, job: EcsJobVariables, pool: str
) -> dict[str, Any]:
    """The ``RunTask`` request for one attempt of one run."""
    awsvpc: dict[str, Any] = {
        "subnets": spec.subnets,
        "assignPublicIp": "ENABLED" if spec.assign_public_ip else "DISABLED",
    }
    if spec.security_groups:
        awsvpc["securityGroups"] = spec.security_groups
    environment = {**job.env, **request.env}
    return {
        "cluster": spec.cluster,
        "taskDefinition": task_definition_arn,
        "count": 1,
        "startedBy": started_by(request.run_id),
        "clientToken": client_token(request.idempotency_key),
        "capacityProviderStrategy": [{"capacityProvider": spec.capacity_provider, "weight": 1}],
        "networkConfiguration": {"awsvpcConfiguration": awsvpc},
        "overrides": {
            "containerOverrides": [
                {
                    "name": CONTAINER,
                    "environment": [
                        {"name": k, "value": v} for k, v in sorted(environment.items())
                    ],
                }
            ]
        },
        "tags": _tags(request, job, pool),
    }
