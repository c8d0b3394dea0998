"""Events over the API: the service's own (run states, deployments, pools), emitted ones
(deployer keys, flow code with its run token), listing with filters and pages."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.factories import deployment_body, process_pool

from service.app import create_app
from service.models import Role
from service.security import create_api_key, new_bootstrap_credential
from service.services import Services


def events(api: TestClient, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/events", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def names(api: TestClient, **params: Any) -> list[str]:
    return [e["name"] for e in events(api, **params)]


def client_as(services: Services, role: Role) -> TestClient:
    _, secret = create_api_key(services.store, role.value, services.clock(), role, None)
    return TestClient(create_app(services), headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def held(api: TestClient) -> str:
    """A deployment on a paused pool (nothing starts): its id."""
    api.post("/api/work-pools", json=process_pool("held", paused=True))
    r = api.post("/api/deployments", json=deployment_body(work_pool="held"))
    assert r.status_code == 201, r.text
    deployment_id: str = r.json()["id"]
    return deployment_id


def test_run_state_changes_are_events_with_the_run_as_resource(
    api: TestClient, held: str, services: Services
) -> None:
    run = api.post(f"/api/deployments/{held}/runs").json()
    api.post(f"/api/flow-runs/{run['id']}/cancel")
    got = events(api, resource=f"pushpool.flow-run.{run['id']}")
    assert [e["name"] for e in got] == [
        "pushpool.flow-run.Cancelled",
        "pushpool.flow-run.Scheduled",
    ]
    labels = got[0]["resource"]["labels"]
    assert labels["flow"] == "hello" and labels["deployment"] == "default"
    assert labels["pool"] == "held" and labels["state-type"] == "CANCELLED"
    related = {r["id"] for r in got[0]["related"]}
    assert related == {f"pushpool.deployment.{held}", "pushpool.work-pool.held"}
    assert got[0]["payload"]["state"]["message"] == "cancelled by user"


def test_a_claim_is_an_event(api: TestClient, held: str, services: Services) -> None:
    run_id = api.post(f"/api/deployments/{held}/runs").json()["id"]
    services.store.update_pool("held", {"paused": False}, services.clock())
    assert [c.run.id for c in services.dispatcher.claim(1, [run_id])] == [run_id]
    assert names(api, resource=f"pushpool.flow-run.{run_id}", name="*.Pending") == [
        "pushpool.flow-run.Pending"
    ]


def groups(api: TestClient, **params: Any) -> list[set[str]]:
    """Event names, newest first, those that occurred together in one set."""
    out: list[tuple[str, set[str]]] = []
    for e in events(api, **params):
        if out and out[-1][0] == e["occurred"]:
            out[-1][1].add(e["name"].rsplit(".", 1)[1])
        else:
            out.append((e["occurred"], {e["name"].rsplit(".", 1)[1]}))
    return [names for _, names in out]


def test_deployments_and_pools_report_their_changes(
    api: TestClient, held: str, clock: FakeClock
) -> None:
    for change in ({"paused": True}, {"paused": False}, {"tags": ["x"]}):
        clock.advance(1)
        assert api.patch(f"/api/deployments/{held}", json=change).status_code == 200
    clock.advance(1)
    assert api.delete(f"/api/deployments/{held}").status_code == 204
    assert groups(api, resource=f"pushpool.deployment.{held}") == [
        {"deleted"},
        {"updated"},
        {"updated", "resumed"},
        {"updated", "paused"},
        {"created"},
    ]
    clock.advance(1)
    api.patch("/api/work-pools/held", json={"paused": False})
    clock.advance(1)
    assert api.delete("/api/work-pools/held").status_code == 204
    assert groups(api, name="pushpool.work-pool.*", resource="pushpool.work-pool.held") == [
        {"deleted"},
        {"updated", "resumed"},
        {"created"},
    ]


def test_a_deployer_emits_events_and_a_viewer_lists_them(
    services: Services, api: TestClient
) -> None:
    deployer, viewer = client_as(services, Role.DEPLOYER), client_as(services, Role.VIEWER)
    body = {
        "name": "shop.order.paid",
        "resource": {"id": "shop.order.42", "labels": {"customer": "acme"}},
        "payload": {"amount": 12.5},
    }
    r = deployer.post("/api/events", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["occurred"] and r.json()["id"]
    assert viewer.post("/api/events", json=body).status_code == 403
    got = events(viewer, name="shop.*", label="customer=acme")
    assert [(e["name"], e["payload"]) for e in got] == [("shop.order.paid", {"amount": 12.5})]
    assert events(viewer, label="customer=other") == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "pushpool.flow-run.Failed", "resource": {"id": "x"}}, "name"),
        ({"name": "custom.thing"}, "resource"),
        ({"name": "has space", "resource": {"id": "x"}}, "name"),
        ({"name": "a", "resource": {"id": "x"}, "occurred": "2999-01-01T00:00:00Z"}, "occurred"),
        ({"name": "a", "resource": {"id": "x"}, "extra": 1}, "extra"),
        ({"name": "a", "resource": {"id": "x", "labels": {"a b": "1"}}}, "labels"),
        ({"name": "a", "resource": {"id": "x\u0000"}}, "resource"),
    ],
)
def test_a_bad_event_is_refused_and_stores_nothing(
    api: TestClient, body: dict[str, Any], field: str
) -> None:
    before = events(api)
    r = api.post("/api/events", json=body)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert events(api) == before


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"label": "no-equals"}, "label"),
        ({"label": 'a"b=1'}, "label"),  # label names are names (a JSON path in SQL)
        ({"name": "a\x00b"}, "name"),
        ({"resource": "r\x01"}, "resource"),
        ({"cursor": "bogus"}, "cursor"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_queries_are_422(api: TestClient, params: dict[str, Any], field: str) -> None:
    r = api.get("/api/events", params=params)
    assert r.status_code == 422 and field in r.text


def test_listing_pages_newest_first(api: TestClient, services: Services) -> None:
    start = services.clock()
    for i in range(5):
        occurred = (start - timedelta(minutes=5 - i)).isoformat()
        body = {"name": f"page.e{i}", "resource": {"id": "r"}, "occurred": occurred}
        assert api.post("/api/events", json=body).status_code == 201
    first = api.get("/api/events", params={"name": "page.*", "limit": 3}).json()
    assert [e["name"] for e in first["items"]] == ["page.e4", "page.e3", "page.e2"]
    rest = api.get(
        "/api/events", params={"name": "page.*", "limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [e["name"] for e in rest["items"]] == ["page.e1", "page.e0"]
    assert rest["next_cursor"] is None
    since = (start - timedelta(minutes=3)).isoformat()
    assert names(api, name="page.*", since=since) == ["page.e4", "page.e3", "page.e2"]


def _runner_token(api: TestClient, services: Services, deployment_id: str) -> tuple[str, str]:
    run_id = api.post(f"/api/deployments/{deployment_id}/runs").json()["id"]
    services.store.update_pool("held", {"paused": False}, services.clock())
    bootstrap, digest = new_bootstrap_credential()
    services.store.claim_due_runs(services.clock(), 1, lambda _: digest, run_ids=[run_id])
    token = "ppr_" + secrets.token_urlsafe(32)
    r = api.post(
        f"/api/runner/flow-runs/{run_id}/exchange",
        headers={"Authorization": f"Bearer {bootstrap}"},
        json={"token": token},
    )
    assert r.status_code == 204, r.text
    return run_id, token


def test_flow_code_emits_about_its_run_with_the_run_token(
    api: TestClient, services: Services, held: str
) -> None:
    run_id, token = _runner_token(api, services, held)
    url = f"/api/runner/flow-runs/{run_id}/events"
    auth = {"Authorization": f"Bearer {token}"}
    r = api.post(url, headers=auth, json={"name": "etl.rows.loaded", "payload": {"rows": 7}})
    assert r.status_code == 201, r.text
    own = r.json()
    assert own["resource"]["id"] == f"pushpool.flow-run.{run_id}"
    named = api.post(url, headers=auth, json={"name": "etl.table", "resource": {"id": "db.t"}})
    assert f"pushpool.flow-run.{run_id}" in {x["id"] for x in named.json()["related"]}
    forged = api.post(url, json={"name": "etl.x"}, headers={"Authorization": "Bearer nope"})
    assert forged.status_code == 401
    reserved = api.post(url, headers=auth, json={"name": "pushpool.flow-run.Completed"})
    assert reserved.status_code == 422
    assert sorted(names(api, name="etl.*")) == ["etl.rows.loaded", "etl.table"]
