"""Cloud Run Admin API v2: jobs, executions, tasks and operations, in memory.

A job created with ``startExecutionToken`` gets its execution at once, named
``<job>-<token>``; ``:run`` makes another. What an execution does is decided by
:attr:`CloudRun.workload`, called with the job (as JSON) when its execution is created:
``None`` leaves it pending, ``"running"`` starts it, an ``int`` finishes it with that exit
code. Tests move executions on with :meth:`start`, :meth:`finish` and :meth:`cancel`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from emulators.gcp.base import ApiError, not_found, parse

Json = dict[str, Any]
Workload = Callable[[Json], "str | int | None"]
_JOB_TYPE = "type.googleapis.com/google.cloud.run.v2.Job"
_EXECUTION_TYPE = "type.googleapis.com/google.cloud.run.v2.Execution"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_job(raw: bytes) -> Json:
    """The request's Job, parsed by the library's own type (unknown fields refused)."""
    from google.cloud import run_v2

    job = parse(run_v2.Job, raw)
    parsed: Json = json.loads(run_v2.Job.to_json(job, use_integers_for_enums=False))
    return parsed


class CloudRun:
    def __init__(self) -> None:
        self.jobs: dict[str, Json] = {}
        self.executions: dict[str, Json] = {}
        self.tasks: dict[str, Json] = {}
        self.operations: dict[str, Json] = {}
        self.workload: Workload = lambda job: None
        #: Set to refuse creates with a quota error (the region's 1,000 jobs).
        self.max_jobs: int | None = None
        self._ids = itertools.count(1)

    # -- jobs --------------------------------------------------------------------------
    def create_job(self, parent: str, job_id: str, raw: bytes) -> Json:
        body = parse_job(raw)
        name = f"{parent}/jobs/{job_id}"
        if name in self.jobs:
            raise ApiError(409, f"Resource '{job_id}' already exists.")
        if self.max_jobs is not None and len(self.jobs) >= self.max_jobs:
            raise ApiError(429, "Quota exceeded for jobs per region", "RATE_LIMIT_EXCEEDED")
        body.update(name=name, uid=f"uid-{next(self._ids)}", createTime=_now(), generation="1")
        self.jobs[name] = body
        token = body.get("startExecutionToken") or body.get("runExecutionToken")
        if token:
            self._new_execution(name, f"{job_id}-{token}")
        return self._operation(parent, _JOB_TYPE, self.jobs[name])

    def job(self, name: str) -> Json:
        if name not in self.jobs:
            raise not_found(f"Job {name}")
        return self.jobs[name]

    def list_jobs(self, parent: str) -> list[Json]:
        return [j for n, j in sorted(self.jobs.items()) if n.startswith(f"{parent}/jobs/")]

    def delete_job(self, name: str) -> Json:
        job = self.job(name)
        for execution in [e for e in self.executions if e.startswith(f"{name}/executions/")]:
            del self.executions[execution]
            self.tasks.pop(execution, None)
        del self.jobs[name]
        return self._operation(name.rsplit("/jobs/", 1)[0], _JOB_TYPE, job)

    def run_job(self, name: str, raw: bytes) -> Json:
        from google.cloud import run_v2

        parse(run_v2.RunJobRequest, raw)
        self.job(name)
        execution = self._new_execution(name, f"{name.rsplit('/', 1)[-1]}-r{next(self._ids)}")
        return self._operation(name.rsplit("/jobs/", 1)[0], _EXECUTION_TYPE, execution)

    # -- executions --------------------------------------------------------------------
    def _new_execution(self, job_name: str, execution_id: str) -> Json:
        job = self.jobs[job_name]
        name = f"{job_name}/executions/{execution_id}"
        template = job.get("template", {})
        execution: Json = {
            "name": name,
            "uid": f"uid-{next(self._ids)}",
            "job": job_name.rsplit("/", 1)[-1],
            "labels": dict(template.get("labels") or job.get("labels") or {}),
            "createTime": _now(),
            "taskCount": template.get("taskCount", 1),
            "logUri": f"https://console.cloud.google.com/logs/viewer?execution={execution_id}",
            "conditions": [{"type": "Completed", "state": "CONDITION_PENDING"}],
        }
        self.executions[name] = execution
        self.tasks[name] = {"name": f"{name}/tasks/{execution_id}-task0", "index": 0}
        job["latestCreatedExecution"] = {"name": name, "createTime": execution["createTime"]}
        outcome = self.workload(job)
        if outcome == "running":
            self.start(job_name)
        elif isinstance(outcome, int):
            self.finish(job_name, outcome)
        return execution

    def execution_of(self, job_name: str) -> Json:
        """The job's (first) execution."""
        found = sorted(e for e in self.executions if e.startswith(f"{job_name}/executions/"))
        if not found:
            raise KeyError(f"{job_name} has no execution")
        return self.executions[found[0]]

    def start(self, job_name: str) -> None:
        execution = self.execution_of(job_name)
        execution.update(startTime=_now(), runningCount=1)
        execution["conditions"] = [{"type": "Completed", "state": "CONDITION_RECONCILING"}]

    def finish(self, job_name: str, exit_code: int = 0, message: str = "") -> None:
        """End the job's execution: succeeded with 0, else failed with that exit code."""
        execution = self.execution_of(job_name)
        execution.setdefault("startTime", _now())
        execution.update(runningCount=0, completionTime=_now())
        task = self.tasks[execution["name"]]
        if exit_code == 0:
            execution["succeededCount"] = 1
            state, condition_message = "CONDITION_SUCCEEDED", ""
        else:
            execution["failedCount"] = 1
            state = "CONDITION_FAILED"
            condition_message = message or "Task failed: the container exited with an error"
            task["lastAttemptResult"] = {
                "status": {"code": 2, "message": message or f"exit code {exit_code}"},
                "exitCode": exit_code,
            }
        condition = {"type": "Completed", "state": state}
        if condition_message:
            condition["message"] = condition_message
        execution["conditions"] = [condition]

    def cancel_execution(self, name: str, raw: bytes) -> Json:
        from google.cloud import run_v2

        parse(run_v2.CancelExecutionRequest, raw)
        execution = self.executions.get(name)
        if execution is None:
            raise not_found(f"Execution {name}")
        if execution.get("completionTime"):
            raise ApiError(400, "Execution already completed", "FAILED_PRECONDITION")
        execution.update(runningCount=0, cancelledCount=1, completionTime=_now())
        execution["conditions"] = [
            {"type": "Completed", "state": "CONDITION_FAILED", "executionReason": "CANCELLED"}
        ]
        return self._operation(name.split("/jobs/")[0], _EXECUTION_TYPE, execution)

    def list_executions(self, job_name: str) -> list[Json]:
        if job_name.endswith("/jobs/-"):
            prefix = job_name[: -len("-")]
            return [e for n, e in sorted(self.executions.items()) if n.startswith(prefix)]
        self.job(job_name)
        return [
            e for n, e in sorted(self.executions.items()) if n.startswith(f"{job_name}/executions/")
        ]

    def list_tasks(self, execution_name: str) -> list[Json]:
        if execution_name not in self.executions:
            raise not_found(f"Execution {execution_name}")
        return [self.tasks[execution_name]]

    # -- operations --------------------------------------------------------------------
    def _operation(self, parent: str, type_url: str, resource: Json) -> Json:
        name = f"{parent}/operations/op-{next(self._ids)}"
        operation = {"name": name, "done": True, "response": {"@type": type_url, **resource}}
        self.operations[name] = operation
        return operation

    def operation(self, name: str) -> Json:
        if name not in self.operations:
            raise not_found(f"Operation {name}")
        return self.operations[name]
