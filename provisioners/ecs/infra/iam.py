"""The pool's two IAM roles: task execution (pull images, write logs, read the pool's block
secrets) and task (flow code)."""

from __future__ import annotations

import json
from typing import Any

from provisioners.ecs.errors import AwsError
from provisioners.ecs.infra.base import Context, Found, Resource, ignore
from provisioners.ecs.names import POOL_TAG

_GONE = frozenset({"NoSuchEntity"})
EXECUTION_MANAGED_POLICY = "service-role/AmazonECSTaskExecutionRolePolicy"


def trust_policy(partition: str, region: str, account: str) -> dict[str, Any]:
    """ECS tasks of this account (and region) only may assume the role (no confused
    deputy: another account's task cannot be given it)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:ecs:{region}:{account}:*"},
                },
            }
        ],
    }


def create_log_group_policy(
    partition: str, region: str, account: str, log_group: str
) -> dict[str, Any]:
    """So the awslogs driver can create the pool's missing log group (and only that one,
    or groups under it) instead of failing the start."""
    base = f"arn:{partition}:logs:{region}:{account}:log-group:{log_group}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "logs:CreateLogGroup",
                "Resource": [base, f"{base}:*", f"{base}/*"],
            }
        ],
    }


def read_secrets_policy(partition: str, region: str, account: str, prefix: str) -> dict[str, Any]:
    """So ECS can read the pool's block secrets (named under ``prefix``) into its tasks,
    and no other secret."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:{partition}:secretsmanager:{region}:{account}:secret:{prefix}*",
            }
        ],
    }


def _where(ctx: Context) -> tuple[str, str, str]:
    """``(partition, region, account)`` of the caller's credentials."""
    arn = str(ctx.aws.call("sts", "get_caller_identity")["Arn"])
    parts = arn.split(":")
    return parts[1], ctx.aws.region, parts[4]


class Role(Resource):
    kind = "iam-role"

    def __init__(
        self,
        name: str,
        output: str,
        description: str,
        managed: tuple[str, ...] = (),
        create_log_group: str | None = None,
        read_secrets: str | None = None,
    ) -> None:
        super().__init__(name)
        self.output, self.description = output, description
        self.managed, self.create_log_group = managed, create_log_group
        self.read_secrets = read_secrets

    def find(self, ctx: Context) -> Found | None:
        try:
            role = ctx.aws.call("iam", "get_role", RoleName=self.name)["Role"]
        except AwsError as exc:
            if exc.code in _GONE:
                return None
            raise
        return Found(role["Arn"], ctx.owned(role.get("Tags")))

    def _inline(self, where: tuple[str, str, str]) -> dict[str, dict[str, Any]]:
        policies: dict[str, dict[str, Any]] = {}
        if self.create_log_group is not None:
            policies["pushpool-create-log-group"] = create_log_group_policy(
                *where, self.create_log_group
            )
        if self.read_secrets is not None:
            policies["pushpool-read-block-secrets"] = read_secrets_policy(*where, self.read_secrets)
        return policies

    def create(self, ctx: Context) -> str:
        where = _where(ctx)
        role = ctx.aws.call(
            "iam",
            "create_role",
            RoleName=self.name,
            AssumeRolePolicyDocument=json.dumps(trust_policy(*where)),
            Description=self.description,
            Tags=[{"Key": POOL_TAG, "Value": ctx.pool}],
        )["Role"]
        arn = str(role["Arn"])
        partition = arn.split(":")[1]
        for policy in self.managed:
            ctx.aws.call(
                "iam",
                "attach_role_policy",
                RoleName=self.name,
                PolicyArn=f"arn:{partition}:iam::aws:policy/{policy}",
            )
        for policy_name, document in self._inline(where).items():
            ctx.aws.call(
                "iam",
                "put_role_policy",
                RoleName=self.name,
                PolicyName=policy_name,
                PolicyDocument=json.dumps(document),
            )
        return arn

    def delete(self, ctx: Context, resource_id: str) -> None:
        attached = ctx.aws.pages(
            "iam", "list_attached_role_policies", "AttachedPolicies", RoleName=self.name
        )
        for policy in list(attached):
            ctx.aws.call(
                "iam", "detach_role_policy", RoleName=self.name, PolicyArn=policy["PolicyArn"]
            )
        for policy_name in list(
            ctx.aws.pages("iam", "list_role_policies", "PolicyNames", RoleName=self.name)
        ):
            ctx.aws.call("iam", "delete_role_policy", RoleName=self.name, PolicyName=policy_name)
        ignore(_GONE, lambda: ctx.aws.call("iam", "delete_role", RoleName=self.name))

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {self.output: resource_id}


def execution_role(name: str, log_group: str, secret_prefix: str) -> Role:
    return Role(
        name,
        "execution_role_arn",
        "pushpool: lets ECS pull flow images, write run logs and read the pool's secrets",
        managed=(EXECUTION_MANAGED_POLICY,),
        create_log_group=log_group,
        read_secrets=secret_prefix,
    )


def task_role(name: str) -> Role:
    return Role(name, "task_role_arn", "pushpool: the identity of flow code (no permissions)")
