"""Task definition content of the ECS pool type: what is registered and how it is named."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from provisioners.base import SubmitRequest
from provisioners.ecs import EcsProvisioner
from provisioners.ecs.names import Names
from provisioners.ecs.taskdef import Logs, TaskDefinitionContent, TaskDefinitions
from provisioners.errors import ProvisionerError

Boto = Callable[[str], Any]

CONTENT = TaskDefinitionContent(
    image="repo/flows:1",
    cpu=512,
    memory=1024,
    execution_role_arn="arn:aws:iam::123456789012:role/x",
    command=("python", "-m", "flow"),
    ephemeral_storage_gib=30,
    logs=Logs("/pushpool/demo", "us-east-1"),
)


def with_stop_timeout(seconds: int | None) -> TaskDefinitionContent:
    return replace(CONTENT, stop_timeout_seconds=seconds)


def registered(boto: Boto, arn: str) -> dict[str, Any]:
    (container,) = boto("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"][
        "containerDefinitions"
    ]
    return dict(container)


def test_an_unset_stop_timeout_changes_no_existing_digest() -> None:
    """Digests from before ``stop_timeout_seconds`` existed: deployed families stay valid."""
    assert with_stop_timeout(None).digest() == (
        "b6da58f2a6fbb01016bf53efcf80a2d6700b687e547fa42c39e3a0e5dd1f7c6e"
    )
    assert TaskDefinitionContent(image="repo/flows:1", cpu=256, memory=512).digest() == (
        "ee0e87fed159967c1ba849b48b042d03347c03358cc8694a1ab3aa5e9ea9a324"
    )


def test_the_stop_timeout_is_the_containers_and_names_its_own_family(
    aws_account: None, aws: Any, boto: Boto
) -> None:
    definitions = TaskDefinitions(aws, Names.for_pool("demo"))
    without = definitions.ensure(CONTENT)
    unset = definitions.ensure(with_stop_timeout(None))
    sixty = definitions.ensure(with_stop_timeout(60))
    assert unset == without
    assert "stopTimeout" not in registered(boto, without)
    assert registered(boto, sixty)["stopTimeout"] == 60
    assert definitions.family(with_stop_timeout(60)) != definitions.family(CONTENT)
    assert definitions.ensure(with_stop_timeout(120)) not in (without, sixty)
    assert aws.calls.count("register_task_definition") == 3


def test_an_unset_stop_timeout_is_the_same_family_from_job_variables(
    provisioner: EcsProvisioner,
) -> None:
    assert provisioner.task_definition_family(
        {"stop_timeout_seconds": None}
    ) == provisioner.task_definition_family({})


def test_submit_registers_the_job_variables_stop_timeout(
    provisioner: EcsProvisioner,
    request_for: Callable[..., SubmitRequest],
    boto: Boto,
    tasks_pinned: None,
) -> None:
    ref = provisioner.submit(request_for(job={"stop_timeout_seconds": 90}))
    assert registered(boto, str(ref.data["task_definition_arn"]))["stopTimeout"] == 90
    assert provisioner.task_definition_family(
        {"stop_timeout_seconds": 90}
    ) != provisioner.task_definition_family({})


@pytest.mark.parametrize("seconds", [0, 1, 121, 3600])
def test_an_out_of_range_stop_timeout_is_refused_naming_the_field(
    provisioner: EcsProvisioner, request_for: Callable[..., SubmitRequest], seconds: int
) -> None:
    with pytest.raises(ProvisionerError, match=r"stop_timeout_seconds: .*2 to 120"):
        provisioner.submit(request_for(job={"stop_timeout_seconds": seconds}))
