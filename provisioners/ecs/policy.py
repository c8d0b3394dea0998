"""The least-privilege IAM policy the control plane needs to run an ECS pool.

The control plane uses its own identity (no access keys are created): attach this policy
to it. :func:`control_plane_policy` renders it for one pool from the ARNs provisioning
recorded; ``infra/aws/ecs-control-plane-policy.json`` is the same policy with
``${Partition}``, ``${Region}``, ``${AccountId}`` and ``${PoolSlug}`` placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioners.ecs.models import EcsPoolConfig
from provisioners.ecs.names import Names

ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"
PLACEHOLDERS = {
    "partition": "${Partition}",
    "region": "${Region}",
    "account": "${AccountId}",
}


@dataclass(frozen=True)
class PolicyScope:
    """What the policy grants access to."""

    partition: str
    region: str
    account: str
    cluster: str
    family_prefix: str
    roles: tuple[str, ...]
    log_group: str
    secret_prefix: str

    def arn(self, service: str, resource: str) -> str:
        return f"arn:{self.partition}:{service}:{self.region}:{self.account}:{resource}"

    @property
    def cluster_arn(self) -> str:
        return self.arn("ecs", f"cluster/{self.cluster}")


def _arn_parts(arn: str | None) -> tuple[str, str, str] | None:
    """``(partition, region, account)`` of an ARN, or ``None`` for a plain name."""
    if not arn or not arn.startswith("arn:"):
        return None
    parts = arn.split(":")
    return parts[1], parts[3], parts[4]


def scope_for(config: EcsPoolConfig, names: Names) -> PolicyScope:
    """The scope for a pool, from its recorded ARNs; placeholders for what is unknown."""
    partition, region, account = _arn_parts(config.cluster) or (
        PLACEHOLDERS["partition"],
        config.region or PLACEHOLDERS["region"],
        PLACEHOLDERS["account"],
    )
    cluster = (config.cluster or names.cluster).rsplit("/", 1)[-1]

    def role(arn: str | None, name: str) -> str:
        return arn or f"arn:{partition}:iam::{account}:role/{name}"

    own = (config.execution_role_arn, config.task_role_arn)

    return PolicyScope(
        partition=partition,
        region=region,
        account=account,
        cluster=cluster,
        family_prefix=names.family_prefix,
        roles=(
            role(config.execution_role_arn, names.execution_role),
            role(config.task_role_arn, names.task_role),
            *(r for r in config.allowed_role_arns if r not in own),
        ),
        log_group=config.log_group or names.log_group,
        secret_prefix=names.secret_prefix,
    )


def template_scope() -> PolicyScope:
    """The scope of ``infra/aws/ecs-control-plane-policy.json``."""
    names = Names(pool="${Pool}", slug="${PoolSlug}")
    return scope_for(EcsPoolConfig(), names)


def _statement(
    sid: str, actions: list[str], resources: list[str] | str, **extra: Any
) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def control_plane_policy(scope: PolicyScope) -> dict[str, Any]:
    on_cluster = {"ArnEquals": {"ecs:cluster": scope.cluster_arn}}
    tasks = scope.arn("ecs", f"task/{scope.cluster}/*")
    families = scope.arn("ecs", f"task-definition/{scope.family_prefix}*")
    return {
        "Version": "2012-10-17",
        "Statement": [
            _statement("RunPoolTasks", ["ecs:RunTask"], families, Condition=on_cluster),
            _statement(
                "TagAtCreation",
                ["ecs:TagResource"],
                [tasks, families],
                Condition={
                    "StringEquals": {"ecs:CreateAction": ["RunTask", "RegisterTaskDefinition"]}
                },
            ),
            _statement(
                "WatchAndStopPoolTasks",
                ["ecs:DescribeTasks", "ecs:StopTask"],
                tasks,
                Condition=on_cluster,
            ),
            _statement("ListPoolTasks", ["ecs:ListTasks"], "*", Condition=on_cluster),
            # These actions support no resource-level permissions: "*" is the only choice.
            _statement(
                "ManageTaskDefinitions",
                [
                    "ecs:RegisterTaskDefinition",
                    "ecs:ListTaskDefinitions",
                    "ecs:ListTaskDefinitionFamilies",
                    "ecs:DeregisterTaskDefinition",
                    "ecs:DeleteTaskDefinitions",
                ],
                "*",
            ),
            _statement(
                "PassPoolRoles",
                ["iam:PassRole"],
                list(scope.roles),
                Condition={"StringEquals": {"iam:PassedToService": ECS_TASKS_SERVICE}},
            ),
            _statement(
                "ReadRunLogs",
                ["logs:GetLogEvents"],
                scope.arn("logs", f"log-group:{scope.log_group}:log-stream:*"),
            ),
            _statement(
                "ManagePoolSecrets",
                [
                    "secretsmanager:CreateSecret",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:TagResource",
                    "secretsmanager:DeleteSecret",
                ],
                scope.arn("secretsmanager", f"secret:{scope.secret_prefix}*"),
            ),
            # ListSecrets supports no resource-level permissions: "*" is the only choice
            # (it lists names and metadata, never values).
            _statement("ListPoolSecrets", ["secretsmanager:ListSecrets"], "*"),
        ],
    }
