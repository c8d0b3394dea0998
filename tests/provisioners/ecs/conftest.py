"""Fixtures for the ECS pool type, all against moto in-process (no MagicMock anywhere).

Known moto gaps are handled here, never in product code:
- ECS tasks start RUNNING and advance one step per DescribeTasks; tests pin or drive them
  with ``state_manager.set_transition`` and the in-process backend (exit codes, stop codes).
- ``RunTask`` without ``securityGroups`` crashes (KeyError): pool configs always name one.
- AWS-managed IAM policies exist only with ``load_aws_managed_policies``.
- Faults (throttling, RunTask ``failures``, lost answers) are injected by wrapping the boto3
  client at the ``AwsClient._new_client`` seam: the product's own error translation runs.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ecs.models import ecs_backends
from moto.moto_api import state_manager

from provisioners.base import SubmitRequest
from provisioners.ecs import EcsProvisioner
from provisioners.ecs.aws import AwsClient, Service

REGION = "us-east-1"
POOL = "demo"
TOKEN = "secret-run-token-0123456789"

#: A fault: an exception to raise, or a function of the call's params returning the answer
#: (it may call the real client through ``Faulty.real``).
Fault = Exception | Callable[[dict[str, Any]], Any]


def client_error(
    code: str, message: str = "", status: int = 400, op: str = "RunTask"
) -> ClientError:
    error = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(error, op)  # type: ignore[arg-type]


class Faulty:
    """A boto3 client whose chosen operations answer with queued faults, then pass through."""

    def __init__(self, real: Any, faults: dict[str, list[Fault]], calls: list[str]) -> None:
        self.real, self._faults, self._calls = real, faults, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if not callable(attr) or name.startswith("_") or name in ("meta", "exceptions"):
            return attr

        def call(**params: Any) -> Any:
            self._calls.append(name)
            queue = self._faults.get(name)
            if queue:
                fault = queue.pop(0)
                if isinstance(fault, Exception):
                    raise fault
                return fault(params)
            return attr(**params)

        return call


class FaultyAws(AwsClient):
    """The product's AwsClient over fault-injecting boto3 clients; records every call."""

    def __init__(self, region: str = REGION) -> None:
        super().__init__(region)
        self.faults: dict[str, list[Fault]] = {}
        self.calls: list[str] = []

    def _new_client(self, service: Service) -> Any:
        return Faulty(super()._new_client(service), self.faults, self.calls)

    def fail(self, operation: str, *faults: Fault) -> None:
        self.faults.setdefault(operation, []).extend(faults)

    def real(self, service: Service) -> Any:
        client = self.client(service)
        return client.real if isinstance(client, Faulty) else client


@dataclass
class Sleeps:
    """An injectable ``sleep`` that only records."""

    slept: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


#: One session for the fixtures' own clients: service models load once per test run.
_SESSION = boto3.session.Session()


@functools.cache
def client(service: str) -> Any:
    """A plain boto3 client, made once (moto intercepts every client while it is active)."""
    return _SESSION.client(service, region_name=REGION)  # type: ignore[call-overload]


@pytest.fixture
def aws_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account (with a default VPC, like a new AWS account)."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # 0.2 s per test saved
    with mock_aws():
        yield


@pytest.fixture
def iam_account(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account that knows AWS-managed IAM policies (slower to start)."""
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield


@pytest.fixture
def no_default_vpc(aws_account: None) -> None:
    """The account without its default VPC (as in accounts that deleted it)."""
    ec2 = client("ec2")
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]:
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])[
            "Subnets"
        ]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        ec2.delete_vpc(VpcId=vpc["VpcId"])


def listing() -> dict[str, list[str]]:
    """What exists in the account, by resource kind (to compare before and after)."""
    ec2 = client("ec2")
    ecs = client("ecs")
    arns = ecs.list_clusters()["clusterArns"]
    clusters = ecs.describe_clusters(clusters=arns)["clusters"] if arns else []
    families = ecs.list_task_definition_families(status="ALL")["families"]
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
        "igws": sorted(
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
        ),
        "route_tables": sorted(
            t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]
        ),
        "security_groups": sorted(
            g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
        ),
        "roles": sorted(r["RoleName"] for r in client("iam").list_roles()["Roles"]),
        "role_policies": sorted(
            f"{r['RoleName']}/{name}"
            for r in client("iam").list_roles()["Roles"]
            for name in client("iam").list_role_policies(RoleName=r["RoleName"])["PolicyNames"]
        ),
        "buckets": sorted(b["Name"] for b in client("s3").list_buckets().get("Buckets", [])),
        "clusters": sorted(c["clusterArn"] for c in clusters if c["status"] == "ACTIVE"),
        "repositories": sorted(
            r["repositoryName"] for r in client("ecr").describe_repositories()["repositories"]
        ),
        "log_groups": sorted(
            g["logGroupName"] for g in client("logs").describe_log_groups()["logGroups"]
        ),
        "task_definitions": sorted(
            arn
            for family in families
            for arn in ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")[
                "taskDefinitionArns"
            ]
        ),
    }


@pytest.fixture
def snapshot() -> Callable[[], dict[str, list[str]]]:
    return listing


@pytest.fixture
def boto() -> Callable[[str], Any]:
    """A plain boto3 client for a service, to look at the account directly."""
    return client


@pytest.fixture
def tasks_manual() -> Iterator[None]:
    """Tasks advance one lifecycle step per DescribeTasks (set explicitly, reset after)."""
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 1}
    )
    yield
    state_manager.unset_transition("ecs::task")


@pytest.fixture
def tasks_pinned() -> Iterator[None]:
    """Tasks stay where they are until a test (or StopTask) moves them."""
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
    )
    yield
    state_manager.unset_transition("ecs::task")


def moto_task(task_arn: str) -> Any:
    """The in-process backend's task object (for what only the backend can set)."""
    for tasks in ecs_backends[DEFAULT_ACCOUNT_ID][REGION].tasks.values():
        if task_arn in tasks:
            return tasks[task_arn]
    raise KeyError(task_arn)


@pytest.fixture
def backend_task() -> Callable[[str], Any]:
    return moto_task


def _pool_config() -> dict[str, Any]:
    ec2 = client("ec2")
    subnet = ec2.describe_subnets()["Subnets"][0]
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]}])[
        "SecurityGroups"
    ][0]
    cluster = client("ecs").create_cluster(
        clusterName="pushpool-demo", capacityProviders=["FARGATE", "FARGATE_SPOT"]
    )["cluster"]
    iam = client("iam")
    roles = [
        iam.create_role(RoleName=f"pushpool-demo-{kind}", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
        for kind in ("execution", "task")
    ]
    return {
        "region": REGION,
        "cluster": cluster["clusterArn"],
        "subnets": [subnet["SubnetId"]],
        "security_groups": [group["GroupId"]],
        "execution_role_arn": roles[0],
        "task_role_arn": roles[1],
        "log_group": "/pushpool/demo",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/pushpool/demo:latest",
    }


@pytest.fixture
def pool_config(aws_account: None) -> dict[str, Any]:
    """A pool config as provisioning would record it (made directly, for speed)."""
    return _pool_config()


@pytest.fixture
def aws() -> FaultyAws:
    """The product's client, made lazily inside whichever moto account the test uses."""
    return FaultyAws()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_provisioner(
    pool_config: dict[str, Any], aws: FaultyAws, sleeps: Sleeps
) -> Callable[..., EcsProvisioner]:
    def make(**overrides: Any) -> EcsProvisioner:
        config = {**pool_config, **overrides.pop("config", {})}
        overrides.setdefault("aws", aws)
        overrides.setdefault("sleep", sleeps)
        return EcsProvisioner(POOL, config, **overrides)

    return make


@pytest.fixture
def provisioner(make_provisioner: Callable[..., EcsProvisioner]) -> EcsProvisioner:
    return make_provisioner()


def submit_request(
    run_id: str | None = None, job: dict[str, Any] | None = None, attempt: int = 1
) -> SubmitRequest:
    run_id = run_id or str(uuid.uuid4())
    return SubmitRequest(
        run_id=run_id,
        attempt=attempt,
        flow_name="flow",
        deployment_name="dep",
        env={
            "PUSHPOOL_API_URL": "https://pushpool.example.com/api",
            "PUSHPOOL_FLOW_RUN_ID": run_id,
            "PUSHPOOL_BOOTSTRAP_TOKEN": TOKEN,
        },
        job_variables=job or {},
    )


@pytest.fixture
def request_for() -> Callable[..., SubmitRequest]:
    return submit_request


@pytest.fixture
def make_client_error() -> Callable[..., ClientError]:
    return client_error
