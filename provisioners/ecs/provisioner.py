"""The ``ecs`` pool type: every flow run is one ECS task on Fargate, pushed with RunTask.

Idempotency rests on two legs: ``RunTask``'s ``clientToken`` (derived from run id and
attempt) and, because not every ECS double honours it, a look for a task already
started for the attempt (``ListTasks`` by ``startedBy`` = run id, then its tags) before
starting one. Pool-level infrastructure is planned, applied, recorded and removed by
:mod:`provisioners.ecs.infra`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from provisioners.base import (
    InfraRef,
    InfraState,
    InfraStatus,
    JobVariables,
    Problem,
    Progress,
    Provisioner,
    ProvisionPlan,
    SubmitRequest,
)
from provisioners.ecs import links, policy
from provisioners.ecs.aws import AwsClient, EcsTask
from provisioners.ecs.errors import AwsError
from provisioners.ecs.infra import Context, Infrastructure
from provisioners.ecs.launch import Launcher
from provisioners.ecs.models import EcsJobVariables, EcsPoolConfig
from provisioners.ecs.names import ATTEMPT_TAG, POOL_TAG, RUN_TAG, Names
from provisioners.ecs.ratelimit import TokenBucket, run_task_limiter
from provisioners.ecs.runspec import (
    RunSpec,
    job_variables,
    run_spec,
    run_task_params,
    started_by,
    task_definition_content,
)
from provisioners.ecs.secrets import PoolSecrets
from provisioners.ecs.status import is_stopped, tag, task_status
from provisioners.ecs.taskdef import TaskDefinitions
from provisioners.errors import ProvisionerError, scrubbed
from provisioners.ratelimit import Backoff

log = logging.getLogger("pushpool.ecs")

TYPE = "ecs"
CANCEL_REASON = "Cancelled by pushpool"
TEARDOWN_REASON = "Stopped by pushpool: the run is over"
#: The runner's single-use credential in a task's environment (masked in errors).
RUN_TOKEN_ENV = "PUSHPOOL_BOOTSTRAP_TOKEN"


class EcsProvisioner(Provisioner):
    type = TYPE
    config_model = EcsPoolConfig
    job_variables_model = EcsJobVariables

    def deployment_problems(
        self, source: Mapping[str, Any], job_variables: JobVariables
    ) -> list[Problem]:
        """Adds: the pool has a cluster to run tasks in."""
        problems = super().deployment_problems(source, job_variables)
        if not self.config.cluster:
            problems.append(
                (
                    "work_pool",
                    "the ECS pool has no cluster: run `pushpool work-pool provision-infra "
                    "POOL` or set its `cluster`",
                )
            )
        return problems

    config: EcsPoolConfig

    def __init__(
        self,
        pool_name: str,
        config: dict[str, Any],
        *,
        aws: AwsClient | None = None,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(pool_name, config)
        self.names = Names.for_pool(pool_name)
        self.aws = aws or AwsClient(self.config.region)
        self.task_definitions = TaskDefinitions(self.aws, self.names)
        self.secrets = PoolSecrets(self.aws, self.names)
        self._limiter, self._sleep, self._backoff = limiter, sleep, backoff

    @cached_property
    def launcher(self) -> Launcher:
        limiter = self._limiter or run_task_limiter(self.aws.region)
        return Launcher(self.aws, limiter, self._sleep, self._backoff)

    # -- submission ------------------------------------------------------------------------
    def _spec(self, job: EcsJobVariables) -> RunSpec:
        return run_spec(self.config, job, self.names, self.aws.region)

    def _ref(self, task: EcsTask, run_id: str, spec: RunSpec | None) -> InfraRef:
        arn = task["taskArn"]
        logs = spec.logs if spec is not None else None
        return InfraRef(
            type=self.type,
            id=arn,
            data={
                "run_id": run_id,
                "cluster": task["clusterArn"],
                "task_arn": arn,
                "task_definition_arn": task["taskDefinitionArn"],
                "region": self.aws.region,
                "log_group": logs.group if logs else None,
                "log_stream": logs.stream(arn.rsplit("/", 1)[-1]) if logs else None,
            },
        )

    def _started(self, request: SubmitRequest, spec: RunSpec) -> EcsTask | None:
        """The task already started for this attempt, if any (the oldest, if several)."""
        arns = self.aws.list_tasks(spec.cluster, started_by=started_by(request.run_id))
        if not arns:
            return None
        ours = {
            POOL_TAG: self.pool_name,
            RUN_TAG: request.run_id,
            ATTEMPT_TAG: str(request.attempt),
        }
        tasks = [
            t
            for t in self.aws.describe_tasks(spec.cluster, arns)["tasks"]
            if all(tag(t, k) == v for k, v in ours.items())
        ]
        if not tasks:
            return None
        return min(tasks, key=lambda t: (str(t.get("createdAt", "")), t["taskArn"]))

    def find(self, request: SubmitRequest) -> InfraRef | None:
        try:
            spec = self._spec(job_variables(request.job_variables))
        except ProvisionerError:
            return None  # unrunnable as configured: nothing can have been started
        task = self._started(request, spec)
        return None if task is None else self._ref(task, request.run_id, spec)

    def submit(self, request: SubmitRequest) -> InfraRef:
        try:
            return self._submit(request)
        except ProvisionerError as exc:
            masked = [request.env.get(RUN_TOKEN_ENV, ""), *request.secret_env_values().values()]
            clean = scrubbed(exc, masked)
            if clean is not None:
                raise clean from None
            raise

    def _submit(self, request: SubmitRequest) -> InfraRef:
        job = job_variables(request.job_variables)
        spec = self._spec(job)
        existing = self._started(request, spec)
        if existing is not None:
            arn = existing["taskArn"]
            log.info("run %s attempt %d: adopting %s", request.run_id, request.attempt, arn)
            return self._ref(existing, request.run_id, spec)
        spec = self._with_secrets(spec, request)
        definition = self.task_definitions.ensure(spec.content)
        params = run_task_params(spec, definition, request, job, self.pool_name)
        try:
            task = self.launcher.run(params, started=lambda: self._started(request, spec))
        except ProvisionerError:
            self.task_definitions.forget(self.task_definitions.family(spec.content))
            raise
        log.info("run %s attempt %d: started %s", request.run_id, request.attempt, task["taskArn"])
        return self._ref(task, request.run_id, spec)

    # -- watching and stopping ---------------------------------------------------------
    def _with_secrets(self, spec: RunSpec, request: SubmitRequest) -> RunSpec:
        """``spec`` whose container takes the run's block secrets from Secrets Manager."""
        if not request.secret_env:
            return spec
        if not spec.content.execution_role_arn:
            raise ProvisionerError(
                "block secrets need a task execution role to read them: set "
                "`execution_role_arn` (provisioning does)"
            )
        arns = self.secrets.ensure(request.secret_env)
        content = dataclasses.replace(spec.content, secrets=tuple(sorted(arns.items())))
        return dataclasses.replace(spec, content=content)

    def _describe(self, ref: InfraRef) -> EcsTask | None:
        try:
            page = self.aws.describe_tasks(str(ref.data["cluster"]), [ref.id])
        except AwsError as exc:
            if exc.code == "ClusterNotFoundException":
                return None
            raise
        return next((t for t in page["tasks"] if t.get("taskArn") == ref.id), None)

    def status(self, ref: InfraRef) -> InfraStatus:
        return _status_of(ref.id, self._describe(ref))

    def status_many(self, refs: Sequence[InfraRef]) -> dict[str, InfraStatus]:
        """One DescribeTasks per cluster and 100 tasks, instead of one per task."""
        by_cluster: dict[str, list[str]] = {}
        for ref in refs:
            by_cluster.setdefault(str(ref.data["cluster"]), []).append(ref.id)
        statuses: dict[str, InfraStatus] = {}
        for cluster, arns in by_cluster.items():
            try:
                tasks = self.aws.describe_tasks(cluster, arns)["tasks"]
            except AwsError as exc:
                if exc.code != "ClusterNotFoundException":
                    log.warning("status of %d task(s) in %s: %s", len(arns), cluster, exc)
                    continue  # asked again on the next pass
                tasks = []
            known = {t.get("taskArn"): t for t in tasks}
            for arn in arns:
                statuses[arn] = _status_of(arn, known.get(arn))
        return statuses

    def _stop(self, ref: InfraRef, reason: str) -> None:
        task = self._describe(ref)
        if task is None or is_stopped(task):
            return
        try:
            self.aws.stop_task(str(ref.data["cluster"]), ref.id, reason)
        except AwsError as exc:
            gone = exc.code == "ClusterNotFoundException" or (
                exc.code == "InvalidParameterException" and "not found" in str(exc).lower()
            )
            if not gone:
                raise

    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        # ECS sends SIGTERM, then SIGKILL after the container's stopTimeout (30 s default).
        self._stop(ref, CANCEL_REASON)

    def teardown(self, ref: InfraRef) -> None:
        self._stop(ref, TEARDOWN_REASON)

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        cluster = self.config.cluster
        if not cluster:
            return []
        arns = self.aws.list_tasks(cluster, desired_status="RUNNING")
        orphans = []
        for task in self.aws.describe_tasks(cluster, arns)["tasks"] if arns else []:
            run_id = tag(task, RUN_TAG)
            if tag(task, POOL_TAG) == self.pool_name and run_id and run_id not in live_run_ids:
                orphans.append(self._ref(task, run_id, None))
        return sorted(orphans, key=lambda r: r.id)

    def infra_links(self, ref: InfraRef) -> dict[str, str]:
        region = str(ref.data.get("region") or self.aws.region)
        found = {"task": links.task_url(region, str(ref.data["cluster"]), ref.id)}
        group, stream = ref.data.get("log_group"), ref.data.get("log_stream")
        if group and stream:
            found["logs"] = links.log_stream_url(region, str(group), str(stream))
        return found

    def log_tail(self, ref: InfraRef, max_lines: int = 200) -> list[str]:
        """The last lines of the task's CloudWatch log stream (``logs:GetLogEvents``), or
        ``[]`` when the task had no log configuration or its stream never appeared."""
        group, stream = ref.data.get("log_group"), ref.data.get("log_stream")
        if not group or not stream:
            return []
        try:
            page = self.aws.call(
                "logs",
                "get_log_events",
                logGroupName=str(group),
                logStreamName=str(stream),
                limit=max(1, min(max_lines, 10_000)),
                startFromHead=False,
            )
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return []
            raise
        return [str(event.get("message", "")) for event in page.get("events", [])]

    # -- task definitions --------------------------------------------------------------
    def task_definition_family(self, job: dict[str, Any]) -> str:
        """The family runs with these job variables use (for :meth:`prune_task_definitions`)."""
        content = task_definition_content(
            self.config, job_variables(job), self.names, self.aws.region
        )
        return self.task_definitions.family(content)

    def prune_task_definitions(self, keep: set[str]) -> list[str]:
        """Deregister and delete this pool's task definitions not in ``keep`` (families or
        ARNs); return the ARNs removed."""
        return self.task_definitions.prune(keep)

    def prune(self, job_variables: list[dict[str, Any]]) -> int:
        """Remove task definitions no deployment of the pool would use any more."""
        try:
            keep = {self.task_definition_family(job) for job in job_variables}
        except (ValueError, ProvisionerError) as exc:  # a deployment no longer fits: keep all
            log.warning("not pruning task definitions: %s", exc)
            return 0
        return len(self.prune_task_definitions(keep))

    def prune_secrets(self, keep: set[str]) -> int:
        """Delete the pool's Secrets Manager secrets no deployment references any more."""
        return len(self.secrets.prune(keep))

    # -- pool infrastructure -----------------------------------------------------------
    def _infrastructure(self) -> Infrastructure:
        ctx = Context(
            self.aws,
            self.names,
            self._sleep,
            retention_days=self.config.log_retention_days,
            result_retention_days=self.config.result_retention_days,
        )
        return Infrastructure(ctx)

    def plan(self) -> ProvisionPlan:
        return self._infrastructure().plan()

    def provision(self, plan: ProvisionPlan, progress: Progress | None = None) -> dict[str, Any]:
        values = self._infrastructure().apply(plan, self.config.provisioned, progress)
        values["region"] = self.aws.region
        uri = values.get("ecr_repository_uri")
        if self.config.image is None and uri:
            values["image"] = f"{uri}:latest"
        return values

    def _stop_pool_tasks(self) -> None:
        try:
            orphans = self.list_orphans(set())
        except AwsError as exc:
            if exc.code == "ClusterNotFoundException":
                return
            raise
        for ref in orphans:
            self.teardown(ref)

    def deprovision(self, progress: Progress | None = None) -> None:
        self._stop_pool_tasks()
        removed = self.prune_task_definitions(set())
        if removed:
            log.info("removed %d task definition revision(s)", len(removed))
        secrets = self.secrets.remove_all()
        if secrets:
            log.info("removed %d block secret(s)", len(secrets))
        self._infrastructure().remove(self.config.provisioned, progress)

    def image_push_commands(self) -> list[str]:
        """How to build the runner image and push it to the pool's ECR repository."""
        uri = self.config.ecr_repository_uri
        return links.push_commands(uri, self.aws.region) if uri else []

    def setup_notes(self) -> dict[str, str]:
        notes = {
            "IAM policy the control plane needs for this pool": json.dumps(
                self.control_plane_policy(), indent=2
            )
        }
        commands = self.image_push_commands()
        if commands:
            notes["Build and push the runner image (runner_image/Dockerfile)"] = "\n".join(commands)
        return notes

    def control_plane_policy(self) -> dict[str, Any]:
        """The IAM policy the control plane's identity needs for this pool."""
        return policy.control_plane_policy(policy.scope_for(self.config, self.names))


def _status_of(arn: str, task: EcsTask | None) -> InfraStatus:
    if task is None:
        return InfraStatus(InfraState.MISSING, reason=f"ECS does not know task {arn}")
    return task_status(task)
