"""IAM roles on ECS pools: a job variable names a role only if the pool's config (set by an
admin) allows it; the control plane may pass only those; the pool's roles trust ECS tasks
of its own account, and its execution role creates only the pool's log group."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.factories import image_deployment_body

from provisioners.ecs import EcsProvisioner
from provisioners.ecs.models import EcsJobVariables, EcsPoolConfig
from provisioners.ecs.names import Names
from provisioners.ecs.policy import control_plane_policy, scope_for
from provisioners.errors import NotAllowed, ProvisionerError

OWN = "arn:aws:iam::111122223333:role/pushpool-demo-task"
EXTRA = "arn:aws:iam::111122223333:role/etl-reader"
OTHER = "arn:aws:iam::111122223333:role/pushpool-other-task"


def config(**kw: Any) -> EcsPoolConfig:
    return EcsPoolConfig.model_validate({"region": "eu-west-1", "task_role_arn": OWN, **kw})


@pytest.mark.parametrize("variable", ["task_role_arn", "execution_role_arn"])
def test_a_role_not_in_the_pool_config_is_refused(variable: str) -> None:
    with pytest.raises(NotAllowed, match="allowed_role_arns") as refused:
        config().check_job_variables(EcsJobVariables.model_validate({variable: OTHER}))
    assert refused.value.field == variable
    allowing = config(allowed_role_arns=[EXTRA])
    allowing.check_job_variables(EcsJobVariables.model_validate({variable: EXTRA}))
    allowing.check_job_variables(EcsJobVariables.model_validate({"task_role_arn": OWN}))


def test_the_control_plane_may_pass_exactly_the_pools_roles() -> None:
    names = Names.for_pool("demo")
    policy = control_plane_policy(scope_for(config(allowed_role_arns=[EXTRA, OWN]), names))
    statement = next(s for s in policy["Statement"] if s["Sid"] == "PassPoolRoles")
    assert statement["Resource"][1:] == [OWN, EXTRA]
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def test_deploying_with_a_role_the_pool_does_not_allow_is_422(api: TestClient) -> None:
    cluster = "arn:aws:ecs:eu-west-1:123456789012:cluster/pushpool-ecs"
    pool_config = config(cluster=cluster).model_dump(exclude_unset=True)
    pool = {"name": "ecs", "type": "ecs", "config": pool_config}
    assert api.post("/api/work-pools", json=pool).status_code == 201
    body = image_deployment_body("ecs")
    body["job_variables"]["task_role_arn"] = OTHER
    r = api.post("/api/deployments", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "job_variables", "task_role_arn"]
    assert api.get("/api/deployments").json() == []
    allowed = {"config": {**pool["config"], "allowed_role_arns": [OTHER]}}
    assert api.patch("/api/work-pools/ecs", json=allowed).status_code == 200
    created = api.post("/api/deployments", json=body)
    assert created.status_code == 201, created.text


def test_submit_refuses_a_role_the_pool_no_longer_allows(
    make_provisioner: Callable[..., EcsProvisioner],
    request_for: Callable[..., Any],
    pool_config: dict[str, Any],
) -> None:
    other = pool_config["task_role_arn"].replace("pushpool-demo-task", "elsewhere")
    job = {"task_role_arn": other}
    with pytest.raises(ProvisionerError, match="not allowed on this pool"):
        make_provisioner().submit(request_for(job=job))
    ref = make_provisioner(config={"allowed_role_arns": [other]}).submit(request_for(job=job))
    assert ref.id


def _document(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


def test_the_pool_roles_trust_only_this_accounts_tasks(
    iam_account: None, no_default_vpc: None, aws: Any, sleeps: Any
) -> None:
    import boto3

    provisioner = EcsProvisioner("demo", {"region": "us-east-1"}, aws=aws, sleep=sleeps)
    provisioner.provision(provisioner.plan())
    iam = boto3.client("iam", region_name="us-east-1")
    account = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Account"]
    for role in ("pushpool-demo-execution", "pushpool-demo-task"):
        trust = _document(iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"])
        (statement,) = trust["Statement"]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
        assert statement["Condition"]["ArnLike"] == {
            "aws:SourceArn": f"arn:aws:ecs:us-east-1:{account}:*"
        }
    inline = iam.get_role_policy(
        RoleName="pushpool-demo-execution", PolicyName="pushpool-create-log-group"
    )
    (statement,) = _document(inline["PolicyDocument"])["Statement"]
    group = f"arn:aws:logs:us-east-1:{account}:log-group:/pushpool/demo"
    assert statement["Resource"] == [group, f"{group}:*", f"{group}/*"]
