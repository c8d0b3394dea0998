"""Submission, status, cancel and task definitions of the ECS pool type, against moto."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError

from provisioners.base import InfraState, SubmitRequest
from provisioners.ecs import EcsProvisioner
from provisioners.errors import ProvisionerError

REGION = "us-east-1"
TOKEN = "secret-run-token-0123456789"

Request = Callable[..., SubmitRequest]
Make = Callable[..., EcsProvisioner]


_SESSION = boto3.session.Session()


def ecs() -> Any:
    return _SESSION.client("ecs", region_name=REGION)


def cluster_tasks(provisioner: EcsProvisioner) -> list[str]:
    return ecs().list_tasks(cluster=provisioner.config.cluster)["taskArns"]


def described(arn: str) -> dict[str, Any]:
    cluster = arn.split("/")[-2]
    return ecs().describe_tasks(cluster=cluster, tasks=[arn], include=["TAGS"])["tasks"][0]


def definition(arn: str) -> dict[str, Any]:
    return ecs().describe_task_definition(taskDefinition=arn)["taskDefinition"]


# -- what RunTask is asked to do ---------------------------------------------------------


def test_submit_runs_one_tagged_task_with_the_run_env_as_overrides(
    provisioner: EcsProvisioner, request_for: Request, tasks_pinned: None
) -> None:
    request = request_for(job={"env": {"MODE": "fast"}, "tags": {"team": "data"}})
    ref = provisioner.submit(request)
    task = described(ref.id)
    assert task["startedBy"] == request.run_id
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags == {
        "pushpool:pool": "demo",
        "pushpool:run-id": request.run_id,
        "pushpool:attempt": "1",
        "team": "data",
    }
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "flow"
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env == {**request.env, "MODE": "fast"}
    assert ref.type == "ecs" and ref.id == task["taskArn"]
    assert ref.data == {
        "run_id": request.run_id,
        "cluster": provisioner.config.cluster,
        "task_arn": task["taskArn"],
        "task_definition_arn": task["taskDefinitionArn"],
        "region": REGION,
        "log_group": "/pushpool/demo",
        "log_stream": f"pushpool/flow/{task['taskArn'].rsplit('/', 1)[-1]}",
    }


def test_the_task_definition_holds_no_per_run_value(
    provisioner: EcsProvisioner, request_for: Request, tasks_pinned: None
) -> None:
    ref = provisioner.submit(request_for(job={"cpu": 512, "ephemeral_storage_gib": 30}))
    body = definition(str(ref.data["task_definition_arn"]))
    assert TOKEN not in json.dumps(body, default=str)
    (container,) = body["containerDefinitions"]
    assert container["name"] == "flow" and container["memory"] == 1024
    assert not container.get("environment")
    assert (body["cpu"], body["memory"]) == ("512", "1024")
    assert body["networkMode"] == "awsvpc" and body["requiresCompatibilities"] == ["FARGATE"]
    assert body["ephemeralStorage"] == {"sizeInGiB": 30}
    assert body["executionRoleArn"] == provisioner.config.execution_role_arn
    assert body["taskRoleArn"] == provisioner.config.task_role_arn
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == "/pushpool/demo"


def test_task_definitions_are_reused_and_a_change_makes_a_new_one(
    make_provisioner: Make, aws: Any, request_for: Request, tasks_pinned: None
) -> None:
    first = make_provisioner()
    refs = [first.submit(request_for(job={"cpu": 256})) for _ in range(3)]
    assert len({r.data["task_definition_arn"] for r in refs}) == 1
    assert aws.calls.count("register_task_definition") == 1
    # Another process (a fresh cache) finds the registered definition instead of adding one.
    again = make_provisioner().submit(request_for(job={"cpu": 256}))
    assert again.data["task_definition_arn"] == refs[0].data["task_definition_arn"]
    assert aws.calls.count("register_task_definition") == 1
    changed = first.submit(request_for(job={"cpu": 256, "memory": 2048}))
    assert changed.data["task_definition_arn"] != refs[0].data["task_definition_arn"]
    families = ecs().list_task_definition_families(status="ALL")["families"]
    assert sorted(families) == sorted(
        {
            first.task_definition_family({"cpu": 256}),
            first.task_definition_family({"memory": 2048, "cpu": 256}),
        }
    )
    assert all(f.startswith("pushpool-demo-") for f in families)
    assert str(refs[0].data["task_definition_arn"]).endswith(":1")


def test_prune_removes_only_this_pools_unused_definitions(
    make_provisioner: Make, pool_config: dict[str, Any], request_for: Request, tasks_pinned: None
) -> None:
    demo = make_provisioner()
    kept = demo.submit(request_for(job={"cpu": 256})).data["task_definition_arn"]
    dropped = demo.submit(request_for(job={"cpu": 512})).data["task_definition_arn"]
    other = EcsProvisioner("demo-2", pool_config)
    theirs = other.submit(request_for(job={"cpu": 512})).data["task_definition_arn"]
    removed = demo.prune_task_definitions({demo.task_definition_family({"cpu": 256})})
    assert removed == [dropped]
    assert definition(str(kept))["status"] == "ACTIVE"
    assert definition(str(theirs))["status"] == "ACTIVE"
    assert (
        ecs().list_task_definitions(familyPrefix=str(dropped).split("/")[-1].split(":")[0])[
            "taskDefinitionArns"
        ]
        == []
    )
    # The next run that needs it registers it again (AWS would number it :2; moto reuses :1).
    again = demo.submit(request_for(job={"cpu": 512})).data["task_definition_arn"]
    assert definition(str(again))["status"] == "ACTIVE"


def test_prune_keeps_what_deployments_need(
    make_provisioner: Make, request_for: Request, tasks_pinned: None
) -> None:
    """``prune`` (what the service's sweep calls) keeps the definitions of the job
    variables it is given and removes the rest; an invalid one makes it keep everything."""
    demo = make_provisioner()
    kept = demo.submit(request_for(job={"cpu": 256})).data["task_definition_arn"]
    dropped = demo.submit(request_for(job={"cpu": 512})).data["task_definition_arn"]
    assert demo.prune([{"cpu": 512, "memory": 9999}]) == 0  # not a Fargate size: no pruning
    assert definition(str(dropped))["status"] == "ACTIVE"
    assert demo.prune([{"cpu": 256}]) == 1
    assert definition(str(kept))["status"] == "ACTIVE"
    assert demo.setup_notes()  # the control-plane policy at least


# -- idempotency -------------------------------------------------------------------------


def test_a_crash_between_claim_and_submit_adopts_the_task(
    make_provisioner: Make, request_for: Request, tasks_pinned: None
) -> None:
    request = request_for()
    started = make_provisioner().submit(request)
    # The dispatcher crashed before recording ``started``; a new one (a new process) probes.
    fresh = make_provisioner()
    assert fresh.find(request) == started
    assert fresh.submit(request) == started
    assert cluster_tasks(fresh) == [started.id]
    assert fresh.find(request_for(request.run_id, attempt=2)) is None


def test_a_lost_runtask_answer_is_not_a_second_task(
    provisioner: EcsProvisioner, aws: Any, request_for: Request, tasks_pinned: None
) -> None:
    def started_then_timed_out(params: dict[str, Any]) -> Any:
        aws.real("ecs").run_task(**params)
        raise ReadTimeoutError(endpoint_url="https://ecs.us-east-1.amazonaws.com")

    aws.fail("run_task", started_then_timed_out)
    ref = provisioner.submit(request_for())
    assert cluster_tasks(provisioner) == [ref.id]
    assert aws.calls.count("run_task") == 1


def test_the_client_token_and_started_by_derive_from_run_and_attempt(
    provisioner: EcsProvisioner, aws: Any, request_for: Request, tasks_pinned: None
) -> None:
    seen: list[dict[str, Any]] = []

    def spy(params: dict[str, Any]) -> Any:
        seen.append(params)
        return aws.real("ecs").run_task(**params)

    aws.fail("run_task", spy)
    request = request_for(attempt=3)
    provisioner.submit(request)
    assert seen[0]["clientToken"] == f"{request.run_id}-3" == request.idempotency_key
    assert seen[0]["startedBy"] == request.run_id
    assert seen[0]["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1}]
    assert seen[0]["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"


# -- failures and throttling ---------------------------------------------------------------


def test_throttling_is_retried_with_backoff(
    provisioner: EcsProvisioner, aws: Any, sleeps: Any, request_for: Request, make_client_error: Any
) -> None:
    aws.fail(
        "run_task",
        make_client_error("ThrottlingException", "Rate exceeded"),
        make_client_error("ThrottlingException", "Rate exceeded"),
    )
    ref = provisioner.submit(request_for())
    assert cluster_tasks(provisioner) == [ref.id]
    assert sleeps.slept == [0.5, 1.0]


def test_a_role_not_yet_assumable_is_retried(
    provisioner: EcsProvisioner, aws: Any, sleeps: Any, request_for: Request, make_client_error: Any
) -> None:
    message = (
        "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/pushpool-demo-execution'"
        " that was provided for this task."
    )
    aws.fail("run_task", make_client_error("InvalidParameterException", message))
    assert provisioner.submit(request_for()).id in cluster_tasks(provisioner)
    assert len(sleeps.slept) == 1


def capacity_failure(reason: str, detail: str = "") -> Callable[[dict[str, Any]], Any]:
    return lambda params: {
        "tasks": [],
        "failures": [{"arn": "arn:x", "reason": reason, "detail": detail}],
    }


def test_capacity_failures_are_retried_then_reported_as_transient(
    provisioner: EcsProvisioner, aws: Any, sleeps: Any, request_for: Request
) -> None:
    aws.fail("run_task", *[capacity_failure("RESOURCE:MEMORY")] * 6)
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for())
    assert info.value.transient and "RESOURCE:MEMORY" in str(info.value)
    assert sleeps.slept == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert cluster_tasks(provisioner) == []


def test_a_spot_capacity_shortage_then_success(
    provisioner: EcsProvisioner, aws: Any, request_for: Request
) -> None:
    aws.fail("run_task", capacity_failure("Capacity is unavailable at this time."))
    ref = provisioner.submit(request_for(job={"capacity_provider": "FARGATE_SPOT"}))
    assert described(ref.id)["capacityProviderName"] == "FARGATE_SPOT"


def test_a_permanent_runtask_failure_is_reported_at_once(
    provisioner: EcsProvisioner, aws: Any, sleeps: Any, request_for: Request
) -> None:
    aws.fail("run_task", capacity_failure("MISSING", "the cluster has no such capacity provider"))
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for())
    assert not info.value.transient
    assert "MISSING" in str(info.value) and "no such capacity provider" in str(info.value)
    assert sleeps.slept == []


@pytest.mark.filterwarnings(
    # moto's serializer warns that EC2's InvalidSubnetID.NotFound is no ECS error shape.
    r"ignore:Exception\(InvalidSubnetIdError\) with code InvalidSubnetID.NotFound:UserWarning"
)
def test_an_invalid_subnet_fails_without_retry_or_secret(
    provisioner: EcsProvisioner, sleeps: Any, request_for: Request
) -> None:
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for(job={"subnets": ["subnet-doesnotexist"]}))
    assert not info.value.transient
    assert "InvalidSubnetID.NotFound" in str(info.value)
    assert TOKEN not in str(info.value)
    assert sleeps.slept == []


def test_the_run_token_never_reaches_errors_or_logs(
    provisioner: EcsProvisioner,
    aws: Any,
    request_for: Request,
    make_client_error: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pushpool")
    echoed = f"Invalid override value {TOKEN}"  # as if AWS echoed the request back
    aws.fail(
        "run_task",
        make_client_error("ThrottlingException", echoed),
        make_client_error("ClientException", echoed),
    )
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for())
    assert TOKEN not in str(info.value) and "***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    provisioner.submit(request_for())
    assert "RunTask attempt 1 failed (ThrottlingException)" in caplog.text
    assert TOKEN not in caplog.text


def test_an_unprovisioned_pool_says_what_is_missing(
    aws_account: None, request_for: Request
) -> None:
    provisioner = EcsProvisioner("bare", {"region": REGION, "image": "img"})
    with pytest.raises(ProvisionerError, match=r"has no cluster.*provision-infra bare"):
        provisioner.submit(request_for())
    assert provisioner.find(request_for()) is None
    assert provisioner.list_orphans(set()) == []


def test_invalid_job_variables_fail_without_echoing_values(
    provisioner: EcsProvisioner, request_for: Request
) -> None:
    with pytest.raises(ProvisionerError, match="memory") as info:
        provisioner.submit(request_for(job={"cpu": 256, "memory": 4096, "env": {"K": TOKEN}}))
    assert TOKEN not in str(info.value) and not info.value.transient


# -- status, cancel, teardown --------------------------------------------------------------


def test_status_follows_the_task_to_its_exit_code(
    provisioner: EcsProvisioner, request_for: Request, backend_task: Any, tasks_pinned: None
) -> None:
    ref = provisioner.submit(request_for())
    task = backend_task(ref.id)
    task.status = "PROVISIONING"
    assert provisioner.status(ref).state == InfraState.PENDING
    task.status = "RUNNING"
    assert provisioner.status(ref).state == InfraState.RUNNING
    task.status = "DEPROVISIONING"
    assert provisioner.status(ref).state == InfraState.RUNNING  # not gone until STOPPED
    task.status, task.stopped_reason = "STOPPED", "Essential container in task exited"
    task.stop_code = "EssentialContainerExited"
    task.containers[0].exitCode = 3
    status = provisioner.status(ref)
    assert (status.state, status.exit_code) == (InfraState.EXITED, 3)
    assert status.reason == (
        "ECS task stopped (EssentialContainerExited): Essential container in task exited"
    )


def test_moto_progression_reaches_exited(
    provisioner: EcsProvisioner, request_for: Request, backend_task: Any, tasks_manual: None
) -> None:
    ref = provisioner.submit(request_for())
    backend_task(ref.id).containers[0].exitCode = 0
    states = [provisioner.status(ref).state for _ in range(5)]
    assert states[0] == InfraState.RUNNING and states[-1] == InfraState.EXITED
    assert provisioner.status(ref).exit_code == 0


def test_a_task_that_failed_to_start_is_exited_without_exit_code(
    provisioner: EcsProvisioner, request_for: Request, backend_task: Any, tasks_pinned: None
) -> None:
    ref = provisioner.submit(request_for())
    task = backend_task(ref.id)
    task.status, task.stop_code, task.containers = "STOPPED", "TaskFailedToStart", []
    task.stopped_reason = "CannotPullContainerError: pull image manifest has been retried 5 times"
    status = provisioner.status(ref)
    assert status.state == InfraState.EXITED and status.exit_code is None
    assert status.reason is not None
    assert "TaskFailedToStart" in status.reason and "CannotPullContainerError" in status.reason


def test_unknown_tasks_and_clusters_are_missing(
    provisioner: EcsProvisioner, request_for: Request, tasks_pinned: None
) -> None:
    ref = provisioner.submit(request_for())
    unknown = ref.model_copy(update={"id": ref.id.rsplit("/", 1)[0] + "/0123456789abcdef"})
    assert provisioner.status(unknown).state == InfraState.MISSING
    provisioner.teardown(unknown)  # nothing to stop: fine
    gone = ref.model_copy(update={"data": {**ref.data, "cluster": "no-such-cluster"}})
    assert provisioner.status(gone).state == InfraState.MISSING
    provisioner.cancel(gone, grace_seconds=1)


def test_cancel_stops_once_with_a_reason(
    provisioner: EcsProvisioner, aws: Any, request_for: Request, tasks_pinned: None
) -> None:
    ref = provisioner.submit(request_for())
    provisioner.cancel(ref, grace_seconds=5)
    provisioner.cancel(ref, grace_seconds=5)
    provisioner.teardown(ref)
    assert aws.calls.count("stop_task") == 1
    task = described(ref.id)
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == "Cancelled by pushpool"
    status = provisioner.status(ref)
    assert status.state == InfraState.EXITED and "Cancelled by pushpool" in str(status.reason)


def test_orphans_are_this_pools_tasks_of_dead_runs(
    make_provisioner: Make, pool_config: dict[str, Any], request_for: Request, tasks_pinned: None
) -> None:
    demo = make_provisioner()
    live, dead = request_for(), request_for()
    refs = {r.run_id: demo.submit(r) for r in (live, dead)}
    EcsProvisioner("other", pool_config).submit(request_for())  # same cluster, other pool
    orphans = demo.list_orphans({live.run_id})
    assert [o.id for o in orphans] == [refs[dead.run_id].id]
    assert orphans[0].data["run_id"] == dead.run_id
    demo.teardown(orphans[0])
    assert demo.list_orphans({live.run_id}) == []


def test_infra_links_point_at_the_task_and_its_log_stream(
    provisioner: EcsProvisioner, request_for: Request, tasks_pinned: None
) -> None:
    ref = provisioner.submit(request_for())
    links = provisioner.infra_links(ref)
    task_id = ref.id.rsplit("/", 1)[-1]
    assert links["task"] == (
        f"https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/pushpool-demo/tasks/{task_id}"
        "/configuration?region=us-east-1"
    )
    assert links["logs"] == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:"
        f"log-groups/log-group/$252Fpushpool$252Fdemo/log-events/pushpool$252Fflow$252F{task_id}"
    )
    quiet = provisioner.submit(request_for(job={"cloudwatch_logs": False}))
    assert quiet.data["log_group"] is None and "logs" not in provisioner.infra_links(quiet)


def test_status_many_asks_once_per_hundred_tasks(
    provisioner: EcsProvisioner,
    request_for: Request,
    aws: Any,
    tasks_pinned: None,
    make_client_error: Any,
) -> None:
    """The reconciler's pass over many ECS runs is a few DescribeTasks, not one each."""
    refs = [provisioner.submit(request_for(f"run-{i:03d}")) for i in range(130)]
    ecs().stop_task(cluster=provisioner.config.cluster, task=refs[0].id, reason="gone")
    aws.calls.clear()
    statuses = provisioner.status_many(refs)
    assert aws.calls == ["describe_tasks", "describe_tasks"]
    assert statuses[refs[0].id].finished
    assert {s.state for r, s in statuses.items() if r != refs[0].id} == {InfraState.RUNNING}
    aws.fail("describe_tasks", make_client_error("AccessDeniedException", op="DescribeTasks"))
    assert provisioner.status_many(refs) == {}  # unanswered: the reconciler asks next pass
