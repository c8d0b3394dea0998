"""``pushpool.emit_event``: through the runner's client and the run token to a live server
(real HTTP), kept locally outside a run, and never failing the flow."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.factories import deployment_body, process_pool
from support.server import LiveServer, live_server

import pushpool
from pushpool.context import RunEnvironment, use_environment
from pushpool.reporting import LocalReporter
from pushpool.results import LocalResultStore
from runner_image.client import RunnerClient
from runner_image.tasks import RunnerTaskReporter
from service.security import new_bootstrap_credential
from service.settings import Settings


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with live_server(Settings(home=tmp_path / "home")) as server:
        yield server


def _running_run(live: LiveServer) -> tuple[str, str]:
    """A claimed run whose runner has exchanged its bootstrap credential: (id, token)."""
    http = live.client
    http.post("/work-pools", json=process_pool("held", paused=True))
    dep = http.post("/deployments", json=deployment_body(work_pool="held")).json()["id"]
    run_id = http.post(f"/deployments/{dep}/runs").json()["id"]
    store, clock = live.services.store, live.services.clock
    store.update_pool("held", {"paused": False}, clock())
    bootstrap, digest = new_bootstrap_credential()
    store.claim_due_runs(clock(), 1, lambda _: digest, run_ids=[run_id])
    token = "ppr_" + secrets.token_urlsafe(32)
    client = RunnerClient(live.url, run_id)
    try:
        client.exchange(bootstrap, token)
    finally:
        client.close()
    return run_id, token


def _environment(reporter: Any, tmp_path: Path, run_id: str | None = None) -> RunEnvironment:
    return RunEnvironment(
        reporter=reporter, result_store=LocalResultStore(tmp_path / "r"), flow_run_id=run_id
    )


def test_flow_code_emits_through_the_runner(live: LiveServer, tmp_path: Path) -> None:
    run_id, token = _running_run(live)
    client = RunnerClient(live.url, run_id, token)
    reporter = RunnerTaskReporter(client)
    with use_environment(_environment(reporter, tmp_path, run_id)):
        stored = pushpool.emit_event("etl.loaded", payload={"rows": 3})
        named = pushpool.emit_event(
            "etl.table.refreshed", resource={"id": "db.sales", "labels": {"schema": "public"}}
        )
        refused = pushpool.emit_event("pushpool.flow-run.Completed")
    reporter.close()
    client.close()
    assert stored is not None and stored["resource"]["id"] == f"pushpool.flow-run.{run_id}"
    assert named is not None and named["resource"]["labels"] == {"schema": "public"}
    assert refused is None
    listed = live.client.get("/events", params={"name": "etl.*"}).json()["items"]
    assert {e["name"] for e in listed} == {"etl.loaded", "etl.table.refreshed"}
    related = {r["id"] for e in listed for r in e["related"]}
    assert f"pushpool.flow-run.{run_id}" in related


def test_outside_a_run_events_are_kept_locally(tmp_path: Path) -> None:
    reporter = LocalReporter()
    with use_environment(_environment(reporter, tmp_path)):
        out = pushpool.emit_event("local.thing", resource="my.resource", payload={"a": 1})
    assert out is not None
    assert reporter.events == [
        {
            "name": "local.thing",
            "resource": {"id": "my.resource", "labels": {}},
            "payload": {"a": 1},
            "related": [],
        }
    ]


class _Down:
    def emit_event(self, event: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("control plane unavailable")


def test_an_unreachable_service_never_fails_the_flow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        use_environment(_environment(_Down(), tmp_path)),
        caplog.at_level(logging.WARNING, logger="pushpool.events"),
    ):
        assert pushpool.emit_event("x.y") is None
    assert "could not emit event 'x.y'" in caplog.text
