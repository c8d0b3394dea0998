"""The control plane's least-privilege IAM policy, rendered per pool and kept in infra/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provisioners.ecs import EcsProvisioner
from provisioners.ecs.policy import control_plane_policy, template_scope

TEMPLATE = Path(__file__).parents[3] / "infra" / "aws" / "ecs-control-plane-policy.json"


def actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def test_the_infra_template_is_the_rendered_policy() -> None:
    assert json.loads(TEMPLATE.read_text()) == control_plane_policy(template_scope())


def test_the_policy_for_a_provisioned_pool() -> None:
    config = {
        "region": "eu-west-1",
        "cluster": "arn:aws:ecs:eu-west-1:111122223333:cluster/pushpool-demo",
        "execution_role_arn": "arn:aws:iam::111122223333:role/pushpool-demo-execution",
        "task_role_arn": "arn:aws:iam::111122223333:role/pushpool-demo-task",
        "log_group": "/pushpool/demo",
    }
    policy = EcsProvisioner("demo", config).control_plane_policy()
    text = json.dumps(policy)
    assert "${" not in text and "*:*" not in text
    assert actions(policy) == {
        "ecs:RunTask",
        "ecs:DescribeTasks",
        "ecs:StopTask",
        "ecs:ListTasks",
        "ecs:TagResource",
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DeleteTaskDefinitions",
        "ecs:ListTaskDefinitions",
        "ecs:ListTaskDefinitionFamilies",
        "iam:PassRole",
        "logs:GetLogEvents",
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:TagResource",
        "secretsmanager:DeleteSecret",
        "secretsmanager:ListSecrets",
    }
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["PassPoolRoles"]["Resource"] == [
        config["execution_role_arn"],
        config["task_role_arn"],
    ]
    assert statements["RunPoolTasks"]["Resource"] == (
        "arn:aws:ecs:eu-west-1:111122223333:task-definition/pushpool-demo-*"
    )
    assert statements["RunPoolTasks"]["Condition"] == {
        "ArnEquals": {"ecs:cluster": config["cluster"]}
    }
    assert statements["ReadRunLogs"]["Resource"] == (
        "arn:aws:logs:eu-west-1:111122223333:log-group:/pushpool/demo:log-stream:*"
    )
    assert statements["ManagePoolSecrets"]["Resource"] == (
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:pushpool/demo/*"
    )
    wildcard = {a for s in policy["Statement"] if s["Resource"] == "*" for a in s["Action"]}
    assert "iam:PassRole" not in wildcard and "ecs:RunTask" not in wildcard


def test_push_commands_for_the_pool_repository() -> None:
    uri = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/pushpool/demo"
    config = {"region": "eu-west-1", "ecr_repository_uri": uri}
    assert EcsProvisioner("demo", config).image_push_commands() == [
        "aws ecr get-login-password --region eu-west-1 | docker login --username AWS "
        "--password-stdin 111122223333.dkr.ecr.eu-west-1.amazonaws.com",
        f"docker build -f runner_image/Dockerfile -t {uri}:latest .",
        f"docker push {uri}:latest",
    ]
    assert EcsProvisioner("demo", {"region": "eu-west-1"}).image_push_commands() == []
