"""The API contract, checked against a live server started as a user starts it.

``pushpool server start`` runs in a subprocess (uvicorn, real HTTP on 127.0.0.1) with its
own home; the test reads the admin key from the credentials file, pauses every pool (so
no generated run starts a process) and creates pools, deployments and runs first. Each
generated request names one of those real objects in its path about half the time, and
the ``parameters`` of a body are sometimes nested hundreds of levels deep. Checks:
``not_a_server_error``, ``status_code_conformance`` (every status answered is
documented) and ``response_schema_conformance`` (every body matches its schema).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from support.factories import REPO, process_pool
from support.server import free_port

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
#: Where a path parameter may name a real object, and which.
PATH_OBJECTS = {"name": "pools", "deployment_id": "deployments", "run_id": "runs"}
#: Operations whose body carries flow parameters (any JSON, so any depth).
TAKES_PARAMETERS = {
    "POST /api/deployments",
    "PATCH /api/deployments/{deployment_id}",
    "POST /api/deployments/{deployment_id}/runs",
}


@dataclass
class Server:
    url: str
    key: str
    objects: dict[str, list[str]] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url + "/api", headers={"Authorization": f"Bearer {self.key}"}
        )


def _wait_until_up(url: str, process: subprocess.Popen[bytes], home: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return str(json.loads((home / "credentials").read_text())["api_key"])
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start in 60 s")


def _populate(server: Server) -> None:
    """Pause the default pool; make paused pools, deployments on them, and runs."""
    with server.client() as api:
        api.patch("/work-pools/local", json={"paused": True}).raise_for_status()
        for pool in ("fixture", "scratch"):
            api.post("/work-pools", json=process_pool(pool, paused=True)).raise_for_status()
        deployments, runs = [], []
        for name in ("one", "two"):
            body = {
                "name": name,
                "flow_name": "hello",
                "entrypoint": "hello.py:hello",
                "work_pool": "fixture",
                "source": {"type": "local", "path": str(REPO / "examples")},
                "parameter_schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "pattern": "^[A-Za-z]+$"}},
                },
            }
            deployment = api.post("/deployments", json=body).json()
            deployments.append(deployment["id"])
            run = api.post(f"/deployments/{deployment['id']}/runs", json={}).json()
            runs.append(run["id"])
            api.post(f"/flow-runs/{run['id']}/cancel")
            runs.append(api.post(f"/deployments/{deployment['id']}/runs", json={}).json()["id"])
    server.objects = {"pools": ["fixture", "scratch"], "deployments": deployments, "runs": runs}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("schemathesis-home")
    port = free_port()
    env = {
        **os.environ,
        "PUSHPOOL_HOME": str(home),
        # Hypothesis sends requests as fast as it can: no 429s for the one key it has.
        "PUSHPOOL_RATE_LIMIT_PER_SECOND": "0",
    }
    pushpool = Path(sys.executable).parent / "pushpool"
    process = subprocess.Popen(
        [str(pushpool), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        live = Server(url, _wait_until_up(url, process, home))
        _populate(live)
        yield live
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        stderr = ""
        if process.stderr is not None:
            stderr = process.stderr.read().decode()
            process.stderr.close()
        assert "Traceback" not in stderr, stderr[-3000:]


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _aim(case: Any, data: st.DataObject, server: Server) -> None:
    """Point the case at real objects, deep parameters, and the real key."""
    for param, kind in PATH_OBJECTS.items():
        if param in (case.path_parameters or {}) and data.draw(st.booleans()):
            choices = server.objects[kind]
            if case.method == "DELETE" and kind == "pools":
                choices = ["scratch"]  # the others hold deployments: 409
            case.path_parameters[param] = data.draw(st.sampled_from(choices))
    if case.operation.label in TAKES_PARAMETERS and isinstance(case.body, dict):
        depth = data.draw(st.sampled_from([0, 300, 600]))
        if depth:
            case.body["parameters"] = {"p": _deep(depth)}
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {server.key}"}


#: Examples per operation (half valid, half not), enough to meet deep parameters and
#: ``null`` on every PATCH field many times over.
EXAMPLES = 30


def _exercise(operation: Any, server: Server) -> None:
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=strategy, data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def run(case: Any, data: st.DataObject) -> None:
        _aim(case, data, server)
        case.call_and_validate(checks=CHECKS, timeout=30)

    run()


def test_the_live_api_keeps_its_contract(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        try:
            _exercise(operation, server)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # every operation runs; all failures are reported
            details = [str(e) for e in getattr(exc, "exceptions", [])]
            failures.append("\n".join([f"{operation.label}: {exc}", *details]))
    assert not failures, "\n\n".join(failures)
