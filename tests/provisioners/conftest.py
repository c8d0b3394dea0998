"""Harnesses for the Provisioner conformance suite: one per pool type.

A harness knows how to make its platform run a controlled workload (sleep, exit with a
code) and how to let the platform make progress. A new provisioner joins the suite by
adding one entry to ``HARNESSES``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.harness import Harness

from provisioners.base import InfraRef, SubmitRequest, get_provisioner
from provisioners.ecs import EcsProvisioner


def _process(tmp_path: Path) -> Iterator[Harness]:
    provisioner = get_provisioner(
        "process", "conf", {"working_dir": str(tmp_path / "runs"), "allow_job_commands": True}
    )
    py = sys.executable
    yield Harness(
        provisioner=provisioner,
        sleep_job=lambda s: {"command": [py, "-c", f"import time; time.sleep({s})"]},
        exit_job=lambda code: {"command": [py, "-c", f"raise SystemExit({code})"]},
    )


class _MotoEcs(EcsProvisioner):
    """ECS in moto, with this harness playing the container: ``sleep`` runs until stopped,
    ``sh -c "exit N"`` finishes (one step per DescribeTasks) with exit code N."""

    def submit(self, request: SubmitRequest) -> InfraRef:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ecs.models import ecs_backends

        ref = super().submit(request)
        cluster = str(ref.data["cluster"]).rsplit("/", 1)[-1]
        task = ecs_backends[DEFAULT_ACCOUNT_ID][self.aws.region].tasks[cluster][ref.id]
        command = request.job_variables.get("command") or []
        if command[:1] == ["sleep"]:
            task._transitions = []  # no natural end: RUNNING until StopTask
        elif command[:2] == ["sh", "-c"] and command[2].startswith("exit "):
            task.containers[0].exitCode = int(command[2].split()[1])
        return ref


@functools.cache
def _boto_session() -> Any:
    import boto3

    return boto3.session.Session()  # one per test run: service models load once


def _ecs_pool_config(region: str) -> dict[str, Any]:
    session = _boto_session()
    ec2 = session.client("ec2", region_name=region)
    subnet = ec2.describe_subnets()["Subnets"][0]
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]}])[
        "SecurityGroups"
    ][0]
    cluster = session.client("ecs", region_name=region).create_cluster(
        clusterName="conf", capacityProviders=["FARGATE", "FARGATE_SPOT"]
    )["cluster"]
    role = session.client("iam", region_name=region).create_role(
        RoleName="conf-execution", AssumeRolePolicyDocument="{}"
    )["Role"]
    return {
        "region": region,
        "cluster": cluster["clusterArn"],
        "subnets": [subnet["SubnetId"]],
        # moto's RunTask needs security groups (AWS would use the VPC's default group).
        "security_groups": [group["GroupId"]],
        "execution_role_arn": role["Arn"],
        "image": "pushpool-runner:test",
    }


def _ecs(tmp_path: Path) -> Iterator[Harness]:
    from moto import mock_aws
    from moto.moto_api import state_manager

    with pytest.MonkeyPatch.context() as env, mock_aws():
        env.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # faster; no test needs AMIs
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 1}
        )
        try:
            yield Harness(
                provisioner=_MotoEcs("conf", _ecs_pool_config("us-east-1")),
                sleep_job=lambda s: {"command": ["sleep", str(s)]},
                exit_job=lambda code: {"command": ["sh", "-c", f"exit {code}"]},
            )
        finally:
            state_manager.unset_transition("ecs::task")


def _cloud_run(tmp_path: Path) -> Iterator[Harness]:
    from emulators.gcp import running_emulator
    from emulators.gcp.workloads import conformance_workload

    from provisioners.cloud_run.gcp import EMULATOR_ENV

    with running_emulator() as emulator, pytest.MonkeyPatch.context() as env:
        env.setenv(EMULATOR_ENV, emulator.url)
        emulator.run.workload = conformance_workload
        config = {"project": "conf-project", "region": "us-central1", "image": "runner:test"}
        yield Harness(
            provisioner=get_provisioner("cloud-run", "conf", config),
            sleep_job=lambda s: {"command": ["sleep", str(s)]},
            exit_job=lambda code: {"command": ["sh", "-c", f"exit {code}"]},
        )


def _aci(tmp_path: Path) -> Iterator[Harness]:
    from emulators.azure.harness import aci_harness

    yield from aci_harness()


HARNESSES: dict[str, Callable[[Path], Iterator[Harness]]] = {
    "process": _process,
    "ecs": _ecs,
    "cloud-run": _cloud_run,
    "aci": _aci,
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    yield from HARNESSES[request.param](tmp_path)
