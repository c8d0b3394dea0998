"""The harness the Provisioner conformance suite drives each pool type through."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioners.base import InfraRef, Provisioner, SubmitRequest


@dataclass
class Harness:
    provisioner: Provisioner
    #: Job variables for a workload that sleeps this long, then exits 0.
    sleep_job: Callable[[float], dict[str, Any]]
    #: Job variables for a workload that exits at once with this code.
    exit_job: Callable[[int], dict[str, Any]]
    #: Whether the platform reports exit codes.
    reports_exit_codes: bool = True

    def wait_finished(self, ref: InfraRef, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.provisioner.status(ref).finished:
            if time.monotonic() > deadline:
                raise AssertionError(f"{ref.id} did not finish in {timeout}s")
            time.sleep(0.05)

    def request(self, run_id: str, job: dict[str, Any], attempt: int = 1) -> SubmitRequest:
        return SubmitRequest(
            run_id=run_id,
            attempt=attempt,
            flow_name="flow",
            deployment_name="dep",
            env={"PUSHPOOL_FLOW_RUN_ID": run_id, "PUSHPOOL_BOOTSTRAP_TOKEN": "secret-token"},
            job_variables=job,
        )
