"""Blocks end to end: uvicorn on loopback, the process pool, the real runner. Flow code
loads its declared secret with the SDK and is refused an undeclared one; a secret in
``env`` reaches the child's environment only; the marker appears in no API response,
log line, state message or result."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.blocks import MARKER
from support.server import LiveServer, live_server

from service.event_records import EventFilter
from service.settings import Settings

pytestmark = pytest.mark.slow
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
DIGEST = hashlib.sha256(MARKER.encode()).hexdigest()

FLOW = """
import hashlib
import os

from pushpool import flow
from pushpool.blocks import Secret, SMTP


@flow
def uses_blocks(undeclared: bool = False) -> dict:
    password = Secret.load("db-password").get()
    print(f"password is {password}")  # redacted by the runner before it ships
    mail = SMTP.load("mail")
    if undeclared:
        Secret.load("other")
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    return {
        "password": digest(password),
        "env": digest(os.environ["DB_PASSWORD"]),
        "mail_host": mail.host,
        "mail_password": digest(mail.password.get_secret_value()),
    }
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(home=tmp_path / "home", heartbeat_seconds=1, report_grace_seconds=0)
    with live_server(settings) as server:
        yield server


def finish(live: LiveServer, deployment_id: str, **body: Any) -> dict[str, Any]:
    """Start a run and wait (30 s at most) for its terminal state."""
    r = live.client.post(f"/deployments/{deployment_id}/runs", json=body)
    assert r.status_code == 201, r.text
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = live.client.get(f"/flow-runs/{r.json()['id']}").json()
        if run["state"]["type"] in TERMINAL:
            return run
        assert time.monotonic() < deadline, run["state"]
        time.sleep(0.1)


def test_a_flow_reads_its_declared_secrets_and_nothing_leaks(
    live: LiveServer, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "flows.py").write_text(FLOW)
    client = live.client
    for ref, values in (
        ("secret/db-password", {"value": MARKER}),
        ("secret/other", {"value": "other-secret-value"}),
        ("smtp/mail", {"host": "smtp.example.com", "password": MARKER}),
    ):
        assert client.put(f"/blocks/{ref}", json={"values": values}).status_code == 201
    body = {
        "name": "blocks",
        "flow_name": "uses_blocks",
        "entrypoint": "flows.py:uses_blocks",
        "work_pool": "local",
        "source": {"type": "local", "path": str(code)},
        "blocks": ["secret/db-password", "smtp/mail"],
        "job_variables": {"env": {"DB_PASSWORD": "{{ block:secret/db-password }}"}},
    }
    r = client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    dep = r.json()["id"]
    ok = finish(live, dep)
    assert ok["state"]["type"] == "COMPLETED", ok["state"]
    assert ok["result"] == {
        "password": DIGEST,
        "env": DIGEST,
        "mail_host": "smtp.example.com",
        "mail_password": DIGEST,
    }
    refused = finish(live, dep, parameters={"undeclared": True})
    assert refused["state"]["type"] == "FAILED"
    assert "secret/other" in refused["state"]["message"]
    assert "not declared" in json.dumps(refused["error"])
    everything = ""
    for run in (ok, refused):
        logs = client.get(f"/flow-runs/{run['id']}/logs").json()["logs"]
        assert any(line["message"] == "password is [REDACTED]" for line in logs), logs
        everything += json.dumps(logs) + json.dumps(client.get(f"/flow-runs/{run['id']}").json())
    everything += client.get("/blocks").text + client.get("/deployments").text
    events = live.services.store.list_events(EventFilter(), 200).items
    assert {e.resource.id for e in events if e.name == "pushpool.block.read"} == {
        "pushpool.block.secret/db-password",
        "pushpool.block.smtp/mail",
    }
    everything += "".join(e.model_dump_json() for e in events)
    assert MARKER not in everything
