"""The pool's two IAM roles: task execution (pull images, write logs, read the pool's block
secrets) and task (flow code)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
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
    ) -> None:
        super().__init__(name)
        self.output, self.description = output, description
        self.managed, self.create_log_group = managed, create_log_group

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


def execution_role(name: str, log_group: str) -> Role:
    return Role(
        name,
        "execution_role_arn",
        "pushpool: lets ECS pull flow images, write run logs and read the pool's secrets",
        managed=(EXECUTION_MANAGED_POLICY,),
        create_log_group=log_group,
    )


def _document(raw: Any) -> Any:
    """A policy document as IAM returns it (boto3 decodes it; raw, it is URL-encoded JSON)."""
    if isinstance(raw, str):
        return json.loads(urllib.parse.unquote(raw))
    return raw


class InlinePolicy(Resource):
    """An inline policy of one of the pool's roles, kept as pushpool writes it now: a role
    provisioned by an older version (without the policy, or with another document) gets
    it on the next provisioning, and a re-run after that plans nothing. ``name`` is
    ``ROLE/POLICY``; removal deletes the policy only (the role goes on its own)."""

    kind = "iam-role-policy"

    def __init__(
        self, role: str, policy: str, document: Callable[[tuple[str, str, str]], dict[str, Any]]
    ) -> None:
        super().__init__(f"{role}/{policy}")
        self.role, self.policy, self.document = role, policy, document

    def _stored(self, ctx: Context) -> tuple[bool | None, Any]:
        """(whether the role is the pool's — None: no role yet —, the stored document)."""
        try:
            role = ctx.aws.call("iam", "get_role", RoleName=self.role)["Role"]
        except AwsError as exc:
            if exc.code in _GONE:
                return None, None
            raise
        if not ctx.owned(role.get("Tags")):
            return False, None
        try:
            found = ctx.aws.call(
                "iam", "get_role_policy", RoleName=self.role, PolicyName=self.policy
            )
        except AwsError as exc:
            if exc.code in _GONE:
                return True, None
            raise
        return True, _document(found["PolicyDocument"])

    def find(self, ctx: Context) -> Found | None:
        """Found when the policy holds the document wanted now (or the role is not the
        pool's: pushpool never changes it); None while it is missing or out of date."""
        owned, stored = self._stored(ctx)
        if owned is False:
            return Found(self.name, owned=False)
        if stored is None or stored != self.document(_where(ctx)):
            return None
        return Found(self.name, owned=True)

    def create(self, ctx: Context) -> str:
        """Write the policy (replacing an out-of-date document)."""
        ctx.aws.call(
            "iam",
            "put_role_policy",
            RoleName=self.role,
            PolicyName=self.policy,
            PolicyDocument=json.dumps(self.document(_where(ctx))),
        )
        return self.name

    def delete(self, ctx: Context, resource_id: str) -> None:
        ignore(
            _GONE,
            lambda: ctx.aws.call(
                "iam", "delete_role_policy", RoleName=self.role, PolicyName=self.policy
            ),
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        if found is not None and not found.owned:
            return f"role {self.role} is not pushpool's: grant it this policy yourself"
        if found is None and self._stored(ctx)[1] is not None:
            return f"{self.policy}: out of date, rewritten"
        return super().detail(ctx, found)


def read_secrets_grant(role: str, secret_prefix: str) -> InlinePolicy:
    """The execution role's ``GetSecretValue`` on the pool's block secrets only."""
    return InlinePolicy(
        role,
        "pushpool-read-block-secrets",
        lambda where: read_secrets_policy(*where, secret_prefix),
    )


def task_role(name: str) -> Role:
    return Role(name, "task_role_arn", "pushpool: the identity of flow code (no permissions)")
