"""Shared by the ``cloud-run`` tests: the emulated project, a request maker, a sleep log."""

from __future__ import annotations

import uuid
from typing import Any

from provisioners.base import SubmitRequest

PROJECT = "demo-project"
REGION = "us-central1"
POOL = "demo"
TOKEN = "secret-bootstrap-token-0123456789"
CONFIG = {"project": PROJECT, "region": REGION, "image": "runner:test"}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def request_for(run_id: str | None = None, attempt: int = 1, **job_variables: Any) -> SubmitRequest:
    run_id = run_id or str(uuid.uuid4())
    return SubmitRequest(
        run_id=run_id,
        attempt=attempt,
        flow_name="flow",
        deployment_name="dep",
        env={
            "PUSHPOOL_FLOW_RUN_ID": run_id,
            "PUSHPOOL_API_URL": "https://api.example",
            "PUSHPOOL_RUN_TOKEN": TOKEN,
        },
        job_variables=job_variables,
    )
