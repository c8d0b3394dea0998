"""The runner records its flow's parameter schema on a deployment that has none."""

from __future__ import annotations

from api.test_task_runs import claimed_run
from fastapi.testclient import TestClient

from service.services import Services

SCHEMA = {
    "type": "object",
    "title": "hello",
    "properties": {"n": {"type": "integer", "title": "N"}},
    "required": ["n"],
    "additionalProperties": False,
}


def _record(api: TestClient, run_id: str, auth: dict[str, str], schema: object) -> int:
    r = api.put(
        f"/api/runner/flow-runs/{run_id}/parameter-schema",
        headers=auth,
        json={"parameter_schema": schema},
    )
    return r.status_code


def test_the_first_schema_is_kept_and_checks_later_runs(
    api: TestClient, services: Services
) -> None:
    run_id, auth = claimed_run(api, services)
    dep_id = services.store.get_run(run_id).deployment_id
    assert _record(api, run_id, auth, SCHEMA) == 204
    assert api.get(f"/api/deployments/{dep_id}").json()["parameter_schema"] == SCHEMA
    other = {"type": "object", "properties": {"n": {"type": "string"}}}
    assert _record(api, run_id, auth, other) == 409
    assert api.get(f"/api/deployments/{dep_id}").json()["parameter_schema"] == SCHEMA
    bad = api.post(f"/api/deployments/{dep_id}/runs", json={"parameters": {"n": "many"}})
    assert bad.status_code == 422, bad.text
    assert "n" in bad.text
    good = api.post(f"/api/deployments/{dep_id}/runs", json={"parameters": {"n": 3}})
    assert good.status_code == 201, good.text


def test_an_invalid_or_oversized_schema_is_refused_and_nothing_kept(
    api: TestClient, services: Services
) -> None:
    run_id, auth = claimed_run(api, services)
    dep_id = services.store.get_run(run_id).deployment_id
    assert _record(api, run_id, auth, {"type": "no-such-type"}) == 422
    big = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(3000)}}
    r = api.put(
        f"/api/runner/flow-runs/{run_id}/parameter-schema",
        headers=auth,
        json={"parameter_schema": big},
    )
    assert r.status_code == 422, r.text
    assert "parameter_schema" in r.text and "at most 65536" in r.text
    assert _record(api, run_id, auth, "not an object") == 422
    assert api.get(f"/api/deployments/{dep_id}").json()["parameter_schema"] is None


def test_only_the_runs_own_token_may_record(api: TestClient, services: Services) -> None:
    run_id, _ = claimed_run(api, services)
    dep_id = services.store.get_run(run_id).deployment_id
    assert _record(api, run_id, {}, SCHEMA) == 401
    assert _record(api, run_id, {"Authorization": "Bearer ppr_wrong"}, SCHEMA) == 401
    assert api.get(f"/api/deployments/{dep_id}").json()["parameter_schema"] is None
