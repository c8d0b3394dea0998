"""Run credentials: a single-use bootstrap credential, exchanged once for the runner's own
token; no secret ever comes back in a state message, an error, the history or the logs."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.factories import deployment_body, process_pool

from service.dispatch import BOOTSTRAP_ENV
from service.security import hash_secret, new_bootstrap_credential
from service.services import Services


def new_token() -> str:
    return "ppr_" + secrets.token_urlsafe(32)


@pytest.fixture
def claimed(api: TestClient, services: Services) -> tuple[str, str]:
    """``(run id, bootstrap credential)`` of a claimed run (nothing started for it)."""
    api.post("/api/work-pools", json=process_pool("held", paused=True))
    r = api.post("/api/deployments", json=deployment_body(work_pool="held"))
    run_id = api.post(f"/api/deployments/{r.json()['id']}/runs").json()["id"]
    services.store.update_pool("held", {"paused": False}, services.clock())
    bootstrap, digest = new_bootstrap_credential()
    services.store.claim_due_runs(services.clock(), 1, lambda _: digest, run_ids=[run_id])
    return run_id, bootstrap


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def exchange(api: TestClient, run_id: str, bootstrap: str, token: str) -> Any:
    return api.post(
        f"/api/runner/flow-runs/{run_id}/exchange", headers=bearer(bootstrap), json={"token": token}
    )


@pytest.fixture
def runner(api: TestClient, claimed: tuple[str, str]) -> tuple[str, str, str]:
    """``(run id, bootstrap credential, run token)`` once the runner has exchanged."""
    run_id, bootstrap = claimed
    token = new_token()
    assert exchange(api, run_id, bootstrap, token).status_code == 204
    return run_id, bootstrap, token


def test_the_bootstrap_credential_is_exchanged_once(
    api: TestClient, services: Services, claimed: tuple[str, str]
) -> None:
    run_id, bootstrap = claimed
    base = f"/api/runner/flow-runs/{run_id}"
    assert api.get(f"{base}/spec", headers=bearer(bootstrap)).status_code == 401  # not a token
    token = new_token()
    assert exchange(api, run_id, bootstrap, token).status_code == 204
    assert services.store.get_run(run_id).token_hash == hash_secret(token)  # a hash only
    assert exchange(api, run_id, bootstrap, token).status_code == 204  # a retry, same token
    assert exchange(api, run_id, bootstrap, new_token()).status_code == 401  # spent
    assert api.get(f"{base}/spec", headers=bearer(token)).status_code == 200
    assert api.get(f"{base}/spec", headers=bearer(bootstrap)).status_code == 401


def test_an_exchange_needs_the_right_credential_and_a_real_token(
    api: TestClient, claimed: tuple[str, str]
) -> None:
    run_id, bootstrap = claimed
    assert exchange(api, run_id, "ppb_" + "x" * 43, new_token()).status_code == 401
    assert exchange(api, run_id, new_token(), new_token()).status_code == 401
    bad = exchange(api, run_id, bootstrap, "short")
    assert bad.status_code == 422 and "token" in bad.text
    assert exchange(api, "no-such-run", bootstrap, new_token()).status_code == 401


def test_the_environment_carries_only_the_bootstrap_credential(
    services: Services, claimed: tuple[str, str]
) -> None:
    run_id, _ = claimed
    run = services.store.get_run(run_id)
    request = services.dispatcher._request(run, "ppb_value")
    assert request.env[BOOTSTRAP_ENV] == "ppb_value"
    assert not any(k.endswith("RUN_TOKEN") for k in request.env)


def test_secrets_never_come_back(
    api: TestClient, services: Services, runner: tuple[str, str, str]
) -> None:
    """``raise RuntimeError(token)`` in a flow: the token is stored nowhere."""
    run_id, bootstrap, token = runner
    base = f"/api/runner/flow-runs/{run_id}"
    api.post(f"{base}/state", headers=bearer(token), json={"state": "RUNNING"})
    line = {"timestamp": "2026-01-01T00:00:00Z", "message": f"my token is {token} {bootstrap}"}
    api.post(f"{base}/logs", headers=bearer(token), json={"seq": 0, "logs": [line]})
    error = {"type": "RuntimeError", "message": token, "traceback": f"RuntimeError: {token}"}
    r = api.post(
        f"{base}/state",
        headers=bearer(token),
        json={"state": "FAILED", "message": f"failed: {token}", "error": error},
    )
    assert r.status_code == 200
    run = api.get(f"/api/flow-runs/{run_id}").json()
    logs = api.get(f"/api/flow-runs/{run_id}/logs").json()
    everything = str(run) + str(logs) + str(services.store.state_history(run_id))
    assert token not in everything and bootstrap not in everything
    assert "[REDACTED]" in run["error"]["message"] and "[REDACTED]" in run["state"]["message"]
    assert logs["logs"][0]["message"] == "my token is [REDACTED] [REDACTED]"


def test_a_resent_log_batch_is_stored_once(api: TestClient, runner: tuple[str, str, str]) -> None:
    run_id, _, token = runner
    base = f"/api/runner/flow-runs/{run_id}"
    batch = {"seq": 3, "logs": [{"timestamp": "2026-01-01T00:00:00Z", "message": "once"}]}
    assert api.post(f"{base}/logs", headers=bearer(token), json=batch).status_code == 204
    assert api.post(f"{base}/logs", headers=bearer(token), json=batch).status_code == 204
    messages = [x["message"] for x in api.get(f"/api/flow-runs/{run_id}/logs").json()["logs"]]
    assert messages == ["once"]


def test_a_runs_log_is_capped_through_the_api(
    api: TestClient, services: Services, runner: tuple[str, str, str]
) -> None:
    services.settings.log_max_lines_per_run = 3
    run_id, _, token = runner
    lines = [{"timestamp": "2026-01-01T00:00:00Z", "message": f"l{i}"} for i in range(10)]
    api.post(
        f"/api/runner/flow-runs/{run_id}/logs",
        headers=bearer(token),
        json={"seq": 0, "logs": lines},
    )
    messages = [x["message"] for x in api.get(f"/api/flow-runs/{run_id}/logs").json()["logs"]]
    assert messages[:3] == ["l0", "l1", "l2"]
    assert len(messages) == 4 and messages[3].startswith("7 log line(s) (14 bytes) dropped")


def test_a_run_token_flooding_the_runner_endpoints_gets_429(
    api: TestClient, services: Services, runner: tuple[str, str, str]
) -> None:
    services.settings = services.settings.model_copy(
        update={"runner_rate_limit_per_second": 0.01, "runner_rate_limit_burst": 5}
    )
    run_id, _, token = runner
    beat = f"/api/runner/flow-runs/{run_id}/heartbeat"
    # Wrong tokens are refused before the limit: they never spend the run's budget.
    assert {api.post(beat, headers=bearer(new_token())).status_code for _ in range(10)} == {401}
    answers = [api.post(beat, headers=bearer(token)).status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]
    limited = api.get(f"/api/runner/flow-runs/{run_id}/spec", headers=bearer(token))
    assert limited.status_code == 429 and "this run token" in limited.json()["detail"]
    assert 90 <= int(limited.headers["Retry-After"]) <= 100
    assert token not in limited.text
    assert api.get("/api/work-pools").status_code == 200  # API keys have their own budget


def test_the_runner_limit_is_generous_and_documented(api: TestClient, services: Services) -> None:
    settings = services.settings
    # A runner's own traffic: a heartbeat every few seconds, about one log batch a second,
    # task-run batches, and one cache/slot call per task: far below either figure.
    assert settings.runner_rate_limit_per_second >= 100 and settings.runner_rate_limit_burst >= 1000
    spec = api.get("/openapi.json").json()["paths"]["/api/runner/flow-runs/{run_id}/heartbeat"]
    assert "Retry-After" in spec["post"]["responses"]["429"]["headers"]


def test_the_limiter_forgets_idle_keys_once_it_holds_many() -> None:
    from service.api.ratelimit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=1, burst=2, monotonic=lambda: now[0], max_keys=3)
    for key in ("a", "b", "c"):
        limiter.acquire(key)
    now[0] += 10  # all refilled: as good as new
    limiter.acquire("busy")
    limiter.acquire("busy")
    limiter.acquire("d")
    assert set(limiter._buckets) == {"busy", "d"}
    assert limiter.acquire("busy") > 0  # a busy key keeps its debt
