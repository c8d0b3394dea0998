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


def test_secrets_no_deployment_references_are_pruned_and_retried(
    provisioner: EcsProvisioner,
    make_provisioner: Callable[..., EcsProvisioner],
    request_for: Request,
    boto: Callable[[str], Any],
    aws: Any,
    make_client_error: Any,
    tasks_pinned: None,
) -> None:
    sm = boto("secretsmanager")
    sm.create_secret(Name="pushpool/other/secret/x", SecretString="keep")
    provisioner.submit(with_secret(request_for(), MARKER, "secret/a"))
    provisioner.submit(with_secret(request_for(), MARKER, "secret/b"))
    provisioner.submit(with_secret(request_for(), MARKER, "secret/c"))

    def names() -> list[str]:
        return sorted(s["Name"] for s in sm.list_secrets()["SecretList"])

    refusal = make_client_error("InternalServiceError", "try later", status=500, op="DeleteSecret")
    aws.fail("delete_secret", refusal)
    assert provisioner.prune_secrets({"secret/a"}) == 1  # one of the two refused: kept
    assert len(names()) == 3
    assert provisioner.prune_secrets({"secret/a"}) == 1  # retried on the next pass
    assert names() == ["pushpool/demo/secret/a", "pushpool/other/secret/x"]
    assert provisioner.prune_secrets({"secret/a"}) == 0  # idempotent
    # referenced again: written again (not taken for still there), under a new ARN
    ref = provisioner.submit(with_secret(request_for(), MARKER, "secret/b"))
    definition = registered(boto, str(ref.data["task_definition_arn"]))
    (secret,) = definition["containerDefinitions"][0]["secrets"]
    assert sm.get_secret_value(SecretId=secret["valueFrom"])["SecretString"] == MARKER


def test_the_sweep_drops_a_secret_once_no_deployment_references_it(
    services: Services,
    pool_config: dict[str, Any],
    boto: Callable[[str], Any],
    tasks_pinned: None,
) -> None:
    """Through the service: kept while the run that uses it is PENDING (ECS reads it when
    it starts the task) and while the deployment references it; gone after the
    deployment drops the reference."""
    from support.blocks import dispatched_with_secret

    from service.deployments import DeploymentUpdate, update
    from service.states import StateType, set_state

    sm = boto("secretsmanager")
    run = dispatched_with_secret(services, "ecs", pool_config, MARKER)
    sweep = services.scheduler.reconciler.sweep_orphans

    def names() -> list[str]:
        return sorted(s["Name"] for s in sm.list_secrets()["SecretList"])

    assert names() == ["pushpool/secrets/secret/db-password"]
    assert run.deployment_id is not None
    update(services, run.deployment_id, DeploymentUpdate(job_variables={"env": {"MODE": "x"}}))
    sweep()
    assert names() == ["pushpool/secrets/secret/db-password"]  # its run has not started
    set_state(services.store, run.id, StateType.RUNNING, now=services.clock())
    sweep()
    assert names() == []
