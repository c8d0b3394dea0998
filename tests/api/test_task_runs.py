"""Task-run reports from the runner (run token), the list and the graph (API key)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from support.factories import deployment_body, process_pool

from pushpool import flow, task
from pushpool.context import RunEnvironment, use_environment
from pushpool.reporting import LocalReporter
from pushpool.results import LocalResultStore
from service.services import Services


def claimed_run(
    api: TestClient, services: Services, deployment: str = "default"
) -> tuple[str, dict[str, str]]:
    """A PENDING run of the deployment (created, or redeployed) and the runner's auth
    header for it."""
    from service.security import new_run_token

    api.post("/api/work-pools", json=process_pool("paused", paused=True))
    services.store.update_pool("paused", {"paused": True}, services.clock())
    r = api.post("/api/deployments", json=deployment_body(name=deployment, work_pool="paused"))
    run_id = api.post(f"/api/deployments/{r.json()['id']}/runs").json()["id"]
    token, digest = new_run_token()
    services.store.update_pool("paused", {"paused": False}, services.clock())
    services.store.claim_due_runs(services.clock(), 1, lambda _: digest, run_ids=[run_id])
    return run_id, {"Authorization": f"Bearer {token}"}


def sdk_records(tmp_path: Any) -> list[dict[str, Any]]:
    """What the SDK reports for a small diamond-shaped flow."""

    @task
    def source() -> list[int]:
        return [1, 2]

    @task
    def double(xs: list[int]) -> list[int]:
        return [2 * x for x in xs]

    @task
    def join(a: list[int], b: list[int]) -> int:
        return sum(a) + sum(b)

    @flow
    def diamond() -> int:
        s = source.submit()
        return join(double.submit(s), s)

    reporter = LocalReporter()
    env = RunEnvironment(reporter=reporter, result_store=LocalResultStore(tmp_path))
    with use_environment(env):
        assert diamond() == 9
    return [r.to_json() for r in reporter.task_runs.values()]


def test_reported_task_runs_are_listed_and_graphed(
    api: TestClient, services: Services, tmp_path: Any
) -> None:
    run_id, auth = claimed_run(api, services)
    records = sdk_records(tmp_path)
    posted = api.post(
        f"/api/runner/flow-runs/{run_id}/task-runs", headers=auth, json={"task_runs": records}
    )
    assert posted.status_code == 204, posted.text
    listed = api.get(f"/api/flow-runs/{run_id}/task-runs").json()
    assert sorted(tr["name"] for tr in listed) == ["double", "join", "source"]
    assert {tr["flow_run_id"] for tr in listed} == {run_id}
    graph = api.get(f"/api/flow-runs/{run_id}/graph").json()
    ids = {node["name"]: node["id"] for node in graph["nodes"]}
    edges = {(e["source"], e["target"]) for e in graph["edges"]}
    assert edges == {
        (ids["source"], ids["double"]),
        (ids["source"], ids["join"]),
        (ids["double"], ids["join"]),
    }
    assert all(n["state"] == "COMPLETED" and n["duration_seconds"] >= 0 for n in graph["nodes"])


def test_task_run_reports_need_the_runs_token(api: TestClient, services: Services) -> None:
    run_id, _ = claimed_run(api, services)
    body = {"task_runs": []}
    assert api.post(f"/api/runner/flow-runs/{run_id}/task-runs", json=body).status_code == 401


def test_bad_task_run_reports_are_422_and_store_nothing(
    api: TestClient, services: Services
) -> None:
    run_id, auth = claimed_run(api, services)
    good = {"id": "a", "task_key": "m.t", "name": "t", "state": "RUNNING"}
    for bad in (
        {**good, "state": "EXPLODED"},
        {**good, "id": "has space"},
        {**good, "surprise": 1},
    ):
        r = api.post(
            f"/api/runner/flow-runs/{run_id}/task-runs",
            headers=auth,
            json={"task_runs": [good, bad]},
        )
        assert r.status_code == 422, r.text
    too_many = {"task_runs": [{**good, "id": f"t{i}"} for i in range(1001)]}
    r = api.post(f"/api/runner/flow-runs/{run_id}/task-runs", headers=auth, json=too_many)
    assert r.status_code == 422
    assert api.get(f"/api/flow-runs/{run_id}/task-runs").json() == []


def test_unknown_flow_run_is_404(api: TestClient) -> None:
    assert api.get("/api/flow-runs/nope/task-runs").status_code == 404
    assert api.get("/api/flow-runs/nope/graph").status_code == 404


def test_cache_records_round_trip_and_expire(api: TestClient, services: Services) -> None:
    from datetime import timedelta

    run_id, auth = claimed_run(api, services)
    base = f"/api/runner/flow-runs/{run_id}/cache"
    assert api.get(f"{base}/abc123", headers=auth).status_code == 404
    expires = (services.clock() + timedelta(minutes=1)).isoformat()
    body = {"result_key": "cache/abc123", "expires_at": expires}
    assert api.put(f"{base}/abc123", headers=auth, json=body).status_code == 204
    got = api.get(f"{base}/abc123", headers=auth)
    assert got.status_code == 200 and got.json()["result_key"] == "cache/abc123"
    services.clock.advance(120)  # type: ignore[attr-defined]
    assert api.get(f"{base}/abc123", headers=auth).status_code == 404
    assert api.get(f"{base}/abc123").status_code == 401  # an API key is not a run token


def test_cache_records_are_scoped_to_the_deployment(api: TestClient, services: Services) -> None:
    """A run reads its own deployment's records (from another run too), never another's."""
    writer, auth = claimed_run(api, services, "a")
    body = {"result_key": "cache/shared"}
    assert api.put(f"/api/runner/flow-runs/{writer}/cache/k1", headers=auth, json=body).is_success
    sibling, sibling_auth = claimed_run(api, services, "a")
    got = api.get(f"/api/runner/flow-runs/{sibling}/cache/k1", headers=sibling_auth)
    assert got.status_code == 200 and got.json() == {
        "key": "k1",
        "result_key": "cache/shared",
        "expires_at": None,
    }
    other, other_auth = claimed_run(api, services, "b")
    assert api.get(f"/api/runner/flow-runs/{other}/cache/k1", headers=other_auth).status_code == 404
    hostile = {"result_key": "cache/poisoned"}
    put = api.put(f"/api/runner/flow-runs/{other}/cache/k1", headers=other_auth, json=hostile)
    assert put.status_code == 204
    again = api.get(f"/api/runner/flow-runs/{sibling}/cache/k1", headers=sibling_auth)
    assert again.json()["result_key"] == "cache/shared"  # b's write did not replace a's


def test_bad_cache_records_are_422(api: TestClient, services: Services) -> None:
    run_id, auth = claimed_run(api, services)
    base = f"/api/runner/flow-runs/{run_id}/cache"
    assert api.put(f"{base}/k", headers=auth, json={"result_key": ""}).status_code == 422
    bad_key = api.put(f"{base}/has%20space", headers=auth, json={"result_key": "x"})
    assert bad_key.status_code == 422
    extra = api.put(f"{base}/k", headers=auth, json={"result_key": "x", "other": 1})
    assert extra.status_code == 422
    assert api.get(f"{base}/k", headers=auth).status_code == 404


def test_concurrency_limits_and_slot_leases(api: TestClient, services: Services) -> None:
    assert api.put("/api/concurrency-limits", json={"tag": "db", "limit": 1}).status_code == 200
    run_id, auth = claimed_run(api, services)
    slots = f"/api/runner/flow-runs/{run_id}/slots"
    ask = {"tags": ["db", "free"], "holder": "task-a", "lease_seconds": 30}
    assert api.post(slots, headers=auth, json=ask).json() == {"acquired": True}
    other = {**ask, "holder": "task-b"}
    assert api.post(slots, headers=auth, json=other).json() == {"acquired": False}
    assert api.get("/api/concurrency-limits").json()[0]["active_slots"] == 1
    services.clock.advance(31)  # type: ignore[attr-defined]
    assert api.post(slots, headers=auth, json=other).json() == {"acquired": True}  # expired
    release = {"tags": ["db"], "holder": "task-b"}
    assert api.post(f"{slots}/release", headers=auth, json=release).status_code == 204
    assert api.get("/api/concurrency-limits").json()[0]["active_slots"] == 0
    assert api.post(slots, json=ask).status_code == 401  # an API key is not a run token


def test_bad_limits_and_slot_requests_are_422(api: TestClient, services: Services) -> None:
    for body in ({"tag": "db", "limit": 0}, {"tag": "a b", "limit": 1}, {"tag": "db"}):
        assert api.put("/api/concurrency-limits", json=body).status_code == 422
    assert api.get("/api/concurrency-limits").json() == []
    assert api.delete("/api/concurrency-limits/nope").status_code == 404
    run_id, auth = claimed_run(api, services)
    slots = f"/api/runner/flow-runs/{run_id}/slots"
    for body in (
        {"tags": [], "holder": "t"},
        {"tags": ["db"], "holder": "t", "lease_seconds": 1},
        {"tags": ["db"], "holder": "x" * 65},
    ):
        assert api.post(slots, headers=auth, json=body).status_code == 422
