"""The Lambda handler, fed the event samples of ../shared/events and events built here."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from support.factories import (
    EVENTS_DIR,
    SHARED_EVENTS_DIR,
    deployment_body,
    ecs_task_stopped_event,
    http_v2_event,
)
from support.server import stop_all_runs

from service import lambda_handler
from service.bootstrap import ensure_admin_key
from service.deployments import DeploymentCreate, deploy
from service.lambda_handler import EventKind, classify, handler
from service.runs import RunCreate, create_run
from service.states import StateType

EVENTS = EVENTS_DIR


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@dataclass
class Context:
    remaining_ms: int = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path / "home"))
    lambda_handler.services.cache_clear()
    lambda_handler._http_adapter.cache_clear()
    yield tmp_path
    if lambda_handler.services.cache_info().currsize:
        stop_all_runs(lambda_handler.services())
        lambda_handler.services().store.close()
    lambda_handler.services.cache_clear()
    lambda_handler._http_adapter.cache_clear()


http_v2 = http_v2_event


def fresh_interpreter(script: str, **env: str) -> Any:
    """Run ``script`` in a new interpreter with only ``env`` (and PATH); its last line,
    parsed as JSON."""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_event_samples_match_the_shared_ones() -> None:
    if not SHARED_EVENTS_DIR.is_dir():
        pytest.skip("../shared/events is not beside this checkout")
    shared = {p.name: p.read_bytes() for p in SHARED_EVENTS_DIR.glob("*.json")}
    ours = {p.name: p.read_bytes() for p in EVENTS_DIR.glob("*.json")}
    assert ours == shared


def test_classifies_the_samples() -> None:
    assert classify(sample("apigw-http-v2-get.json")) == EventKind.HTTP
    assert classify(sample("apigw-rest-v1-get.json")) == EventKind.HTTP
    assert classify(sample("eventbridge-scheduled.json")) == EventKind.SCHEDULE
    assert classify(sample("ecs-task-state-change-stopped.json")) == EventKind.ECS_TASK
    assert classify({"source": "aws.s3"}) == EventKind.UNKNOWN
    assert classify(["not", "a", "mapping"]) == EventKind.UNKNOWN


def test_unknown_events_are_ignored_not_raised(env: Path) -> None:
    assert handler({"hello": "world"}, Context()) == {"ignored": True}


@pytest.mark.parametrize("name", ["apigw-http-v2-get.json", "apigw-rest-v1-get.json"])
def test_health_through_api_gateway(env: Path, name: str) -> None:
    event = sample(name)
    event["headers"] = {**event.get("headers", {}), "content-type": "application/json"}
    response = handler(event, Context())
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


def test_authenticated_api_through_api_gateway(env: Path) -> None:
    key = ensure_admin_key(lambda_handler.services())
    assert handler(http_v2("/api/work-pools"), Context())["statusCode"] == 401
    response = handler(http_v2("/api/work-pools", key), Context())
    assert response["statusCode"] == 200 and json.loads(response["body"]) == []


def _due_run(sleep: float = 0) -> str:
    svc = lambda_handler.services()
    from service.bootstrap import ensure_default_pool

    ensure_default_pool(svc)
    config = svc.store.get_pool("local").config | {"allow_job_commands": True}
    svc.store.update_pool("local", {"config": config}, svc.clock())
    command = [sys.executable, "-c", f"import time, sys; time.sleep({sleep}); sys.exit(3)"]
    dep, _ = deploy(
        svc, DeploymentCreate.model_validate(deployment_body(job_variables={"command": command}))
    )
    run, _ = create_run(svc, dep.id, RunCreate(), push=False)
    return run.id


def test_scheduled_event_ticks_within_the_deadline(env: Path) -> None:
    run_id = _due_run()
    short = handler(sample("eventbridge-scheduled.json"), Context(remaining_ms=5_000))
    assert short["dispatched"] == 0  # too close to the deadline to start new work
    full = handler(sample("eventbridge-scheduled.json"), Context())
    assert full["dispatched"] == 1
    run = lambda_handler.services().store.get_run(run_id)
    assert run.state.type == StateType.PENDING and run.infra is not None


def test_task_stopped_event_reconciles_the_run_at_once(env: Path) -> None:
    run_id = _due_run()
    handler(sample("eventbridge-scheduled.json"), Context())
    svc = lambda_handler.services()
    run = svc.store.get_run(run_id)
    assert run.infra is not None
    provisioner = svc.dispatcher.provisioner(run.work_pool)
    import time

    deadline = time.monotonic() + 10
    while not provisioner.status(run.infra).finished and time.monotonic() < deadline:
        time.sleep(0.05)
    result = handler(ecs_task_stopped_event(run.infra.id, run_id), Context())
    assert result == {"handled": True, "run_id": run_id, "outcome": "crashed"}
    crashed = svc.store.get_run(run_id)
    assert crashed.state.type == StateType.CRASHED and crashed.error is not None
    assert crashed.error["exit_code"] == 3
    assert svc.store.pending_teardowns(10) == []  # torn down in the same invocation
    # The sample itself names a run this service never started: ignored, not raised.
    other = ecs_task_stopped_event("arn:aws:ecs:us-east-1:1:task/c/other", str(uuid.uuid4()))
    assert handler(other, Context())["outcome"] == "unknown run"


def test_cold_health_request_loads_no_store_and_no_sdk(tmp_path: Path) -> None:
    """A fresh process answers a health request without SQLAlchemy, any cloud SDK, or the
    dashboard's template engine."""
    event = sample("apigw-http-v2-get.json")
    event["headers"]["content-type"] = "application/json"
    script = f"""
import json, sys
from service.lambda_handler import handler
class Ctx:
    def get_remaining_time_in_millis(self): return 30000
response = handler(json.loads({json.dumps(json.dumps(event))}), Ctx())
heavy = ("sqlalchemy", "boto3", "botocore", "google.cloud.run_v2", "azure.mgmt.containerinstance",
         "jinja2", "google.cloud.storage", "azure.storage", "azure.mgmt.storage")
print(json.dumps({{"status": response["statusCode"],
                  "loaded": sorted(m for m in sys.modules if m.startswith(heavy))}}))
"""
    result = fresh_interpreter(script, PUSHPOOL_HOME=str(tmp_path / "home"))
    assert result == {"status": 200, "loaded": []}


@pytest.mark.parametrize(
    ("init_type", "built"),
    [("snap-start", True), ("provisioned-concurrency", True), ("on-demand", False)],
)
def test_ahead_of_time_initialisation_builds_everything_at_import(
    tmp_path: Path, init_type: str, built: bool
) -> None:
    """SnapStart snapshots what init built: the app and the services must be in it."""
    script = """
import json, sys
from service import lambda_handler as h
print(json.dumps([h._http_adapter.cache_info().currsize, h.services.cache_info().currsize,
                  "fastapi" in sys.modules]))
"""
    result = fresh_interpreter(
        script, PUSHPOOL_HOME=str(tmp_path / "home"), AWS_LAMBDA_INITIALIZATION_TYPE=init_type
    )
    expected = [1, 1, True] if built else [0, 0, False]
    assert result == expected


def test_admin_key_from_secrets_manager(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The serverless bootstrap: the key in the stack's secret opens the API, once registered."""
    from moto import mock_aws

    from service.bootstrap import ensure_key_from_secret

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        key = "k" * 40
        arn = boto3.client("secretsmanager").create_secret(Name="pp-admin", SecretString=key)["ARN"]
        monkeypatch.setenv("PUSHPOOL_ADMIN_API_KEY_SECRET_ARN", arn)
        response = handler(http_v2("/api/work-pools", key), Context())
        assert response["statusCode"] == 200
        assert not ensure_key_from_secret(lambda_handler.services(), arn)  # already there
        assert len(lambda_handler.services().store.list_api_keys()) == 1
        assert key not in response["body"]


# -- the web dashboard through API Gateway --------------------------------------------
DASHBOARD_HOST = "id.execute-api.amazonaws.com"


def page_event(path: str, *, cookie: str | None = None, form: dict[str, str] | None = None) -> Any:
    event = http_v2_event(path, method="POST" if form is not None else "GET")
    event["headers"] = {"host": DASHBOARD_HOST, "x-forwarded-proto": "https", "accept": "text/html"}
    if form is not None:
        event["headers"] |= {
            "content-type": "application/x-www-form-urlencoded",
            "origin": f"https://{DASHBOARD_HOST}",
        }
        event["body"] = urlencode(form)
    if cookie:
        event["cookies"] = [cookie]
    return event


def body_of(response: dict[str, Any]) -> str:
    body = response.get("body") or ""
    return base64.b64decode(body).decode() if response.get("isBase64Encoded") else str(body)


def test_pages_through_api_gateway_with_a_secure_session_cookie(env: Path) -> None:
    key = ensure_admin_key(lambda_handler.services())
    assert key is not None
    signed_out = handler(page_event("/"), Context())
    assert signed_out["statusCode"] == 303 and signed_out["headers"]["location"] == "/login"
    login = handler(page_event("/login"), Context())
    assert login["statusCode"] == 200
    assert login["headers"]["content-type"].startswith("text/html")
    assert 'name="api_key"' in body_of(login)

    signed_in = handler(page_event("/login", form={"api_key": key}), Context())
    assert signed_in["statusCode"] == 303
    (cookie,) = signed_in["cookies"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower()
    runs = handler(page_event("/runs", cookie=cookie.split(";")[0]), Context())
    assert runs["statusCode"] == 200 and "<table" in body_of(runs)
    assert key not in body_of(runs)  # the key is in the cookie only, never in the page
