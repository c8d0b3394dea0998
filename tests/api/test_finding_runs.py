"""Finding and reading runs over the API: names, id prefixes, filters, counts, why a run
waits, and idempotency keys that do not silently return another run."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.factories import deployment_body, process_pool

from service.services import Services
from service.states import StateType, set_state


def _paused_deployment(api: TestClient, **overrides: Any) -> str:
    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    r = api.post("/api/deployments", json=deployment_body(work_pool="paused", **overrides))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _run(api: TestClient, dep: str, **body: Any) -> dict[str, Any]:
    r = api.post(f"/api/deployments/{dep}/runs", json=body)
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def test_runs_have_names_and_are_found_by_name_or_id_prefix(api: TestClient) -> None:
    dep = _paused_deployment(api)
    named = _run(api, dep, name="nightly-backfill")
    plain = _run(api, dep)
    assert named["name"] == "nightly-backfill"
    assert plain["name"] and plain["name"].count("-") >= 1
    assert api.get("/api/flow-runs/nightly-backfill").json()["id"] == named["id"]
    by_prefix = api.get(f"/api/flow-runs/{plain['id'][:8]}")
    assert by_prefix.status_code == 200 and by_prefix.json()["id"] == plain["id"]
    logs = api.get(f"/api/flow-runs/{plain['id'][:8]}/logs")
    assert logs.status_code == 200
    assert api.get("/api/flow-runs/no-such-run").status_code == 404
    assert api.post("/api/flow-runs/nightly-backfill/cancel").json()["state"]["type"] == (
        "CANCELLED"
    )


def test_an_ambiguous_reference_names_the_matches(api: TestClient) -> None:
    dep = _paused_deployment(api)
    a = _run(api, dep, name="twin")
    b = _run(api, dep, name="twin")
    r = api.get("/api/flow-runs/twin")
    assert r.status_code == 422
    assert a["id"] in r.text and b["id"] in r.text and "more than one" in r.text


def test_list_filters_order_and_count(api: TestClient, services: Services) -> None:
    dep = _paused_deployment(api, tags=["etl"])
    later = services.clock().replace(microsecond=0).isoformat()
    first = _run(api, dep, tags=["nightly"])
    second = _run(api, dep, scheduled_start="2030-01-01T00:00:00Z")
    assert [
        r["id"] for r in api.get("/api/flow-runs", params={"tag": "nightly"}).json()["items"]
    ] == [first["id"]]
    asc = api.get("/api/flow-runs", params={"order": "asc", "limit": 1, "count": True}).json()
    assert [r["id"] for r in asc["items"]] == [first["id"]] and asc["total"] == 2
    assert asc["next_cursor"]
    assert api.get("/api/flow-runs", params={"flow_name": "nope"}).json()["items"] == []
    since = api.get("/api/flow-runs", params={"since": "2029-01-01T00:00:00Z"}).json()
    assert [r["id"] for r in since["items"]] == [second["id"]]
    assert api.get("/api/flow-runs", params={"since": later[:19]}).status_code == 422  # naive
    assert (
        api.get("/api/flow-runs", params={"name": second["name"]}).json()["items"][0]["id"]
        == second["id"]
    )


def test_reusing_an_idempotency_key_with_other_parameters_is_a_conflict(api: TestClient) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    dep = _paused_deployment(api, parameter_schema=schema)
    first = _run(api, dep, idempotency_key="k1", parameters={"n": 1})
    assert _run(api, dep, idempotency_key="k1", parameters={"n": 1})["id"] == first["id"]
    r = api.post(
        f"/api/deployments/{dep}/runs", json={"idempotency_key": "k1", "parameters": {"n": 2}}
    )
    assert r.status_code == 409
    assert "different parameters" in r.text and first["id"] in r.text
    assert len(api.get("/api/flow-runs").json()["items"]) == 1


def test_why_a_scheduled_run_has_not_started(api: TestClient) -> None:
    dep = _paused_deployment(api)
    run = _run(api, dep)
    reasons = api.get(f"/api/flow-runs/{run['id']}").json()["waiting_reasons"]
    assert reasons == ["work pool 'paused' is paused"]
    api.patch("/api/work-pools/paused", json={"paused": False, "concurrency_limit": 1})
    api.patch(f"/api/deployments/{dep}", json={"paused": True})
    reasons = api.get(f"/api/flow-runs/{run['id']}").json()["waiting_reasons"]
    assert reasons == ["deployment hello/default is paused"]
    future = _run(api, dep, scheduled_start="2030-01-01T00:00:00Z")
    reasons = api.get(f"/api/flow-runs/{future['id']}").json()["waiting_reasons"]
    assert reasons[0].startswith("not due until 2030-01-01")


def test_a_full_concurrency_limit_says_how_many_are_ahead(
    api: TestClient, services: Services, clock: FakeClock
) -> None:
    dep = _paused_deployment(api, concurrency_limit=1)
    running = _run(api, dep)
    clock.advance(1)
    _run(api, dep)  # queued ahead of the next one
    clock.advance(1)
    waiting = _run(api, dep)
    set_state(
        services.store, running["id"], StateType.PENDING, now=clock(), expected=StateType.SCHEDULED
    )
    api.patch("/api/work-pools/paused", json={"paused": False})
    reasons = api.get(f"/api/flow-runs/{waiting['id']}").json()["waiting_reasons"]
    assert reasons == [
        "deployment hello/default is at its concurrency limit (1 of 1 running); "
        "1 due run(s) ahead of this one"
    ]


def test_deployment_timeout_reaches_the_runner_spec(api: TestClient, services: Services) -> None:
    from service.security import new_run_token

    dep = _paused_deployment(api, timeout_seconds=90)
    assert api.get(f"/api/deployments/{dep}").json()["timeout_seconds"] == 90
    bad = api.post("/api/deployments", json=deployment_body(name="x", timeout_seconds=0))
    assert bad.status_code == 422 and "timeout_seconds" in bad.text
    run = _run(api, dep)
    token, digest = new_run_token()
    set_state(services.store, run["id"], StateType.PENDING, now=services.clock(),
              expected=StateType.SCHEDULED)  # fmt: skip
    assert services.store.set_token(run["id"], StateType.PENDING, digest)
    spec = api.get(
        f"/api/runner/flow-runs/{run['id']}/spec", headers={"Authorization": f"Bearer {token}"}
    )
    assert spec.status_code == 200, spec.text
    assert spec.json()["timeout_seconds"] == 90
