"""The HTTP API in-process: validation, auth, idempotency, errors that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.factories import deployment_body, process_pool

from service.services import Services
from service.states import StateType


def _fields(response: Any) -> list[str]:
    return [".".join(str(p) for p in e["loc"][1:]) for e in response.json()["detail"]]


def test_health_needs_no_key(services: Services) -> None:
    from service.app import create_app

    with TestClient(create_app(services)) as anon:
        assert anon.get("/api/health").json() == {"status": "ok"}
        r = anon.get("/api/work-pools")
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        bad = anon.get("/api/work-pools", headers={"Authorization": "Bearer pp_wrong"})
        assert bad.status_code == 401
        assert "pp_wrong" not in bad.text


def test_work_pool_crud(api: TestClient) -> None:
    r = api.post("/api/work-pools", json={"name": "p2", "type": "process", "concurrency_limit": 2})
    assert r.status_code == 201, r.text
    assert api.post("/api/work-pools", json={"name": "p2", "type": "process"}).status_code == 409
    assert {p["name"] for p in api.get("/api/work-pools").json()} == {"local", "p2"}
    r = api.patch("/api/work-pools/p2", json={"paused": True})
    assert r.json()["paused"] is True
    assert api.delete("/api/work-pools/p2").status_code == 204
    assert api.get("/api/work-pools/p2").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "nope"}, "type"),
        ({"name": "x", "type": "process", "config": {"bogus": 1}}, "config.bogus"),
        ({"name": "bad name!", "type": "process"}, "name"),
        ({"name": "x", "type": "process", "extra": 1}, "extra"),
        ({"name": "x", "type": "process", "concurrency_limit": -1}, "concurrency_limit"),
    ],
)
def test_bad_pools_are_422_naming_the_field(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    r = api.post("/api/work-pools", json=body)
    assert r.status_code == 422, r.text
    assert field in _fields(r)
    assert [p["name"] for p in api.get("/api/work-pools").json()] == ["local"]


def test_deployment_upsert(api: TestClient) -> None:
    r = api.post("/api/deployments", json=deployment_body())
    assert r.status_code == 201, r.text
    again = api.post("/api/deployments", json=deployment_body(tags=["x"]))
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    assert again.json()["tags"] == ["x"]
    dep_id = r.json()["id"]
    patched = api.patch(f"/api/deployments/{dep_id}", json={"retries": 2})
    assert patched.status_code == 200 and patched.json()["retries"] == 2
    assert api.get("/api/deployments?flow_name=hello&name=default").json()[0]["id"] == dep_id
    assert api.delete(f"/api/deployments/{dep_id}").status_code == 204
    assert api.get(f"/api/deployments/{dep_id}").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"entrypoint": "hello.py"}, "entrypoint"),
        ({"entrypoint": "../escape.py:f"}, "entrypoint"),
        ({"entrypoint": "/abs/path.py:f"}, "entrypoint"),
        ({"work_pool": "nope"}, None),
        ({"schedules": [{"kind": "cron", "cron": "61 * * * *"}]}, "schedules.0.cron"),
        (
            {"schedules": [{"kind": "cron", "cron": "0 9 * * *", "timezone": "Mars/Base"}]},
            "schedules.0.timezone",
        ),
        ({"schedules": [{"kind": "hourly"}]}, "schedules.0"),
        ({"schedules": [{"interval_seconds": 0}]}, "schedules.0.interval_seconds"),
        ({"schedules": [{"interval_seconds": 90.7}]}, "schedules.0.interval_seconds"),
        ({"source": {"type": "image"}}, "source.type"),  # a process pool has no image
        ({"source": {"type": "local", "path": "relative"}}, "source.path"),
        ({"source": {"type": "ftp"}}, "source"),
        ({"job_variables": {"nope": 1}}, "job_variables.nope"),
        (
            {
                "parameter_schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "parameters": {"a": "x"},
            },
            "parameters.a",
        ),
        ({"parameter_schema": {"type": 12}}, "parameter_schema.type"),
        ({"catchup": "sometimes"}, "catchup"),
        ({"unknown": True}, "unknown"),
    ],
)
def test_bad_deployments_are_rejected_and_store_nothing(
    api: TestClient, overrides: dict[str, Any], field: str | None
) -> None:
    r = api.post("/api/deployments", json=deployment_body(**overrides))
    if field is None:
        assert r.status_code == 404, r.text
    else:
        assert r.status_code == 422, r.text
        assert any(f.startswith(field) for f in _fields(r)), (_fields(r), r.text)
    assert api.get("/api/deployments").json() == []


def _deploy(api: TestClient, **overrides: Any) -> str:
    r = api.post("/api/deployments", json=deployment_body(**overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_run_parameters_validated_against_schema(api: TestClient) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    dep = _deploy(api, parameter_schema=schema, work_pool="paused")
    missing = api.post(f"/api/deployments/{dep}/runs", json={})
    assert missing.status_code == 422
    assert missing.json()["message"] == 'parameters: "n" is a required property'
    wrong = api.post(f"/api/deployments/{dep}/runs", json={"parameters": {"n": "x"}})
    assert wrong.status_code == 422 and _fields(wrong) == ["parameters.n"]
    ok = api.post(f"/api/deployments/{dep}/runs", json={"parameters": {"n": 3}})
    assert ok.status_code == 201 and ok.json()["parameters"] == {"n": 3}
    assert len(api.get("/api/flow-runs").json()["items"]) == 1


def test_idempotent_run_creation(api: TestClient) -> None:
    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    dep = _deploy(api, work_pool="paused")
    first = api.post(f"/api/deployments/{dep}/runs", json={"idempotency_key": "abc"})
    again = api.post(f"/api/deployments/{dep}/runs", json={"idempotency_key": "abc"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]


def test_runs_list_paginates_and_filters(api: TestClient) -> None:
    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    dep = _deploy(api, work_pool="paused")
    ids = [api.post(f"/api/deployments/{dep}/runs").json()["id"] for _ in range(5)]
    page = api.get("/api/flow-runs", params={"limit": 2, "deployment_id": dep}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = api.get("/api/flow-runs", params={"limit": 10, "cursor": page["next_cursor"]}).json()
    assert len(rest["items"]) == 3 and rest["next_cursor"] is None
    assert {r["id"] for r in page["items"] + rest["items"]} == set(ids)
    assert api.get("/api/flow-runs", params={"state": "RUNNING"}).json()["items"] == []
    assert api.get("/api/flow-runs", params={"state": "NOPE"}).status_code == 422
    assert api.get("/api/flow-runs", params={"cursor": "zz"}).status_code == 422


def test_cancel_scheduled_run_then_conflict(api: TestClient) -> None:
    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    dep = _deploy(api, work_pool="paused")
    run = api.post(f"/api/deployments/{dep}/runs").json()
    r = api.post(f"/api/flow-runs/{run['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"]["type"] == "CANCELLED"
    again = api.post(f"/api/flow-runs/{run['id']}/cancel")
    assert again.status_code == 409
    assert "CANCELLED" in again.json()["detail"]
    detail = api.get(f"/api/flow-runs/{run['id']}").json()
    assert [s["type"] for s in detail["state_history"]] == ["SCHEDULED", "CANCELLED"]
    assert "token_hash" not in detail


def test_oversized_body_is_413(api: TestClient, services: Services) -> None:
    big = {"name": "x", "flow_name": "f", "tags": ["a" * 1000] * 2000}
    r = api.post(
        "/api/deployments",
        content=json.dumps(big).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413


def test_malformed_json_is_422(api: TestClient) -> None:
    r = api.post(
        "/api/deployments", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422


def test_unknown_ids_are_404(api: TestClient) -> None:
    for path in (
        "/api/deployments/x",
        "/api/flow-runs/x",
        "/api/flow-runs/x/logs",
        "/api/work-pools/x",
    ):
        assert api.get(path).status_code == 404, path
    assert api.post("/api/deployments/x/runs").status_code == 404
    assert api.post("/api/flow-runs/x/cancel").status_code == 404


def test_api_keys_never_shown_after_creation(api: TestClient, admin_key: str) -> None:
    created = api.post("/api/api-keys", json={"name": "ci"}).json()
    assert created["key"].startswith("pp_")
    listing = api.get("/api/api-keys").text
    assert created["key"] not in listing and admin_key not in listing
    assert "key_hash" not in listing
    api.delete(f"/api/api-keys/{created['id']}")
    r = api.get("/api/work-pools", headers={"Authorization": f"Bearer {created['key']}"})
    assert r.status_code == 401


def test_run_token_only_opens_its_own_run(api: TestClient, services: Services) -> None:
    """A runner token reads its own spec; not another run, not the admin API."""
    from service.security import new_run_token

    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    dep = _deploy(api, work_pool="paused")
    a = api.post(f"/api/deployments/{dep}/runs").json()["id"]
    b = api.post(f"/api/deployments/{dep}/runs").json()["id"]
    token, digest = new_run_token()
    services.store.update_pool("paused", {"paused": False}, services.clock())
    tokens: dict[str, str] = {}

    def issue(run_id: str) -> str:
        tokens[run_id] = token
        return digest

    services.store.claim_due_runs(services.clock(), 1, issue, run_ids=[a])
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get(f"/api/runner/flow-runs/{a}/spec", headers=auth).status_code == 200
    assert api.get(f"/api/runner/flow-runs/{b}/spec", headers=auth).status_code == 401
    assert api.get("/api/work-pools", headers=auth).status_code == 401
    assert api.get(f"/api/flow-runs/{a}", headers=auth).status_code == 401
    illegal = api.post(
        f"/api/runner/flow-runs/{a}/state", headers=auth, json={"state": "COMPLETED"}
    )
    assert illegal.status_code == 409 and "COMPLETED" in illegal.json()["detail"]
    r = api.post(f"/api/runner/flow-runs/{a}/state", headers=auth, json={"state": "RUNNING"})
    assert r.status_code == 200 and r.json()["state"] == "RUNNING"
    again = api.post(f"/api/runner/flow-runs/{a}/state", headers=auth, json={"state": "RUNNING"})
    assert again.status_code == 200  # a runner retrying after a lost answer
    done = api.post(
        f"/api/runner/flow-runs/{a}/state", headers=auth, json={"state": "COMPLETED", "result": 42}
    )
    assert done.status_code == 200
    assert services.store.get_run(a).state.type == StateType.COMPLETED
    assert services.store.get_run(a).result == 42
    # The token dies with the attempt.
    assert api.post(f"/api/runner/flow-runs/{a}/heartbeat", headers=auth).status_code == 401


def test_schedule_kind_defaults_as_the_openapi_document_says(api: TestClient) -> None:
    body = deployment_body(schedules=[{"cron": "0 9 * * *"}, {"interval_seconds": 600}])
    r = api.post("/api/deployments", json=body)
    assert r.status_code == 201, r.text
    assert [s["kind"] for s in r.json()["schedules"]] == ["cron", "interval"]


def test_error_message_names_the_path_as_written(api: TestClient) -> None:
    r = api.post("/api/deployments", json=deployment_body(schedules=[{"cron": "61 * * * *"}]))
    assert r.status_code == 422
    assert r.json()["message"].startswith("schedules[0].cron: ")


def test_a_bad_cursor_is_a_query_parameter(api: TestClient) -> None:
    r = api.get("/api/flow-runs", params={"cursor": "garbage"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "cursor"]
    assert r.json()["message"].startswith("query parameter cursor: ")


def test_an_ecs_pool_without_a_cluster_is_refused_at_deploy_time(api: TestClient) -> None:
    pool = {"name": "aws", "type": "ecs", "config": {"region": "us-east-1"}}
    assert api.post("/api/work-pools", json=pool).status_code == 201
    body = deployment_body(work_pool="aws", source={"type": "image"})
    body["job_variables"] = {"image": "example/flows:1"}
    r = api.post("/api/deployments", json=body)
    assert r.status_code == 422, r.text
    assert "no cluster" in r.json()["message"]
    assert api.get("/api/deployments").json() == []


def test_a_relative_working_dir_is_refused(api: TestClient) -> None:
    pool = {"name": "rel", "type": "process", "config": {"working_dir": "runs"}}
    r = api.post("/api/work-pools", json=pool)
    assert r.status_code == 422
    assert "absolute" in r.json()["message"]
