"""Block secrets on ECS: Secrets Manager secrets under the pool's prefix, referenced by ARN
from the task definition, updated on rotation, removed at deprovision (moto)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from support.blocks import with_secret

from provisioners.base import SubmitRequest
from provisioners.ecs import EcsProvisioner
from provisioners.errors import ProvisionerError
from service.services import Services

MARKER = "marker-block-secret-5f0e2c"
ROTATED = "marker-rotated-secret-91ad"

Request = Callable[..., SubmitRequest]


def registered(boto: Callable[[str], Any], arn: str) -> dict[str, Any]:
    answer = boto("ecs").describe_task_definition(taskDefinition=arn)
    return dict(answer["taskDefinition"])


def test_the_task_definition_references_the_secret_by_arn_never_its_value(
    provisioner: EcsProvisioner,
    request_for: Request,
    boto: Callable[[str], Any],
    tasks_pinned: None,
) -> None:
    ref = provisioner.submit(with_secret(request_for(job={"env": {"MODE": "x"}}), MARKER))
    body = registered(boto, str(ref.data["task_definition_arn"]))
    assert MARKER not in json.dumps(body, default=str)
    (container,) = body["containerDefinitions"]
    (secret,) = container["secrets"]
    assert secret["name"] == "DB_PASSWORD"
    stored = boto("secretsmanager").get_secret_value(SecretId=secret["valueFrom"])
    assert stored["Name"] == "pushpool/demo/secret/db-password"
    assert stored["ARN"] == secret["valueFrom"] and stored["SecretString"] == MARKER
    task = boto("ecs").describe_tasks(cluster=provisioner.config.cluster, tasks=[ref.id])
    assert MARKER not in json.dumps(task["tasks"], default=str)  # not in the overrides


def test_rotation_reaches_the_next_run_through_the_same_definition(
    provisioner: EcsProvisioner,
    make_provisioner: Callable[..., EcsProvisioner],
    request_for: Request,
    boto: Callable[[str], Any],
    tasks_pinned: None,
) -> None:
    first = provisioner.submit(with_secret(request_for(), MARKER))
    again = provisioner.submit(with_secret(request_for(), MARKER))
    # A fresh control plane process (no memory of what was written) and a new value.
    rotated = make_provisioner().submit(with_secret(request_for(), ROTATED))
    definition = first.data["task_definition_arn"]
    assert again.data["task_definition_arn"] == rotated.data["task_definition_arn"] == definition
    sm = boto("secretsmanager")
    assert sm.get_secret_value(SecretId="pushpool/demo/secret/db-password")["SecretString"] == (
        ROTATED
    )
    versions = sm.list_secret_version_ids(SecretId="pushpool/demo/secret/db-password")
    assert len(versions["Versions"]) == 2  # the unchanged second run wrote nothing


def test_deprovision_removes_the_pools_secrets_and_no_other(
    provisioner: EcsProvisioner,
    request_for: Request,
    boto: Callable[[str], Any],
    tasks_pinned: None,
) -> None:
    sm = boto("secretsmanager")
    sm.create_secret(Name="pushpool/other/secret/x", SecretString="keep")
    sm.create_secret(Name="unrelated", SecretString="keep")
    provisioner.submit(with_secret(request_for(), MARKER))
    provisioner.deprovision()
    names = sorted(s["Name"] for s in sm.list_secrets()["SecretList"])
    assert names == ["pushpool/other/secret/x", "unrelated"]


def test_secrets_need_an_execution_role(
    make_provisioner: Callable[..., EcsProvisioner],
    request_for: Request,
    boto: Callable[[str], Any],
) -> None:
    provisioner = make_provisioner(config={"execution_role_arn": None})
    request = with_secret(request_for(job={"cloudwatch_logs": False}), MARKER)
    with pytest.raises(ProvisionerError, match="execution role") as caught:
        provisioner.submit(request)
    assert MARKER not in str(caught.value)
    assert boto("secretsmanager").list_secrets()["SecretList"] == []


def test_a_deployments_block_reference_reaches_the_task_as_an_arn_only(
    services: Services,
    pool_config: dict[str, Any],
    boto: Callable[[str], Any],
    tasks_pinned: None,
) -> None:
    """Through the service: deploy with ``{{ block:... }}`` on an ECS pool, dispatch,
    then search what AWS holds (task definition, task) for the value."""
    from support.blocks import dispatched_with_secret

    after = dispatched_with_secret(services, "ecs", pool_config, MARKER)
    definition = registered(boto, str(after.infra.data["task_definition_arn"]))
    task = boto("ecs").describe_tasks(cluster=pool_config["cluster"], tasks=[after.infra.id])
    assert MARKER not in json.dumps([definition, task["tasks"]], default=str)
    (secret,) = definition["containerDefinitions"][0]["secrets"]
    stored = boto("secretsmanager").get_secret_value(SecretId=secret["valueFrom"])
    assert (secret["name"], stored["SecretString"]) == ("DB_PASSWORD", MARKER)
