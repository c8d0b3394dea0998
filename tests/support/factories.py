"""Request bodies and paths tests share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: Copies of the Lambda event samples in ../shared/events (kept equal by a test), so the
#: suite runs from any checkout.
EVENTS_DIR = Path(__file__).resolve().parent / "events"
SHARED_EVENTS_DIR = REPO.parent / "shared" / "events"


def deployment_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "default",
        "flow_name": "hello",
        "entrypoint": "hello.py:hello",
        "work_pool": "local",
        "source": {"type": "local", "path": str(EXAMPLES)},
    }
    body.update(overrides)
    return body


def etl_deployment_body(work_pool: str) -> dict[str, Any]:
    """The ETL example (a pushpool flow whose cached task results are persisted) as a
    container pool deploys it; its result is the row count, 3."""
    return deployment_body(
        name="etl",
        flow_name="etl",
        entrypoint="etl.py:etl",
        work_pool=work_pool,
        source={"type": "image"},
        parameters={"day": "2026-03-01", "rows": 3, "failure_rate": 0.0},
    )


def image_deployment_body(work_pool: str, **overrides: Any) -> dict[str, Any]:
    """The hello example as a container pool deploys it: the code is in the image."""
    return deployment_body(
        name="lambda",
        work_pool=work_pool,
        source={"type": "image"},
        job_variables={"cpu": 256, "memory": 512},
        **overrides,
    )


def sample_event(name: str) -> dict[str, Any]:
    """A fresh copy of the Lambda event sample ``name`` in EVENTS_DIR."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text())
    return event


def http_v2_event(
    path: str, key: str | None = None, method: str = "GET", body: Any = None
) -> dict[str, Any]:
    """An API Gateway HTTP API (2.0) request for ``path``, built from the sample: JSON
    content type, ``body`` as JSON (none by default), no query, no cookies."""
    event = sample_event("apigw-http-v2-get.json")
    payload = None if body is None else json.dumps(body)
    event.update(rawPath=path, rawQueryString="", body=payload, isBase64Encoded=False)
    event["headers"] = {"content-type": "application/json", "host": "id.execute-api.amazonaws.com"}
    if key:
        event["headers"]["authorization"] = f"Bearer {key}"
    event["requestContext"]["http"].update(method=method, path=path)
    event.pop("cookies", None)
    return event


def ecs_task_stopped_event(
    task_arn: str, run_id: str, cluster_arn: str | None = None
) -> dict[str, Any]:
    """The "ECS Task State Change" sample for a stopped task ``task_arn`` that carries
    ``run_id`` in its environment overrides, as the handler tests build theirs."""
    event = sample_event("ecs-task-state-change-stopped.json")
    detail = event["detail"]
    detail["taskArn"] = task_arn
    if cluster_arn is not None:
        detail["clusterArn"] = cluster_arn
    detail["overrides"]["containerOverrides"][0]["environment"][0]["value"] = run_id
    return event


#: Process pool config letting ``local`` sources come from this checkout.
SOURCE_ROOTS: dict[str, Any] = {"allowed_source_roots": [str(REPO)]}


def process_pool(name: str, **fields: Any) -> dict[str, Any]:
    """A process pool's create body whose ``local`` sources may come from this checkout."""
    return {"name": name, "type": "process", "config": dict(SOURCE_ROOTS), **fields}
