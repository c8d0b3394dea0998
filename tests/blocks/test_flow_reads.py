"""Who reads a secret: a run's flow code, through its own run token, only the blocks its
deployment declares (403 naming any other), each read recorded; dispatch resolves a
process pool's env references into the child's environment only."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.blocks import MARKER
from support.factories import deployment_body, process_pool

from provisioners.base import SecretValue, SubmitRequest
from service.blocks.resolve import SECRET_ENV
from service.event_records import EventFilter
from service.security import new_bootstrap_credential
from service.services import Services


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _run_with_token(api: TestClient, services: Services, **deploy: Any) -> tuple[str, str]:
    """A claimed run of a deployment (``deploy``: its fields) whose runner holds a token."""
    api.post("/api/work-pools", json=process_pool("held", paused=True))
    r = api.post("/api/deployments", json=deployment_body(work_pool="held", **deploy))
    assert r.status_code == 201, r.text
    run_id = api.post(f"/api/deployments/{r.json()['id']}/runs").json()["id"]
    services.store.update_pool("held", {"paused": False}, services.clock())
    bootstrap, digest = new_bootstrap_credential()
    services.store.claim_due_runs(services.clock(), 1, lambda _: digest, run_ids=[run_id])
    token = "ppr_" + secrets.token_urlsafe(32)
    exchanged = api.post(
        f"/api/runner/flow-runs/{run_id}/exchange", headers=bearer(bootstrap), json={"token": token}
    )
    assert exchanged.status_code == 204
    return run_id, token


@pytest.fixture
def blocks(api: TestClient) -> None:
    for ref, values in (
        ("secret/db-password", {"value": MARKER}),
        ("secret/other", {"value": "other-secret-value"}),
        ("smtp/mail", {"host": "smtp.example.com", "password": MARKER}),
    ):
        assert api.put(f"/api/blocks/{ref}", json={"values": values}).status_code == 201


def test_flow_code_reads_declared_blocks_only(
    api: TestClient, services: Services, blocks: None
) -> None:
    run_id, token = _run_with_token(api, services, blocks=["secret/db-password", "smtp/mail"])
    base = f"/api/runner/flow-runs/{run_id}/blocks"
    ok = api.get(f"{base}/secret/db-password", headers=bearer(token))
    assert ok.status_code == 200
    assert ok.json() == {"values": {"value": MARKER}, "secret_fields": ["value"]}
    smtp = api.get(f"{base}/smtp/mail", headers=bearer(token)).json()
    assert smtp["values"]["password"] == MARKER and smtp["values"]["host"] == "smtp.example.com"
    refused = api.get(f"{base}/secret/other", headers=bearer(token))
    assert refused.status_code == 403
    assert "secret/other" in refused.json()["detail"] and "other-secret-value" not in refused.text
    # An API key (even the admin's) does not open the runner route; nor does no key.
    assert api.get(f"{base}/secret/db-password").status_code == 401
    assert api.get(f"{base}/secret/db-password", headers={}).status_code == 401
    # Each read is an event (which block, which run), never with the value.
    page = services.store.list_events(EventFilter(names=["pushpool.block.read"]), 10)
    reads = sorted(e.resource.id for e in page.items)
    assert reads == ["pushpool.block.secret/db-password", "pushpool.block.smtp/mail"]
    assert all(f"pushpool.flow-run.{run_id}" in {r.id for r in e.related} for e in page.items)
    assert MARKER not in str(page.items)


def test_dispatch_resolves_env_references_at_submit(
    api: TestClient, services: Services, blocks: None
) -> None:
    env = {"DB_PASSWORD": "{{ block:secret/db-password }}", "MAIL": "{{ block:smtp/mail/host }}"}
    run_id, _ = _run_with_token(api, services, job_variables={"env": {**env, "PLAIN": "x"}})
    run = services.store.get_run(run_id)
    deployment = services.store.get_deployment(run.deployment_id or "")
    assert deployment.blocks == ["secret/db-password", "smtp/mail"]
    request = services.dispatcher._with_blocks(services.dispatcher._request(run, "ppb_x"))
    assert isinstance(request, SubmitRequest)
    assert request.secret_env == {
        "DB_PASSWORD": SecretValue("secret/db-password", MARKER),
        "MAIL": SecretValue("smtp/mail/host", "smtp.example.com"),
    }
    assert "DB_PASSWORD" not in request.env  # values travel in the secret channel only
    assert request.env[SECRET_ENV] == "DB_PASSWORD,MAIL"
    assert request.job_variables["env"] == {"PLAIN": "x"}  # no reference, no value
    assert MARKER not in repr(request)  # env is repr=False
    # Rotation takes effect for the next run: the value is read at each submit.
    api.put("/api/blocks/secret/db-password", json={"values": {"value": "rotated-value-1"}})
    again = services.dispatcher._with_blocks(services.dispatcher._request(run, "ppb_x"))
    assert again.secret_env["DB_PASSWORD"].value == "rotated-value-1"
    # Nothing the API shows about the run or the deployment holds the value.
    shown = api.get(f"/api/flow-runs/{run_id}").text + api.get("/api/deployments").text
    assert MARKER not in shown and "rotated-value-1" not in shown


def test_an_unresolvable_reference_crashes_the_run_naming_the_block(
    api: TestClient, services: Services, blocks: None
) -> None:
    env = {"X": "{{ block:smtp/mail }}"}  # two fields set: which one?
    run_id, _ = _run_with_token(api, services, job_variables={"env": env})
    run = services.store.get_run(run_id)
    services.dispatcher._submit(run, "ppb_x")
    state = services.store.get_run(run_id).state
    assert state.type == "CRASHED" and "smtp/mail" in (state.message or "")
    assert MARKER not in (state.message or "")


def test_a_source_names_the_block_or_a_digest_of_a_mixed_template() -> None:
    from service.blocks.resolve import source_of

    assert source_of("{{ block:secret/db-password }}") == "secret/db-password"
    assert source_of(" {{block:smtp/mail/password}} ") == "smtp/mail/password"
    mixed = source_of("postgres://u:{{ block:secret/pw }}@db/x")
    assert mixed.startswith("composite/") and len(mixed) == len("composite/") + 16
    assert mixed != source_of("postgres://u:{{ block:secret/pw }}@db/y")
