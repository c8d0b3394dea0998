"""The pool's two IAM roles: task execution (pull images, write logs) and task (flow code)."""

from __future__ import annotations

import json
from typing import Any

from provisioners.ecs.errors import AwsError
from provisioners.ecs.infra.base import Context, Found, Resource, ignore
from provisioners.ecs.names import POOL_TAG

_GONE = frozenset({"NoSuchEntity"})
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
EXECUTION_MANAGED_POLICY = "service-role/AmazonECSTaskExecutionRolePolicy"
#: So the awslogs driver can create a missing log group instead of failing the start.
CREATE_LOG_GROUP_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}],
}


class Role(Resource):
    kind = "iam-role"

    def __init__(
        self,
        name: str,
        output: str,
        description: str,
        managed: tuple[str, ...] = (),
        inline: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(name)
        self.output, self.description = output, description
        self.managed, self.inline = managed, inline or {}

    def find(self, ctx: Context) -> Found | None:
        try:
            role = ctx.aws.call("iam", "get_role", RoleName=self.name)["Role"]
        except AwsError as exc:
            if exc.code in _GONE:
                return None
            raise
        return Found(role["Arn"], ctx.owned(role.get("Tags")))

    def create(self, ctx: Context) -> str:
        role = ctx.aws.call(
            "iam",
            "create_role",
            RoleName=self.name,
            AssumeRolePolicyDocument=json.dumps(TRUST_POLICY),
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
        for policy_name, document in self.inline.items():
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


def execution_role(name: str) -> Role:
    return Role(
        name,
        "execution_role_arn",
        "pushpool: lets ECS pull flow images and write run logs",
        managed=(EXECUTION_MANAGED_POLICY,),
        inline={"pushpool-create-log-group": CREATE_LOG_GROUP_POLICY},
    )


def task_role(name: str) -> Role:
    return Role(name, "task_role_arn", "pushpool: the identity of flow code (no permissions)")
