"""Planning, provisioning and deprovisioning an ECS pool's infrastructure, against moto."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import pytest

from provisioners.base import PlanStep, SubmitRequest
from provisioners.ecs import EcsProvisioner
from provisioners.errors import ProvisionerError

POOL = "demo"
REGION = "us-east-1"
CORE = [
    ("iam-role", "pushpool-demo-execution"),
    ("iam-role-policy", "pushpool-demo-execution/pushpool-read-block-secrets"),
    ("iam-role", "pushpool-demo-task"),
    ("log-group", "/pushpool/demo"),
    ("ecr-repository", "pushpool/demo"),
    ("ecs-cluster", "pushpool-demo"),
    ("s3-bucket", "pushpool-demo-results"),
    ("iam-role-policy", "pushpool-demo-task"),
]
OWN_NETWORK = [
    ("vpc", "pushpool-demo"),
    ("internet-gateway", "pushpool-demo"),
    ("subnet", "pushpool-demo-a"),
    ("subnet", "pushpool-demo-b"),
    ("route-table", "pushpool-demo"),
    ("security-group", "pushpool-demo"),
]
POOL_TAG = {"Key": "pushpool:pool", "Value": POOL}

Boto = Callable[[str], Any]
Listing = Callable[[], dict[str, list[str]]]


@pytest.fixture
def make(aws: Any, sleeps: Any) -> Callable[..., EcsProvisioner]:
    """An ECS provisioner for pool ``demo`` with a given (recorded) config."""

    def build(config: dict[str, Any] | None = None) -> EcsProvisioner:
        return EcsProvisioner(POOL, {"region": REGION, **(config or {})}, aws=aws, sleep=sleeps)

    return build


def provision(provisioner: EcsProvisioner) -> tuple[dict[str, Any], list[PlanStep]]:
    created: list[PlanStep] = []
    values = provisioner.provision(provisioner.plan(), created.append)
    return values, created


def keys(steps: list[PlanStep]) -> list[tuple[str, str]]:
    return [(s.resource, s.name) for s in steps]


# -- a fresh account without a default VPC ---------------------------------------------------


def test_fresh_account_without_default_vpc(
    iam_account: None, no_default_vpc: None, make: Any, boto: Boto
) -> None:
    plan = make().plan()
    assert keys(plan.steps) == CORE + OWN_NETWORK
    assert not any(s.exists for s in plan.steps)
    assert dict(keys(plan.steps))["vpc"] and "CIDR 10.0.0.0/16" in plan.steps[len(CORE)].detail

    values, created = provision(make())
    assert keys(created) == CORE + OWN_NETWORK
    recorded = values["provisioned"]
    assert [(r["resource"], r["name"]) for r in recorded] == CORE + OWN_NETWORK
    assert values["region"] == REGION
    assert values["cluster"] == "arn:aws:ecs:us-east-1:123456789012:cluster/pushpool-demo"
    assert values["log_group"] == "/pushpool/demo"
    assert values["ecr_repository_uri"].endswith(".amazonaws.com/pushpool/demo")
    assert values["image"] == values["ecr_repository_uri"] + ":latest"

    ec2 = boto("ec2")
    (vpc,) = ec2.describe_vpcs()["Vpcs"]
    assert vpc["CidrBlock"] == "10.0.0.0/16" and POOL_TAG in vpc["Tags"]
    for attribute in ("enableDnsHostnames", "enableDnsSupport"):
        answer = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)
        assert next(v for k, v in answer.items() if k.lower() == attribute.lower())["Value"]
    subnets = ec2.describe_subnets(SubnetIds=values["subnets"])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 2
    assert all(POOL_TAG in s["Tags"] and s["VpcId"] == vpc["VpcId"] for s in subnets)
    (table,) = ec2.describe_route_tables(Filters=[{"Name": "tag:pushpool:pool", "Values": [POOL]}])[
        "RouteTables"
    ]
    (igw,) = ec2.describe_internet_gateways()["InternetGateways"]
    assert igw["Attachments"][0]["VpcId"] == vpc["VpcId"]
    assert {
        "DestinationCidrBlock": "0.0.0.0/0",
        "GatewayId": igw["InternetGatewayId"],
    }.items() <= next(
        r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"
    ).items()
    assert sorted(a["SubnetId"] for a in table["Associations"] if not a.get("Main")) == sorted(
        values["subnets"]
    )
    (group,) = ec2.describe_security_groups(GroupIds=values["security_groups"])["SecurityGroups"]
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"]
    assert POOL_TAG in group["Tags"]


def test_the_roles_clusters_logs_and_registry_are_as_ecs_needs_them(
    iam_account: None, no_default_vpc: None, make: Any, boto: Boto
) -> None:
    values, _ = provision(make())
    iam = boto("iam")
    execution = iam.get_role(RoleName="pushpool-demo-execution")["Role"]
    trust = execution["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert values["execution_role_arn"] == execution["Arn"]
    attached = iam.list_attached_role_policies(RoleName="pushpool-demo-execution")
    assert [p["PolicyName"] for p in attached["AttachedPolicies"]] == [
        "AmazonECSTaskExecutionRolePolicy"
    ]
    inline = iam.get_role_policy(
        RoleName="pushpool-demo-execution", PolicyName="pushpool-create-log-group"
    )
    document = inline["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    assert document["Statement"][0]["Action"] == "logs:CreateLogGroup"
    secrets = iam.get_role_policy(
        RoleName="pushpool-demo-execution", PolicyName="pushpool-read-block-secrets"
    )["PolicyDocument"]
    secrets = json.loads(secrets) if isinstance(secrets, str) else secrets
    (grant,) = secrets["Statement"]
    assert grant["Action"] == "secretsmanager:GetSecretValue"
    assert grant["Resource"].endswith(":secret:pushpool/demo/*")
    assert grant["Resource"].startswith("arn:aws:secretsmanager:us-east-1:")
    assert iam.list_attached_role_policies(RoleName="pushpool-demo-task")["AttachedPolicies"] == []
    assert iam.list_role_policies(RoleName="pushpool-demo-task")["PolicyNames"] == [
        "pushpool-results"  # its result prefix, and nothing else (see the result bucket test)
    ]
    assert POOL_TAG in iam.get_role(RoleName="pushpool-demo-task")["Role"]["Tags"]

    (cluster,) = boto("ecs").describe_clusters(clusters=[values["cluster"]], include=["TAGS"])[
        "clusters"
    ]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert {"key": "pushpool:pool", "value": POOL} in cluster["tags"]
    (group,) = boto("logs").describe_log_groups(logGroupNamePrefix="/pushpool/demo")["logGroups"]
    assert group["retentionInDays"] == 30
    repo = boto("ecr").describe_repositories(repositoryNames=["pushpool/demo"])["repositories"][0]
    assert repo["repositoryUri"] == values["ecr_repository_uri"]


def test_the_result_bucket_is_private_encrypted_expiring_and_only_the_task_roles(
    iam_account: None, make: Any, boto: Boto, snapshot: Listing
) -> None:
    from pushpool.results import S3ResultStore, parse_result_storage, store_for

    before = snapshot()
    values, _ = provision(make({"result_retention_days": 7}))
    kind, bucket, prefix = parse_result_storage(values["result_storage"])
    assert (kind, prefix) == ("s3", "results") and bucket.startswith("pushpool-demo-results-")
    s3 = boto("s3")
    assert {"Key": "pushpool:pool", "Value": POOL} in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (expiry,) = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert expiry["Status"] == "Enabled" and expiry["Expiration"] == {"Days": 7}
    assert expiry["Filter"] == {"Prefix": "results/"}
    (deny,) = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    access = boto("iam").get_role_policy(
        RoleName="pushpool-demo-task", PolicyName="pushpool-results"
    )
    document = access["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    objects, listing = document["Statement"]
    assert objects["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert objects["Resource"] == f"arn:aws:s3:::{bucket}/results/*"  # the prefix only
    assert listing["Resource"] == f"arn:aws:s3:::{bucket}"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "results/*"}}
    assert make().plan().to_create == []  # provisioning again plans nothing new

    # moto serves plain HTTP, so the TLS-only policy would refuse the store's calls here
    s3.delete_bucket_policy(Bucket=bucket)
    store = store_for(values["result_storage"])  # what the runner uses (its env names it)
    assert isinstance(store, S3ResultStore)
    store.write("flow-runs/r1/result", b'J{"rows": 3}')
    assert store.read("flow-runs/r1/result") == b'J{"rows": 3}'
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Key"] == "results/flow-runs/r1/result"
    make(values).deprovision()  # empties the bucket, then removes it and the role's access
    assert snapshot() == before


def test_ecs_result_storage_must_be_s3(make: Any) -> None:
    for storage, message in (
        ("/tmp/results", "an ECS task's disk goes with the task"),
        ("gs://bucket/results", "an ECS task's disk goes with the task"),
        ("az://account/container/results", "an ECS task's disk goes with the task"),
        ("gcs://bucket/results", "Google Cloud Storage is spelt gs://bucket/prefix"),
        ("s3://Not_A_Bucket/x", "is no S3 bucket name"),
    ):
        with pytest.raises(ValueError, match=message):
            make({"result_storage": storage})
    assert (
        make({"result_storage": "s3://my-results/p"}).config.result_storage == "s3://my-results/p"
    )


# -- an account with a default VPC -------------------------------------------------------------


def test_with_a_default_vpc_nothing_is_created_for_networking(
    iam_account: None, make: Any, boto: Boto, snapshot: Listing
) -> None:
    before = snapshot()
    plan = make().plan()
    assert keys(plan.to_create) == CORE
    (network,) = [s for s in plan.steps if s.resource == "default-vpc"]
    assert network.exists and "creates nothing" in network.detail

    values, created = provision(make())
    assert keys(created) == CORE
    after = snapshot()
    for kind in ("vpcs", "subnets", "igws", "route_tables", "security_groups"):
        assert after[kind] == before[kind], kind
    ec2 = boto("ec2")
    (default,) = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    defaults = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default["VpcId"]]}])
    assert sorted(values["subnets"]) == sorted(s["SubnetId"] for s in defaults["Subnets"])
    (group,) = ec2.describe_security_groups(GroupIds=values["security_groups"])["SecurityGroups"]
    assert group["GroupName"] == "default" and group["VpcId"] == default["VpcId"]
    assert [r["resource"] for r in values["provisioned"]] == [k for k, _ in CORE]


def test_a_new_vpc_does_not_overlap_an_existing_one(
    iam_account: None, no_default_vpc: None, make: Any, boto: Boto
) -> None:
    existing = boto("ec2").create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]
    values, _ = provision(make())
    vpc_id = next(r["id"] for r in values["provisioned"] if r["resource"] == "vpc")
    (vpc,) = boto("ec2").describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
    assert vpc["CidrBlock"] == "10.1.0.0/16"
    assert not ipaddress.ip_network(vpc["CidrBlock"]).overlaps(
        ipaddress.ip_network(existing["CidrBlock"])
    )


# -- re-running, declining, removing ------------------------------------------------------------


def test_rerun_on_a_provisioned_account_plans_nothing(
    iam_account: None, no_default_vpc: None, make: Any, snapshot: Listing
) -> None:
    values, _ = provision(make())
    before = snapshot()
    again = make(values)
    plan = again.plan()
    assert plan.empty and len(plan.steps) == len(CORE + OWN_NETWORK)
    rerun, created = provision(again)
    assert created == []
    assert {**values, **rerun} == values  # the same record (the image is already set)
    assert snapshot() == before


@pytest.mark.parametrize("old_policy", ["missing", "another document"])
def test_reprovisioning_brings_an_old_execution_roles_secret_grant_up_to_date(
    old_policy: str, iam_account: None, no_default_vpc: None, make: Any, boto: Boto
) -> None:
    """A pool provisioned before platform secrets has an execution role without the
    GetSecretValue grant (or with an older document): the next --provision-infra writes
    it, records it, and a run after that plans nothing."""
    values, _ = provision(make())
    iam = boto("iam")
    role, policy = "pushpool-demo-execution", "pushpool-read-block-secrets"
    if old_policy == "missing":
        iam.delete_role_policy(RoleName=role, PolicyName=policy)
    else:
        grant = {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/*",
        }
        stale = {"Version": "2012-10-17", "Statement": [grant]}
        iam.put_role_policy(RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(stale))
    step = {"resource": "iam-role-policy", "name": f"{role}/{policy}"}
    old = {  # recorded by a version without this step
        **values,
        "provisioned": [
            r for r in values["provisioned"] if {**r, "id": None} != {**step, "id": None}
        ],
    }
    plan = make(old).plan()
    assert [(s.resource, s.name) for s in plan.to_create] == [
        ("iam-role-policy", f"{role}/{policy}")
    ]
    if old_policy != "missing":
        assert "out of date" in plan.to_create[0].detail
    rerun, created = provision(make(old))
    assert keys(created) == [("iam-role-policy", f"{role}/{policy}")]
    assert rerun["provisioned"] == values["provisioned"]  # recorded again: undone at deprovision
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    (grant,) = document["Statement"]
    assert grant["Action"] == "secretsmanager:GetSecretValue"
    assert grant["Resource"].endswith(":secret:pushpool/demo/*")
    again = make(rerun).plan()
    assert again.empty  # a no-op after
    assert provision(make(rerun))[1] == []
    make(rerun).deprovision()
    assert role not in [r["RoleName"] for r in iam.list_roles()["Roles"]]


def test_a_plan_that_is_not_applied_changes_nothing(
    iam_account: None, no_default_vpc: None, make: Any, aws: Any, snapshot: Listing
) -> None:
    before = snapshot()
    plan = make().plan()  # the user is shown this and answers "no"
    assert len(plan.to_create) == len(CORE + OWN_NETWORK)
    assert snapshot() == before
    writes = [c for c in aws.calls if not c.startswith(("describe_", "get_", "list_", "head_"))]
    assert writes == []


@pytest.mark.parametrize("default_vpc", [True, False], ids=["default-vpc", "own-vpc"])
def test_deprovision_leaves_the_account_as_it_was(
    default_vpc: bool,
    request: pytest.FixtureRequest,
    iam_account: None,
    make: Any,
    snapshot: Listing,
    request_for: Callable[..., SubmitRequest],
    tasks_pinned: None,
) -> None:
    if not default_vpc:
        request.getfixturevalue("no_default_vpc")
    before = snapshot()
    values, _ = provision(make())
    pool = make(values)
    pool.submit(request_for())  # a task definition and a running task to clean up too
    removed: list[PlanStep] = []
    pool.deprovision(removed.append)
    assert snapshot() == before
    expected = CORE + ([] if default_vpc else OWN_NETWORK)
    assert keys(removed) == list(reversed(expected))
    pool.deprovision()  # again: everything is gone already; nothing fails


def test_deprovision_tolerates_what_is_gone_and_spares_what_is_not_ours(
    iam_account: None, no_default_vpc: None, make: Any, boto: Boto, snapshot: Listing
) -> None:
    values, _ = provision(make())
    boto("logs").delete_log_group(logGroupName="/pushpool/demo")
    ec2 = boto("ec2")
    ec2.delete_security_group(GroupId=values["security_groups"][0])
    # Someone took the subnet over: it no longer carries the pool's tag.
    kept = values["subnets"][0]
    ec2.delete_tags(Resources=[kept], Tags=[{"Key": "pushpool:pool"}])
    removed: list[PlanStep] = []
    with pytest.raises(ProvisionerError) as info:
        make(values).deprovision(removed.append)
    # The VPC still holds the subnet that is no longer ours: AWS refuses, the rest goes.
    assert "could not remove vpc pushpool-demo" in str(info.value)
    assert "DependencyViolation" in str(info.value)
    names = keys(removed)
    assert ("log-group", "/pushpool/demo") not in names
    assert ("security-group", "pushpool-demo") not in names
    assert ("subnet", "pushpool-demo-a") not in names
    left = snapshot()
    assert left["subnets"] == [kept] and len(left["vpcs"]) == 1
    assert left["roles"] == [] and left["clusters"] == [] and left["repositories"] == []
    # Once the owner removes their subnet, deprovisioning again finishes the job.
    ec2.delete_subnet(SubnetId=kept)
    make(values).deprovision()
    assert snapshot()["vpcs"] == []


def test_the_default_vpc_is_never_removed(
    iam_account: None, make: Any, boto: Boto, snapshot: Listing
) -> None:
    values, _ = provision(make())
    (default,) = boto("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])[
        "Vpcs"
    ]
    boto("ec2").create_tags(Resources=[default["VpcId"]], Tags=[POOL_TAG])
    # Even a record (hand-edited, or corrupt) that names it as the pool's VPC is refused.
    record = [{"resource": "vpc", "name": "pushpool-demo", "id": default["VpcId"]}]
    make({**values, "provisioned": record + values["provisioned"]}).deprovision()
    assert default["VpcId"] in snapshot()["vpcs"]


def test_resources_not_created_by_pushpool_are_used_but_never_recorded(
    iam_account: None, make: Any, boto: Boto, snapshot: Listing
) -> None:
    boto("iam").create_role(RoleName="pushpool-demo-task", AssumeRolePolicyDocument="{}")
    plan = make().plan()
    step = next(s for s in plan.steps if s.name == "pushpool-demo-task")
    assert step.exists and "not pushpool's" in step.detail
    values, _ = provision(make())
    assert values["task_role_arn"].endswith(":role/pushpool-demo-task")
    assert "pushpool-demo-task" not in [r["name"] for r in values["provisioned"]]
    make(values).deprovision()
    assert snapshot()["roles"] == ["pushpool-demo-task"]


def test_an_interrupted_provision_resumes_and_records_what_it_made(
    iam_account: None,
    no_default_vpc: None,
    make: Any,
    aws: Any,
    make_client_error: Any,
    snapshot: Listing,
) -> None:
    before = snapshot()
    aws.fail(
        "create_cluster",
        make_client_error("AccessDeniedException", "not allowed", op="CreateCluster"),
    )
    with pytest.raises(ProvisionerError) as info:
        provision(make())
    assert "AccessDeniedException" in str(info.value)
    assert "already in place: iam-role/pushpool-demo-execution" in str(info.value)
    plan = make().plan()
    assert keys(plan.to_create) == CORE[5:] + OWN_NETWORK
    values, created = provision(make())
    assert keys(created) == CORE[5:] + OWN_NETWORK
    assert [(r["resource"], r["name"]) for r in values["provisioned"]] == CORE + OWN_NETWORK
    make(values).deprovision()
    assert snapshot() == before


def test_runs_start_in_the_network_provisioning_made(
    iam_account: None,
    no_default_vpc: None,
    make: Any,
    request_for: Callable[..., SubmitRequest],
    boto: Boto,
    tasks_pinned: None,
) -> None:
    # moto's RunTask fails in a VPC without DNS hostnames: provisioning turns them on.
    values, _ = provision(make())
    ref = make(values).submit(request_for())
    cluster = values["cluster"].rsplit("/", 1)[-1]
    (task,) = boto("ecs").describe_tasks(cluster=cluster, tasks=[ref.id])["tasks"]
    subnet = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "subnetId")
    assert subnet in values["subnets"]
