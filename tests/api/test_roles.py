"""Who can do what: API key roles, deployer pool lists, key creation ceilings, the last
admin key, and the statuses the OpenAPI document promises for each route."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.factories import deployment_body, process_pool

from service.app import create_app
from service.models import Role
from service.security import create_api_key
from service.services import Services

Client = Callable[..., TestClient]


@pytest.fixture
def as_key(services: Services, api: TestClient) -> Iterator[Client]:
    """``as_key(role, pools=None)``: a client holding a new key of that role."""
    app = create_app(services)
    clients: list[TestClient] = []

    def make(role: Role, pools: list[str] | None = None) -> TestClient:
        _, secret = create_api_key(services.store, role.value, services.clock(), role, pools)
        client = TestClient(app, headers={"Authorization": f"Bearer {secret}"})
        clients.append(client)
        return client

    for pool in ("paused", "other"):
        api.post("/api/work-pools", json=process_pool(pool, paused=True))
    yield make
    for client in clients:
        client.close()


def _deploy(client: TestClient, pool: str = "paused", **kw: Any) -> Any:
    return client.post("/api/deployments", json=deployment_body(work_pool=pool, **kw))


def test_a_viewer_reads_everything_and_changes_nothing(as_key: Client, api: TestClient) -> None:
    dep = _deploy(api).json()["id"]
    viewer = as_key(Role.VIEWER)
    reads = ("/api/work-pools", "/api/deployments", f"/api/deployments/{dep}", "/api/flow-runs")
    for path in reads:
        assert viewer.get(path).status_code == 200, path
    for method, path, body in [
        ("POST", "/api/deployments", deployment_body(work_pool="paused")),
        ("POST", f"/api/deployments/{dep}/runs", {}),
        ("DELETE", f"/api/deployments/{dep}", None),
        ("POST", "/api/scheduler/tick", None),
        ("POST", "/api/api-keys", {"name": "v2", "role": "viewer"}),
    ]:
        r = viewer.request(method, path, json=body)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["detail"] == (
            "this needs an API key with the 'deployer' role (this key is 'viewer')"
        )
    assert api.get(f"/api/deployments/{dep}").status_code == 200  # still there


def test_only_an_admin_changes_pools_and_keys(as_key: Client) -> None:
    deployer = as_key(Role.DEPLOYER)
    for method, path, body in [
        ("POST", "/api/work-pools", {"name": "mine", "type": "process"}),
        ("PATCH", "/api/work-pools/local", {"config": {"working_dir": "/"}}),
        ("DELETE", "/api/work-pools/other", None),
        ("GET", "/api/api-keys", None),
        ("DELETE", "/api/api-keys/anything", None),
    ]:
        r = deployer.request(method, path, json=body)
        assert r.status_code == 403, (path, r.text)
        assert "'admin' role" in r.json()["detail"]
    assert _deploy(deployer).status_code == 201  # what a deployer is for


def test_a_key_never_creates_a_stronger_key(as_key: Client) -> None:
    deployer = as_key(Role.DEPLOYER)
    r = deployer.post("/api/api-keys", json={"name": "up", "role": "admin"})
    assert r.status_code == 403 and "'admin' role" in r.json()["detail"]
    made = deployer.post("/api/api-keys", json={"name": "ci", "role": "deployer"})
    assert made.status_code == 201 and made.json()["role"] == "deployer"
    scoped = as_key(Role.DEPLOYER, ["paused"])
    r = scoped.post("/api/api-keys", json={"name": "x", "role": "deployer", "pools": ["other"]})
    assert r.status_code == 403 and "other" in r.json()["detail"]
    inherited = scoped.post("/api/api-keys", json={"name": "y", "role": "deployer"})
    assert inherited.status_code == 201 and inherited.json()["pools"] == ["paused"]
    r = scoped.post("/api/api-keys", json={"name": "z", "role": "viewer", "pools": ["paused"]})
    assert r.status_code == 422 and "only a deployer" in r.json()["message"]


def test_a_deployer_limited_to_pools_acts_only_in_them(as_key: Client, api: TestClient) -> None:
    theirs = _deploy(api, pool="other", name="theirs").json()
    run = api.post(f"/api/deployments/{theirs['id']}/runs", json={}).json()
    scoped = as_key(Role.DEPLOYER, ["paused"])
    ours = _deploy(scoped, name="ours")
    assert ours.status_code == 201
    assert scoped.post(f"/api/deployments/{ours.json()['id']}/runs", json={}).status_code == 201
    refused = [
        _deploy(scoped, pool="other", name="new"),
        _deploy(scoped, pool="paused", name="theirs"),  # taking over another pool's deployment
        scoped.patch(f"/api/deployments/{ours.json()['id']}", json={"work_pool": "other"}),
        scoped.patch(f"/api/deployments/{theirs['id']}", json={"paused": True}),
        scoped.delete(f"/api/deployments/{theirs['id']}"),
        scoped.post(f"/api/deployments/{theirs['id']}/runs", json={}),
        scoped.post(f"/api/flow-runs/{run['id']}/cancel"),
    ]
    for r in refused:
        assert r.status_code == 403, r.request.url
        assert "may not use work pool 'other'" in r.json()["detail"]
    assert api.get(f"/api/deployments/{theirs['id']}").json()["work_pool"] == "other"


def test_the_last_admin_key_cannot_be_revoked(api: TestClient, services: Services) -> None:
    keys = api.get("/api/api-keys").json()
    assert [(k["name"], k["role"], k["pools"]) for k in keys] == [("admin", "admin", None)]
    r = api.delete(f"/api/api-keys/{keys[0]['id']}")
    assert r.status_code == 409
    assert "last admin key" in r.json()["detail"]
    second = api.post("/api/api-keys", json={"name": "admin2", "role": "admin"}).json()
    assert api.delete(f"/api/api-keys/{keys[0]['id']}").status_code == 200
    app = create_app(services)
    with TestClient(app, headers={"Authorization": f"Bearer {second['key']}"}) as admin2:
        assert admin2.delete(f"/api/api-keys/{second['id']}").status_code == 409


def test_keys_are_viewers_unless_asked(api: TestClient) -> None:
    made = api.post("/api/api-keys", json={"name": "dash"}).json()
    assert (made["role"], made["pools"]) == ("viewer", None)
    assert api.post("/api/api-keys", json={"name": "x", "role": "root"}).status_code == 422


def test_the_description_of_the_api_is_public(services: Services) -> None:
    with TestClient(create_app(services)) as anon:
        assert anon.get("/openapi.json").status_code == 200
        assert anon.get("/docs").status_code == 200
        assert "public" in anon.get("/openapi.json").json()["info"]["description"]


def test_every_operation_documents_what_it_can_answer(api: TestClient) -> None:
    doc = api.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            codes = set(op["responses"])
            where = f"{method.upper()} {path}"
            if path == "/api/health":
                assert codes == {"200"}, where
                continue
            assert {"401", "422" if op.get("requestBody") else "401"} <= codes, where
            if path.startswith(("/api/runner/", "/api/hooks/")):  # run token; public webhook
                continue
            assert "429" in codes and "Retry-After" in op["responses"]["429"]["headers"], where
            # Webhook slugs open their URLs: only deployers list them.
            # Automations hold notify URLs (often secret incoming-webhook URLs): the same.
            deployer_reads = (
                "/api/api-keys",
                "/api/webhooks",
                "/api/automations",
                "/api/automations/{name}",
            )
            needs_more_than_a_viewer = method != "get" or path in deployer_reads
            assert ("403" in codes) == needs_more_than_a_viewer, where
            if "{" in path:
                assert "404" in codes, where
            for code in codes - {"200", "201", "204"}:
                schema = op["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (where, code)
