"""Bad input never costs the service: no outside $ref is retrieved, patterns are matched
in linear time, deep JSON and nulls in PATCH bodies are 422s naming the field, and a key
over its rate limit gets 429 with Retry-After."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.factories import deployment_body, process_pool

from service.api.ratelimit import RateLimiter
from service.app import create_app
from service.models import MAX_JSON_DEPTH
from service.services import Services


@pytest.fixture
def paused(api: TestClient) -> str:
    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    return "paused"


def _deploy(api: TestClient, pool: str, **kw: Any) -> Any:
    return api.post("/api/deployments", json=deployment_body(work_pool=pool, **kw))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that records whether anything connected to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.mark.parametrize("kind", ["http", "file", "relative"])
def test_no_outside_ref_is_ever_retrieved(
    api: TestClient, paused: str, listener: socket.socket, kind: str
) -> None:
    port = listener.getsockname()[1]
    ref = {
        "http": f"http://127.0.0.1:{port}/schema.json",
        "file": "file:///etc/passwd",
        "relative": "other.json#/x",
    }[kind]
    schema = {"type": "object", "properties": {"n": {"items": {"$ref": ref}}}}
    r = _deploy(api, paused, parameter_schema=schema)
    assert r.status_code == 422, r.text
    where = ["body", "parameter_schema", "properties", "n", "items", "$ref"]
    assert r.json()["detail"][0]["loc"] == where
    assert ref in r.json()["message"] and "not retrieved" in r.json()["message"]
    assert not _connected(listener)
    assert api.get("/api/deployments").json() == []


def test_references_inside_the_schema_work(api: TestClient, paused: str) -> None:
    schema = {
        "type": "object",
        "$defs": {"small": {"type": "integer", "maximum": 5}},
        "properties": {"n": {"$ref": "#/$defs/small"}},
    }
    dep = _deploy(api, paused, parameter_schema=schema).json()["id"]
    assert api.post(f"/api/deployments/{dep}/runs", json={"parameters": {"n": 3}}).is_success
    r = api.post(f"/api/deployments/{dep}/runs", json={"parameters": {"n": 9}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "parameters", "n"]


@pytest.mark.timeout(30)
def test_a_catastrophic_pattern_is_matched_in_linear_time(api: TestClient, paused: str) -> None:
    # With a backtracking engine this takes ~2^N steps: N = 60 would never finish.
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    dep = _deploy(api, paused, parameter_schema=schema).json()["id"]
    evil = "a" * 60 + "!"
    r = api.post(f"/api/deployments/{dep}/runs", json={"parameters": {"s": evil}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "parameters", "s"]
    assert api.get("/api/health").status_code == 200


def test_a_pattern_the_engine_cannot_bound_is_refused(api: TestClient, paused: str) -> None:
    schema = {"properties": {"s": {"pattern": r"^(a)\1$"}}}
    r = _deploy(api, paused, parameter_schema=schema)
    assert r.status_code == 422
    assert r.json()["message"].startswith("parameter_schema.properties.s.pattern: ")


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 256, 1000, 20_000])
def test_deeply_nested_parameters_are_422(api: TestClient, paused: str, depth: int) -> None:
    dep = _deploy(api, paused).json()["id"]
    body = '{"parameters": {"p": ' + _nested(depth) + "}}"
    headers = {"content-type": "application/json"}
    r = api.post(f"/api/deployments/{dep}/runs", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "body"
    r = api.post("/api/deployments", content=body, headers=headers)
    assert r.status_code == 422, r.text
    assert api.get("/api/flow-runs").json()["items"] == []


def test_parameters_as_deep_as_allowed_work(api: TestClient, paused: str) -> None:
    dep = _deploy(api, paused).json()["id"]
    body = '{"parameters": ' + _nested(MAX_JSON_DEPTH - 1) + "}"
    headers = {"content-type": "application/json"}
    r = api.post(f"/api/deployments/{dep}/runs", content=body, headers=headers)
    assert r.status_code == 201, r.text
    assert api.get(f"/api/flow-runs/{r.json()['id']}").status_code == 200


@pytest.mark.parametrize("field", ["paused", "config"])
def test_null_on_a_pool_field_that_cannot_be_null_is_422(api: TestClient, field: str) -> None:
    r = api.patch("/api/work-pools/local", json={field: None})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert "may not be null" in r.json()["message"]
    assert api.patch("/api/work-pools/local", json={"concurrency_limit": None}).is_success


@pytest.mark.parametrize("field", ["paused", "parameters", "work_pool", "schedules", "source"])
def test_null_on_a_deployment_field_that_cannot_be_null_is_422(
    api: TestClient, paused: str, field: str
) -> None:
    dep = _deploy(api, paused).json()
    r = api.patch(f"/api/deployments/{dep['id']}", json={field: None})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    ok = api.patch(f"/api/deployments/{dep['id']}", json={"concurrency_limit": None})
    assert ok.status_code == 200 and ok.json()["concurrency_limit"] is None


def test_the_patch_schemas_say_which_fields_may_be_null(api: TestClient) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    pool = schemas["WorkPoolUpdate"]["properties"]
    assert pool["paused"] == {"type": "boolean", "title": "Paused"}
    assert {"type": "null"} in pool["concurrency_limit"]["anyOf"]


def test_a_key_over_its_rate_limit_gets_429(services: Services, admin_key: str) -> None:
    services.settings = services.settings.model_copy(
        update={"rate_limit_per_second": 0.01, "rate_limit_burst": 3}
    )
    app = create_app(services)
    with (
        TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as admin,
        TestClient(app) as anon,
    ):
        viewer_key = admin.post("/api/api-keys", json={"name": "v"}).json()["key"]
        assert [admin.get("/api/work-pools").status_code for _ in range(3)] == [200, 200, 429]
        limited = admin.get("/api/work-pools")
        assert limited.status_code == 429 and "rate limit" in limited.json()["detail"]
        assert 90 <= int(limited.headers["Retry-After"]) <= 100
        other = anon.get("/api/work-pools", headers={"Authorization": f"Bearer {viewer_key}"})
        assert other.status_code == 200  # each key has its own budget
        assert anon.get("/api/health").status_code == 200


def test_the_rate_limiter_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, burst=2, monotonic=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(3)] == [0, 0, 0.5]
    now[0] += 0.5
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0.5
    assert limiter.acquire("other") == 0
    assert RateLimiter(rate=0, burst=1).acquire("k") == 0  # off


def test_a_concurrency_limit_too_large_to_store_is_422(api: TestClient, paused: str) -> None:
    """Found by schemathesis: 2**63 in a PATCH made SQLite overflow (a 500)."""
    huge = 2**63
    r = api.patch("/api/work-pools/local", json={"concurrency_limit": huge})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "concurrency_limit"]
    r = api.post("/api/work-pools", json={"name": "big", "concurrency_limit": huge})
    assert r.status_code == 422, r.text
    dep = _deploy(api, paused).json()
    r = api.patch(f"/api/deployments/{dep['id']}", json={"concurrency_limit": huge})
    assert r.status_code == 422, r.text
    assert api.get("/api/work-pools/local").json()["concurrency_limit"] is None


def test_a_log_cursor_too_large_to_store_is_422(api: TestClient, paused: str) -> None:
    """Found by schemathesis: ``after=10**20`` made SQLite overflow reading logs (a 500)."""
    dep = _deploy(api, paused).json()
    run = api.post(f"/api/deployments/{dep['id']}/runs", json={}).json()
    r = api.get(f"/api/flow-runs/{run['id']}/logs", params={"after": 10**20})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "after"], r.text
    assert api.get(f"/api/flow-runs/{run['id']}/logs", params={"after": 2**53 - 1}).is_success
