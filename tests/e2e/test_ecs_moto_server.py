"""End to end for ``ecs`` pools against a moto server on loopback (``AWS_ENDPOINT_URL``).

The CLI provisions a pool, an example flow is deployed on it and run; the test stands in
for the container (the task definition's entry point and command, the environment from
the task's ``RunTask`` overrides, run on this machine) so the run reaches ``COMPLETED``
through the real runner; then the task is stopped in moto and teardown happens. A second
run whose task stops without a report crashes; deprovisioning leaves the account as it was.

The account starts without its default VPC, so provisioning takes the full network path
(VPC, internet gateway, two subnets, route table, security group).

Known moto gaps, handled here and never in product code:
- ECS tasks advance one lifecycle step per ``DescribeTasks``: they are put under manual
  progression with a huge step count through the server's moto-api, so a task stays
  ``RUNNING`` until the test stops it.
- AWS-managed IAM policies exist only with ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` (read
  when moto makes its IAM backend, so it is set before the backends are reset).
- ``StopTask`` cannot set a container's exit code and the server API has no way to;
  ``ThreadedMotoServer`` serves from this process's moto backends, so the crash path sets
  the exit code there, as a container killed for memory would have had it.
- moto never releases the network interfaces of stopped tasks (ECS does), so interfaces
  are not part of the before/after comparison.
- moto serves plain HTTP, so the result bucket's TLS-only policy would refuse the
  runner's S3 calls: the test removes that policy before the SDK flow runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from support.e2e import cli_server, get_run, invoke
from support.factories import EXAMPLES, etl_deployment_body
from support.process_server import (
    DOWN_SECONDS,
    OUTAGE_SETTINGS,
    all_logs,
    server_process,
    wait_until,
)
from support.server import LiveServer

import provisioners.ecs.aws as product_aws

pytestmark = pytest.mark.slow

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account for any access key it did not issue
POOL = "demo"
CONTAINER = "flow"
#: The runner image's ENTRYPOINT (runner_image/Dockerfile), with this interpreter.
IMAGE_ENTRYPOINT = [sys.executable, "-m", "runner_image"]
#: What provisioning creates in an account without a default VPC, as the CLI names it.
PROVISIONED = (
    "iam-role pushpool-demo-execution",
    "iam-role-policy pushpool-demo-execution/pushpool-read-block-secrets",
    "iam-role pushpool-demo-task",
    "log-group /pushpool/demo",
    "ecr-repository pushpool/demo",
    "ecs-cluster pushpool-demo",
    "s3-bucket pushpool-demo-results",
    "iam-role-policy pushpool-demo-task",
    "vpc pushpool-demo",
    "internet-gateway pushpool-demo",
    "subnet pushpool-demo-a",
    "subnet pushpool-demo-b",
    "route-table pushpool-demo",
    "security-group pushpool-demo",
)
BYSTANDER_CIDR = "10.0.0.0/16"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"


@dataclass
class Moto:
    url: str
    session: Any

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION, endpoint_url=self.url)

    def api(self, path: str, body: dict[str, Any] | None = None) -> None:
        r = httpx.post(f"{self.url}/moto-api/{path}", json=body, timeout=60)
        assert r.status_code < 300, r.text


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    """A moto server on a free loopback port; the process's AWS environment points at it."""
    access_log = logging.getLogger("werkzeug")  # one line per AWS call: too much to keep
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        url = "http://{}:{}".format(*server.get_host_and_port())
        try:
            with pytest.MonkeyPatch.context() as env:
                env.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
                env.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
                for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
                    env.delenv(name, raising=False)
                env.setenv("AWS_ENDPOINT_URL", url)
                env.setenv("AWS_ACCESS_KEY_ID", "testing")
                env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
                env.setenv("AWS_DEFAULT_REGION", REGION)
                # The product shares one boto3 session per process: make it afresh from
                # this environment (the old one comes back afterwards).
                env.setattr(product_aws, "_session", None)
                moto = Moto(url, boto3.session.Session())
                moto.api("reset")  # a fresh account; IAM is remade with the managed policies
                pinned = {"progression": "manual", "times": 10**9}
                moto.api(
                    "state-manager/set-transition",
                    {"model_name": "ecs::task", "transition": pinned},
                )
                yield moto
        finally:  # the environment is restored: leave moto as other tests expect it
            httpx.post(
                f"{url}/moto-api/state-manager/unset-transition",
                json={"model_name": "ecs::task"},
                timeout=60,
            )
            httpx.post(f"{url}/moto-api/reset", timeout=60)
    finally:
        server.stop()
        access_log.setLevel(level)


@pytest.fixture
def live(moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with cli_server(tmp_path / "home", monkeypatch, report_grace_seconds=0) as server:
        yield server


def delete_default_vpc(moto: Moto) -> None:
    ec2 = moto.client("ec2")
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]:
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        for subnet in subnets["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        ec2.delete_vpc(VpcId=vpc["VpcId"])


def add_bystanders(moto: Moto) -> None:
    """Resources that are not pushpool's: a VPC on the first CIDR a pool would take, a
    role and a log group. Provisioning must work around them and deprovisioning spare them."""
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=BYSTANDER_CIDR)["Vpc"]["VpcId"]
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")
    trust = '{"Version": "2012-10-17", "Statement": []}'
    moto.client("iam").create_role(RoleName="someone-else", AssumeRolePolicyDocument=trust)
    moto.client("logs").create_log_group(logGroupName="/someone/else")


def listing(moto: Moto) -> dict[str, list[str]]:
    """What exists in the account, by kind of resource (to compare before and after)."""
    ec2, ecs, iam = moto.client("ec2"), moto.client("ecs"), moto.client("iam")
    cluster_arns = ecs.list_clusters()["clusterArns"]
    clusters = ecs.describe_clusters(clusters=cluster_arns)["clusters"] if cluster_arns else []
    families = ecs.list_task_definition_families(status="ALL")["families"]
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        "subnets": sorted(s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]),
        "internet_gateways": sorted(
            g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
        ),
        "route_tables": sorted(
            t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]
        ),
        "security_groups": sorted(
            g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
        ),
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "buckets": sorted(b["Name"] for b in moto.client("s3").list_buckets().get("Buckets", [])),
        "local_policies": sorted(p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]),
        "clusters": sorted(c["clusterArn"] for c in clusters if c["status"] == "ACTIVE"),
        "task_definitions": sorted(
            arn
            for family in families
            for status in ("ACTIVE", "INACTIVE")
            for arn in ecs.list_task_definitions(familyPrefix=family, status=status)[
                "taskDefinitionArns"
            ]
        ),
        "repositories": sorted(
            r["repositoryName"] for r in moto.client("ecr").describe_repositories()["repositories"]
        ),
        "log_groups": sorted(
            g["logGroupName"] for g in moto.client("logs").describe_log_groups()["logGroups"]
        ),
    }


def describe_task(moto: Moto, cluster: str, arn: str) -> dict[str, Any]:
    tasks = moto.client("ecs").describe_tasks(cluster=cluster, tasks=[arn])["tasks"]
    assert len(tasks) == 1, tasks
    task: dict[str, Any] = tasks[0]
    return task


def stand_in_for_the_container(moto: Moto, run: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run what ECS would run for the run's task: the image's entry point plus the task
    definition's command, with the container's and the overrides' environment."""
    task = describe_task(moto, run["infra"]["data"]["cluster"], run["infra"]["id"])
    definition = moto.client("ecs").describe_task_definition(
        taskDefinition=task["taskDefinitionArn"]
    )["taskDefinition"]
    container = next(c for c in definition["containerDefinitions"] if c["name"] == CONTAINER)
    override = next(o for o in task["overrides"]["containerOverrides"] if o["name"] == CONTAINER)
    entrypoint = container.get("entryPoint") or IMAGE_ENTRYPOINT
    command = override.get("command") or container.get("command") or []
    # Nothing of the test's own pushpool settings (API key, URL) leaks into the "container".
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    for variable in [*container.get("environment", []), *override.get("environment", [])]:
        env[variable["name"]] = variable["value"]
    assert env["PUSHPOOL_FLOW_RUN_ID"] == run["id"]
    return subprocess.run(
        [*entrypoint, *command],
        cwd=EXAMPLES,  # source {"type": "image"}: the code is in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def set_exit_code(task_arn: str, code: int) -> None:
    """The flow container's exit code, on the server's backend (no API can set it)."""
    from moto.ecs.models import ecs_backends

    for tasks in ecs_backends[ACCOUNT][REGION].tasks.values():
        if task_arn in tasks:
            tasks[task_arn].containers[0].exitCode = code
            return
    raise KeyError(task_arn)


def start_run(live: LiveServer, deployment_id: str) -> dict[str, Any]:
    r = live.client.post(f"/deployments/{deployment_id}/runs", json={})
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    assert run["state"]["type"] == "PENDING", run  # pushed in the same request
    assert run["infra"]["type"] == "ecs"
    assert run["infra"]["id"].startswith(f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/")
    return run


def results_in_the_pool_bucket(moto: Moto, live: LiveServer, storage: str) -> None:
    """The ETL example (a pushpool flow with cached, so persisted, task results) on the
    pool: its results land under the prefix of the bucket provisioning made."""
    bucket, _, prefix = storage.removeprefix("s3://").partition("/")
    s3 = moto.client("s3")
    s3.delete_bucket_policy(Bucket=bucket)  # moto is plain HTTP (see the module docstring)
    r = live.client.post("/deployments", json=etl_deployment_body(POOL))
    assert r.status_code == 201, r.text
    run = start_run(live, r.json()["id"])
    proc = stand_in_for_the_container(moto, run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = get_run(live, run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == 3, done
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert len(keys) >= 3 and all(k.startswith(f"{prefix}/") for k in keys), keys
    ecs = moto.client("ecs")
    cluster, task_arn = run["infra"]["data"]["cluster"], run["infra"]["id"]
    ecs.stop_task(cluster=cluster, task=task_arn, reason="Essential container in task exited")
    assert live.client.post("/scheduler/tick").json()["reconcile"]["torn_down"] == 1
    assert live.client.delete(f"/deployments/{run['deployment_id']}").status_code == 204


def test_ecs_pool_end_to_end_against_a_moto_server(moto: Moto, live: LiveServer) -> None:
    ecs = moto.client("ecs")
    delete_default_vpc(moto)
    add_bystanders(moto)
    before = listing(moto)

    # -- provision with the CLI ------------------------------------------------------------
    code, out = invoke("work-pool", "create", POOL, "--type", "ecs", "--provision-infra", "--yes")
    assert code == 0, out
    assert out.count("will create") == len(PROVISIONED), out
    for resource in PROVISIONED:
        assert f"created {resource}\n" in out, (resource, out)
    assert "IAM policy the control plane needs" in out
    assert "ecs:RunTask" in out and "iam:PassRole" in out
    assert "docker push" in out
    pool = live.client.get(f"/work-pools/{POOL}").json()
    config = pool["config"]
    assert config["region"] == REGION and config["cluster"].endswith(f"cluster/pushpool-{POOL}")
    assert len(config["subnets"]) == 2 and len(config["security_groups"]) == 1
    assert config["image"].endswith(f"pushpool/{POOL}:latest")
    # The pool's own network, clear of the bystander's CIDR, with DNS hostnames (which
    # awsvpc tasks need, in moto as in ECS); subnets and group recorded in the config.
    ec2, iam = moto.client("ec2"), moto.client("iam")
    [vpc] = [v for v in listing(moto)["vpcs"] if v not in before["vpcs"]]
    block = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"]
    assert not ip_network(block).overlaps(ip_network(BYSTANDER_CIDR)), block
    hostnames = ec2.describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsHostnames")
    assert hostnames["EnableDnsHostnames"]["Value"] is True
    for subnet in ec2.describe_subnets(SubnetIds=config["subnets"])["Subnets"]:
        assert subnet["VpcId"] == vpc
    [group] = ec2.describe_security_groups(GroupIds=config["security_groups"])["SecurityGroups"]
    assert group["VpcId"] == vpc and group["IpPermissions"] == []
    # The AWS-managed policy is there to attach only because the server loaded them.
    execution_role = config["execution_role_arn"].rsplit("/", 1)[-1]
    attached = iam.list_attached_role_policies(RoleName=execution_role)["AttachedPolicies"]
    assert "AmazonECSTaskExecutionRolePolicy" in {p["PolicyName"] for p in attached}

    code, out = invoke("work-pool", "provision-infra", POOL, "--yes")
    assert code == 0, out
    assert "Nothing to create" in out and "will create" not in out

    # -- deploy and run: the test plays the container --------------------------------------
    body = {
        "name": "e2e",
        "flow_name": "hello",
        "entrypoint": "hello.py:hello",
        "work_pool": POOL,
        "source": {"type": "image"},
        "job_variables": {"cpu": 512, "memory": 1024},
    }
    r = live.client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    deployment_id = r.json()["id"]

    run = start_run(live, deployment_id)
    cluster, task_arn = run["infra"]["data"]["cluster"], run["infra"]["id"]
    task = describe_task(moto, cluster, task_arn)
    assert task["lastStatus"] == "RUNNING"
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])[
        "taskDefinition"
    ]
    assert (definition["cpu"], definition["memory"]) == ("512", "1024")
    assert "PUSHPOOL_BOOTSTRAP_TOKEN" not in str(definition)  # per-run values only in overrides

    proc = stand_in_for_the_container(moto, run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = get_run(live, run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == "Hello, world!"
    messages = [
        line["message"] for line in live.client.get(f"/flow-runs/{run['id']}/logs").json()["logs"]
    ]
    assert "Hello, world!" in messages, messages
    links = done["infra_links"]
    assert set(links) == {"task", "logs"}, links
    assert task_arn.rsplit("/", 1)[-1] in links["task"] and "logsV2" in links["logs"]

    # -- the container is gone: stop the task in moto; teardown follows on the tick ------
    assert [t.run_id for t in live.services.store.pending_teardowns(10)] == [run["id"]]
    ecs.stop_task(cluster=cluster, task=task_arn, reason="Essential container in task exited")
    report = live.client.post("/scheduler/tick").json()
    assert report["reconcile"]["torn_down"] == 1, report
    assert live.services.store.pending_teardowns(10) == []
    assert describe_task(moto, cluster, task_arn)["lastStatus"] == "STOPPED"
    assert get_run(live, run["id"])["state"]["type"] == "COMPLETED"
    results_in_the_pool_bucket(moto, live, config["result_storage"])

    # -- a task that stops without the runner's report: the run crashes -----------------
    lost = start_run(live, deployment_id)
    assert lost["infra"]["data"]["task_definition_arn"] == task["taskDefinitionArn"]  # reused
    set_exit_code(lost["infra"]["id"], 137)
    ecs.stop_task(cluster=cluster, task=lost["infra"]["id"], reason=OOM_REASON)
    report = live.client.post("/scheduler/tick").json()
    assert report["reconcile"]["crashed"] == 1, report
    crashed = get_run(live, lost["id"])
    assert crashed["state"]["type"] == "CRASHED", crashed
    assert OOM_REASON in crashed["state"]["message"]
    assert crashed["error"]["exit_code"] == 137
    assert live.services.store.pending_teardowns(10) == []

    # -- deprovision: refused while a deployment uses the pool, then complete -------------
    code, out = invoke("work-pool", "delete", POOL, "--deprovision", "--yes")
    assert code == 1 and "used by 1 deployment" in out, out
    assert live.client.get(f"/work-pools/{POOL}").status_code == 200
    assert live.client.delete(f"/deployments/{deployment_id}").status_code == 204
    code, out = invoke("work-pool", "delete", POOL, "--deprovision", "--yes")
    assert code == 0, out
    for resource in PROVISIONED:
        assert f"removed {resource}\n" in out, (resource, out)
    assert live.client.get(f"/work-pools/{POOL}").status_code == 404
    assert listing(moto) == before


OUTAGE_FLOW = """
import os, time
from pathlib import Path


def finish(name: str, gates: str) -> str:
    print(f"{name} line 0", flush=True)
    (Path(gates) / f"at-{name}").touch()
    while not (Path(gates) / f"go-{name}").exists():
        time.sleep(0.05)
    print(f"{name} line 1", flush=True)
    return f"{name} done"
"""


def test_ecs_runs_survive_a_control_plane_outage(moto: Moto, tmp_path: Path) -> None:
    """kill -9 of the server (its own process) while two ECS "containers" (played by the
    test) finish their flows: one runner delivers after the restart (COMPLETED, each log
    line once); the other gives up (a 1 s delivery window) and exits 0, and its task stops
    with exit code 0: COMPLETED with "not delivered", never run again."""
    code, flows = tmp_path / "code", tmp_path / "gates"
    code.mkdir()
    flows.mkdir()
    (code / "outage_flow.py").write_text(OUTAGE_FLOW)
    containers: dict[str, subprocess.Popen[str]] = {}
    try:
        _outage(moto, tmp_path, code, flows, containers)
    finally:
        for proc in containers.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _outage(
    moto: Moto, tmp_path: Path, code: Path, flows: Path, containers: dict[str, Any]
) -> None:
    with server_process(tmp_path / "home", OUTAGE_SETTINGS) as server:
        with pytest.MonkeyPatch.context() as env, server.client() as client:
            env.setenv("PUSHPOOL_API_URL", f"http://127.0.0.1:{server.port}")
            env.setenv("PUSHPOOL_API_KEY", client.headers["Authorization"].split()[1])
            status, out = invoke(
                "work-pool", "create", "gone", "--type", "ecs", "--provision-infra", "--yes"
            )
            assert status == 0, out
            body = {
                "name": "outage",
                "flow_name": "finish",
                "entrypoint": "outage_flow.py:finish",
                "work_pool": "gone",
                "source": {"type": "image"},
                "job_variables": {"cpu": 512, "memory": 1024},
                "retries": 2,
            }
            r = client.post("/deployments", json=body)
            assert r.status_code == 201, r.text
            runs = {}
            for name, window in (("delivers", None), ("gives-up", "1")):
                params = {"name": name, "gates": str(flows)}
                run = client.post(
                    f"/deployments/{r.json()['id']}/runs", json={"parameters": params}
                ).json()
                runs[name] = run
                containers[name] = _container(moto, run, code, window)
            wait_until(lambda: all((flows / f"at-{n}").exists() for n in runs), 30, "the gates")
            time.sleep(1.5)
        server.kill()
        for name in runs:
            (flows / f"go-{name}").touch()
        assert containers["gives-up"].wait(30) == 0  # gave up delivering: exit 0 all the same
        set_exit_code(runs["gives-up"]["infra"]["id"], 0)
        moto.client("ecs").stop_task(
            cluster=runs["gives-up"]["infra"]["data"]["cluster"],
            task=runs["gives-up"]["infra"]["id"],
            reason="Essential container in task exited",
        )
        time.sleep(DOWN_SECONDS)
        server.start()
        with server.client() as client:
            assert containers["delivers"].wait(60) == 0
            wait_until(
                lambda: all(
                    client.get(f"/flow-runs/{run['id']}").json()["state"]["type"] == "COMPLETED"
                    for run in runs.values()
                ),
                60,
                "COMPLETED",
            )
            time.sleep(2)  # the ticks go on: no retry may follow
            delivered = client.get(f"/flow-runs/{runs['delivers']['id']}").json()
            assert delivered["result"] == "delivers done" and delivered["run_count"] == 1
            lines = [m for m in all_logs(client, runs["delivers"]["id"]) if " line " in m]
            assert lines == ["delivers line 0", "delivers line 1"]
            judged = client.get(f"/flow-runs/{runs['gives-up']['id']}").json()
            assert "not delivered" in judged["state"]["message"]
            assert judged["run_count"] == 1
            for name in runs:
                assert (flows / f"at-{name}").exists()
            client.delete(f"/deployments/{r.json()['id']}")
            with pytest.MonkeyPatch.context() as env:
                env.setenv("PUSHPOOL_API_URL", f"http://127.0.0.1:{server.port}")
                env.setenv("PUSHPOOL_API_KEY", client.headers["Authorization"].split()[1])
                status, out = invoke("work-pool", "delete", "gone", "--deprovision", "--yes")
                assert status == 0, out


def _container(
    moto: Moto, run: dict[str, Any], code: Path, window: str | None
) -> subprocess.Popen[str]:
    """Start what ECS would run for the run's task, in the background (the test plays the
    container; the code is "baked in" at ``code``)."""
    task = describe_task(moto, run["infra"]["data"]["cluster"], run["infra"]["id"])
    override = next(o for o in task["overrides"]["containerOverrides"] if o["name"] == CONTAINER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    env |= {v["name"]: v["value"] for v in override.get("environment", [])}
    if window is not None:
        env["PUSHPOOL_DELIVERY_WINDOW_SECONDS"] = window
    return subprocess.Popen(
        IMAGE_ENTRYPOINT,
        cwd=code,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
