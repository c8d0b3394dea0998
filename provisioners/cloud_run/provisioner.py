"""The ``cloud-run`` pool type: every flow run is one Cloud Run job execution, pushed
without a worker.

Idempotency: one job per attempt under a deterministic name (:func:`names.job_id`), created
with a start execution token, so one create call makes the job and its execution. A 409
on create means the attempt's job exists: it is adopted, never "failed". After an answer
that may have been lost (429, 5xx, no answer) the provisioner looks before it creates
again. Teardown deletes the job with its executions (and the environment in it); the
reconciler's sweep deletes labelled jobs of runs that are over, so the region's job quota
never fills with leftovers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from provisioners.base import (
    InfraRef,
    InfraState,
    InfraStatus,
    Progress,
    Provisioner,
    ProvisionPlan,
    SubmitRequest,
)
from provisioners.cloud_run import links
from provisioners.cloud_run.errors import GcpError
from provisioners.cloud_run.gcp import Gcp, Resource
from provisioners.cloud_run.infra import Infrastructure, setup_notes
from provisioners.cloud_run.jobspec import job_body, job_variables
from provisioners.cloud_run.models import CloudRunJobVariables, CloudRunPoolConfig
from provisioners.cloud_run.names import (
    ATTEMPT_LABEL,
    POOL_LABEL,
    RUN_ANNOTATION,
    RUN_LABEL,
    job_id,
    label_value,
    run_labels,
)
from provisioners.cloud_run.secrets import PoolSecrets
from provisioners.cloud_run.status import (
    execution_status,
    finished,
    first_execution,
    job_failure,
    needs_task,
)
from provisioners.errors import CapacityUnavailable, ProvisionerError, scrubbed
from provisioners.ratelimit import Backoff, TokenBucket

log = logging.getLogger("pushpool.cloud_run")

TYPE = "cloud-run"
#: How long a run waits in AwaitingCapacity after a quota answer, seconds.
QUOTA_RETRY_SECONDS = 60.0
_limiters: dict[tuple[str, str, float, int], TokenBucket] = {}
_limiters_lock = threading.Lock()


def admin_api_limiter(config: CloudRunPoolConfig) -> TokenBucket:
    """The process-wide bucket for Admin API writes in the pool's project and region
    (shared by the pools there that configure the same pace)."""
    key = (config.project, config.region, config.api_writes_per_second, config.api_write_burst)
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = TokenBucket(config.api_writes_per_second, config.api_write_burst)
        return _limiters[key]


class CloudRunProvisioner(Provisioner):
    type = TYPE
    config_model = CloudRunPoolConfig
    job_variables_model = CloudRunJobVariables
    config: CloudRunPoolConfig

    def __init__(
        self,
        pool_name: str,
        config: dict[str, Any],
        *,
        gcp: Gcp | None = None,
        limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__(pool_name, config)
        self.gcp = gcp or Gcp(self.config.project, self.config.region)
        self._limiter, self._sleep = limiter, sleep
        self.backoff = backoff or Backoff(attempts=5)
        self.secrets = PoolSecrets(self.gcp, pool_name)

    @cached_property
    def limiter(self) -> TokenBucket:
        return self._limiter or admin_api_limiter(self.config)

    # -- submission ------------------------------------------------------------------------
    def _ref(self, name: str, run_id: str, attempt: int | str | None) -> InfraRef:
        return InfraRef(
            type=self.type,
            id=name,
            data={
                "run_id": run_id,
                "attempt": int(attempt) if attempt not in (None, "") else None,
                "project": self.config.project,
                "region": self.config.region,
                "job": name.rsplit("/", 1)[-1],
            },
        )

    def _ours(self, job: Resource, request: SubmitRequest) -> bool:
        labels = job.get("labels") or {}
        expected = run_labels(self.pool_name, request.run_id, request.attempt)
        annotations = job.get("annotations") or {}
        same_run = annotations.get(RUN_ANNOTATION, request.run_id) == request.run_id
        return same_run and all(labels.get(k) == v for k, v in expected.items())

    def find(self, request: SubmitRequest) -> InfraRef | None:
        job = self.gcp.get_job(job_id(request.run_id, request.attempt))
        if job is None or not self._ours(job, request):
            return None
        return self._ref(str(job["name"]), request.run_id, request.attempt)

    def submit(self, request: SubmitRequest) -> InfraRef:
        try:
            return self._submit(request)
        except ProvisionerError as exc:
            clean = scrubbed(exc, request.secret_texts())
            if clean is None:
                raise
            raise clean from None

    def _secrets(self, job: CloudRunJobVariables, request: SubmitRequest) -> dict[str, str]:
        """The run's block secrets as Secret Manager versions its job's account may read."""
        if not request.secret_env:
            return {}
        account = job.service_account or self.config.service_account
        if not account:
            raise ProvisionerError(
                "block secrets need the job's service account to read them: set the pool's "
                "service_account (provisioning does) or the job variable service_account"
            )
        return self.secrets.ensure(request.secret_env, f"serviceAccount:{account}")

    def _submit(self, request: SubmitRequest) -> InfraRef:
        job = job_variables(request.job_variables)
        body = job_body(self.config, self.pool_name, job, request, self._secrets(job, request))
        name = job_id(request.run_id, request.attempt)
        for attempt in range(self.backoff.attempts):
            self.limiter.acquire()
            try:
                self.gcp.create_job(name, body)
            except GcpError as exc:
                outcome = self._after_create_error(exc, request, attempt)
                if outcome is not None:
                    return outcome
                continue
            log.info("run %s attempt %d: created job %s", request.run_id, request.attempt, name)
            return self._ref(self.gcp.job_name(name), request.run_id, request.attempt)
        raise AssertionError("unreachable")

    def _after_create_error(
        self, exc: GcpError, request: SubmitRequest, attempt: int
    ) -> InfraRef | None:
        """What a failed create means: the adopted job, ``None`` to try again, or raise."""
        if exc.conflict:
            return self._adopt(request)
        if exc.quota:
            raise CapacityUnavailable(
                f"Cloud Run quota reached in {self.config.region}: {exc.reason or exc.status}",
                retry_after_seconds=QUOTA_RETRY_SECONDS,
            ) from exc
        if not exc.transient or attempt == self.backoff.attempts - 1:
            raise exc
        log.warning(
            "creating the job of run %s: %s %s; retrying", request.run_id, exc.status, exc.reason
        )
        self._sleep(self.backoff.delay(attempt))
        return self.find(request)  # the lost answer may have created it after all

    def _adopt(self, request: SubmitRequest) -> InfraRef:
        found = self.find(request)
        if found is None:
            raise ProvisionerError(
                f"a Cloud Run job named {job_id(request.run_id, request.attempt)} exists and"
                " is not this attempt's (or is being deleted)",
                transient=True,
            )
        log.info("run %s attempt %d: adopting %s", request.run_id, request.attempt, found.id)
        return found

    # -- watching ------------------------------------------------------------------------
    def _executions(self, ref: InfraRef) -> list[Resource] | None:
        """The job's executions, or ``None`` if the job is gone."""
        try:
            return self.gcp.list_executions(ref.id)
        except GcpError as exc:
            if exc.not_found:
                return None
            raise

    def _task(self, execution: Resource) -> Resource | None:
        """The execution's one task (its exit code), if Cloud Run still has it."""
        try:
            tasks = self.gcp.list_tasks(str(execution["name"]))
        except GcpError as exc:
            if exc.not_found:
                return None
            raise
        return tasks[0] if tasks else None

    def _status_of(self, ref: InfraRef, executions: list[Resource] | None) -> InfraStatus:
        if executions is None:
            return InfraStatus(InfraState.MISSING, reason=f"Cloud Run has no job {ref.id}")
        execution = first_execution(executions)
        if execution is None:
            return self._unstarted(ref)
        task = self._task(execution) if needs_task(execution) else None
        return execution_status(execution, task)

    def _unstarted(self, ref: InfraRef) -> InfraStatus:
        """A job without an execution: still starting it, or Cloud Run could not (a missing
        image, say: the job's terminal condition says so, and nothing will ever run)."""
        job = self.gcp.get_job(ref.id.rsplit("/", 1)[-1])
        if job is None:
            return InfraStatus(InfraState.MISSING, reason=f"Cloud Run has no job {ref.id}")
        failure = job_failure(job)
        if failure is None:
            return InfraStatus(InfraState.PENDING)
        return InfraStatus(InfraState.EXITED, reason=failure)

    def status(self, ref: InfraRef) -> InfraStatus:
        return self._status_of(ref, self._executions(ref))

    def status_many(self, refs: Sequence[InfraRef]) -> dict[str, InfraStatus]:
        """One listing of the region's executions (a page per 500), not a call per run;
        plus a task read for each run that failed, and a look at any job not listed."""
        if not refs:
            return {}
        try:
            listed = self.gcp.list_executions(f"{self.gcp.parent}/jobs/-")
        except GcpError as exc:
            if not exc.not_found:
                log.warning("status of %d Cloud Run job(s): %s", len(refs), exc)
                return {}
            return super().status_many(refs)  # a server without the "-" wildcard
        by_job: dict[str, list[Resource]] = {}
        for execution in listed:
            by_job.setdefault(str(execution["name"]).rsplit("/executions/", 1)[0], []).append(
                execution
            )
        statuses: dict[str, InfraStatus] = {}
        for ref in refs:
            try:
                executions = by_job.get(ref.id)
                if executions is None:  # not started yet, or gone: ask about this one
                    statuses[ref.id] = self.status(ref)
                else:
                    statuses[ref.id] = self._status_of(ref, executions)
            except ProvisionerError as exc:
                log.warning("status of %s: %s", ref.id, exc)
        return statuses

    # -- stopping and cleaning up -------------------------------------------------------
    def _cancel_running(self, ref: InfraRef) -> str:
        """Cancel the job's execution if it is still going. Returns what was found:
        ``"gone"`` (no job), ``"unstarted"`` (no execution yet) or ``"execution"``."""
        executions = self._executions(ref)
        if executions is None:
            return "gone"
        execution = first_execution(executions)
        if execution is None:
            return "unstarted"
        if not finished(execution):
            self.limiter.acquire()
            try:
                self.gcp.cancel_execution(str(execution["name"]))
            except GcpError as exc:
                if exc.status not in (400, 404, 409):  # finished or gone meanwhile
                    raise
        return "execution"

    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        # Cloud Run sends SIGTERM, then SIGKILL 10 s later; the grace is Cloud Run's.
        if self._cancel_running(ref) == "unstarted":
            self._delete(ref)  # no execution yet: deleting the job is what stops it

    def teardown(self, ref: InfraRef) -> None:
        """Cancel what still runs, then delete the job and its executions."""
        if self._cancel_running(ref) != "gone":
            self._delete(ref)

    def _delete(self, ref: InfraRef) -> None:
        self.limiter.acquire()
        try:
            deleted = self.gcp.delete_job(ref.id)
        except GcpError as exc:
            if exc.status in (400, 409):  # an execution still stopping: later
                raise ProvisionerError(str(exc), transient=True) from exc
            raise
        if deleted:
            log.info("deleted Cloud Run job %s", ref.id)

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        """Jobs labelled as this pool's whose run is not live (finished ones included)."""
        pool = label_value(self.pool_name)
        orphans = []
        for job in self.gcp.list_jobs():
            labels = job.get("labels") or {}
            if labels.get(POOL_LABEL) != pool:
                continue
            run_id = (job.get("annotations") or {}).get(RUN_ANNOTATION) or labels.get(RUN_LABEL)
            if run_id and run_id not in live_run_ids:
                orphans.append(self._ref(str(job["name"]), run_id, labels.get(ATTEMPT_LABEL)))
        return sorted(orphans, key=lambda r: r.id)

    # -- for humans ----------------------------------------------------------------------
    def infra_links(self, ref: InfraRef) -> dict[str, str]:
        """The job in the console, its logs, and the execution's own ``log_uri`` while Cloud
        Run still has it (one read; left out if it cannot be had)."""
        job = ref.id.rsplit("/", 1)[-1]
        project = str(ref.data.get("project") or self.config.project)
        region = str(ref.data.get("region") or self.config.region)
        found = {
            "job": links.job_url(project, region, job),
            "logs": links.logs_url(project, region, job),
        }
        try:
            execution = first_execution(self._executions(ref) or [])
        except ProvisionerError as exc:
            log.info("no execution link for %s: %s", ref.id, exc)
            execution = None
        if execution is not None and execution.get("log_uri"):
            found["execution_logs"] = str(execution["log_uri"])
        return found

    def log_tail(self, ref: InfraRef, max_lines: int = 200) -> list[str]:
        region = str(ref.data.get("region") or self.config.region)
        query = links.log_filter(region, ref.id.rsplit("/", 1)[-1])
        try:
            return self.gcp.log_lines(query, max_lines)
        except GcpError as exc:
            if exc.transient:
                raise
            log.warning("no platform log for %s: %s", ref.id, exc)
            return []

    # -- pool infrastructure -----------------------------------------------------------
    def _infrastructure(self) -> Infrastructure:
        return Infrastructure(self.config, self.pool_name)

    def plan(self) -> ProvisionPlan:
        return self._infrastructure().plan()

    def provision(self, plan: ProvisionPlan, progress: Progress | None = None) -> dict[str, Any]:
        return self._infrastructure().apply(plan, self.config.provisioned, progress)

    def deprovision(self, progress: Progress | None = None) -> None:
        """Delete the pool's jobs, then exactly what provisioning recorded."""
        try:
            orphans = self.list_orphans(set())
        except GcpError as exc:
            if exc.status not in (403, 404):  # the Run API is off or gone: no jobs
                raise
            orphans = []
        for ref in orphans:
            self.teardown(ref)
        self._remove_secrets()
        self._infrastructure().remove(self.config.provisioned, progress)

    def _remove_secrets(self) -> None:
        try:
            removed = self.secrets.remove_all()
        except GcpError as exc:
            if exc.status not in (403, 404):  # the Secret Manager API is off: no secrets
                raise
            removed = []
        if removed:
            log.info("removed %d block secret(s)", len(removed))

    def prune_secrets(self, keep: set[str]) -> int:
        """Delete the pool's Secret Manager secrets no deployment references any more."""
        try:
            return len(self.secrets.prune(keep))
        except GcpError as exc:
            if exc.status in (403, 404):  # the Secret Manager API is off: no secrets
                return 0
            raise

    def setup_notes(self) -> dict[str, str]:
        return setup_notes(self.config, self.pool_name)
