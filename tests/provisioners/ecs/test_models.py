"""Job variables and pool config of the ECS pool type: valid Fargate shapes, clear errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisioners.ecs.models import EcsJobVariables, EcsPoolConfig
from provisioners.ecs.names import Names, slug
from provisioners.ecs.sizes import FARGATE_SIZES, resolve


def job(**values: Any) -> EcsJobVariables:
    return EcsJobVariables.model_validate(values)


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        ({}, (1024, 2048)),
        ({"cpu": 256}, (256, 512)),
        ({"cpu": 4096}, (4096, 8192)),
        ({"memory": 3072}, (512, 3072)),
        ({"memory": 122880}, (16384, 122880)),
        ({"cpu": 2048, "memory": 16384}, (2048, 16384)),
        ({"cpu": "512", "memory": "4096"}, (512, 4096)),
    ],
)
def test_fargate_sizes_are_completed(given: dict[str, Any], resolved: tuple[int, int]) -> None:
    assert job(**given).size == resolved


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"cpu": 300}, "cpu 300 is not a Fargate size; choose one of 256, 512, 1024"),
        ({"cpu": 256, "memory": 4096}, "memory 4096 MiB is not valid with cpu 256 on Fargate"),
        ({"cpu": 1024, "memory": 1024}, "choose 2048 to 8192 in steps of 1024 MiB"),
        ({"cpu": 8192, "memory": 17408}, "choose 16384 to 61440 in steps of 4096 MiB"),
        ({"memory": 100}, "no Fargate cpu size accepts memory 100 MiB"),
    ],
)
def test_invalid_fargate_sizes_are_explained(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        job(**given)


def test_every_listed_size_is_accepted() -> None:
    for cpu, memories in FARGATE_SIZES.items():
        for memory in memories:
            assert resolve(cpu, memory) == (cpu, memory)


@pytest.mark.parametrize(
    "given",
    [
        {"ephemeral_storage_gib": 20},
        {"ephemeral_storage_gib": 201},
        {"stop_timeout_seconds": 1},
        {"stop_timeout_seconds": 121},
        {"capacity_provider": "EC2"},
        {"tags": {"pushpool:run-id": "x"}},
        {"tags": {"aws:created": "x"}},
        {"tags": {f"k{i}": "v" for i in range(41)}},
        {"command": []},
        {"subnets": []},
        {"task_role_arn": "not-an-arn"},
        {"cloudwatch": True},
    ],
)
def test_invalid_job_variables_are_rejected(given: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        job(**given)


@pytest.mark.parametrize("seconds", [1, 121])
def test_an_out_of_range_stop_timeout_is_explained(seconds: int) -> None:
    with pytest.raises(ValidationError, match=rf"stop_timeout_seconds {seconds}: .*2 to 120"):
        job(stop_timeout_seconds=seconds)
    assert job(stop_timeout_seconds=2).stop_timeout_seconds == 2
    assert job().stop_timeout_seconds is None


def test_valid_job_variables() -> None:
    variables = job(
        image="repo/flows:1",
        env={"A": "1"},
        command=["python", "-m", "runner_image"],
        task_role_arn="arn:aws:iam::123456789012:role/flows",
        subnets=["subnet-1"],
        security_groups=[],
        assign_public_ip=False,
        capacity_provider="FARGATE_SPOT",
        ephemeral_storage_gib=21,
        stop_timeout_seconds=120,
        cloudwatch_logs=False,
        tags={"team": "data"},
    )
    assert variables.capacity_provider == "FARGATE_SPOT" and variables.size == (1024, 2048)


def test_pool_config() -> None:
    assert EcsPoolConfig.model_validate({}).provisioned == []
    with pytest.raises(ValidationError, match="CloudWatch Logs accepts"):
        EcsPoolConfig.model_validate({"log_retention_days": 2})
    with pytest.raises(ValidationError):
        EcsPoolConfig.model_validate({"provisioned": [{"resource": "vpc"}]})


def test_names_derive_from_the_pool_and_never_collide() -> None:
    names = Names.for_pool("demo")
    assert (names.cluster, names.execution_role, names.task_role) == (
        "pushpool-demo",
        "pushpool-demo-execution",
        "pushpool-demo-task",
    )
    assert (names.log_group, names.repository) == ("/pushpool/demo", "pushpool/demo")
    assert names.owns_family(names.family("0123456789abcdef"))
    assert not names.owns_family(Names.for_pool("demo-2").family("0123456789ab"))
    odd = ["Demo", "demo.1", "demo_1", "x" * 100, "y" * 100]
    slugs = [slug(p) for p in odd]
    assert len(set(slugs)) == len(odd)
    assert all(len(s) <= 24 and s == s.lower() and "." not in s for s in slugs)
    assert len(Names.for_pool("z" * 100).execution_role) <= 64  # IAM's limit
