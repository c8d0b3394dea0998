"""The API contract, checked against a live server started as a user starts it.

``pushpool server start`` runs in a subprocess (uvicorn, real HTTP on 127.0.0.1) with its
own home; the test reads the admin key from the credentials file, pauses every pool (so
no generated run starts a process) and creates pools, deployments and runs first. Each
generated request names one of those real objects in its path about half the time, and
the ``parameters`` of a body are sometimes nested hundreds of levels deep. Checks:
``not_a_server_error``, ``status_code_conformance`` (every status answered is
documented) and ``response_schema_conformance`` (every body matches its schema).

A second, stateful phase follows the document's OpenAPI links (create a pool, deployment,
run or API key, then get/patch/delete/cancel exactly what was created), with the same
checks; every pool it makes or patches stays paused, so no generated run starts a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from support.factories import EXAMPLES as EXAMPLES_DIR
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


#: Stateful phase: scenarios per round, calls per scenario, and when to stop (enough
#: calls, or the time budget: well under 2 min on 2 busy cores).
SCENARIOS = 40
STEPS = 8
ROUNDS = 6
MIN_CALLS = 300
BUDGET_SECONDS = 75
CREATES = {"POST /api/work-pools", "POST /api/deployments"}
POOL_BODIES = {"POST /api/work-pools", "PATCH /api/work-pools/{name}"}


def _steer(case: Any, key: str) -> None:
    """Most creates succeed (a process pool, a deployment of the example on the fixture
    pool), so the links have something to follow; a pool the state machine creates or
    patches stays paused, so no run it makes starts a process; every call has the key."""
    body = case.body
    if case.operation.label in CREATES and isinstance(body, dict):
        if "type" in body:  # a fresh name: the same draw creates a pool every time
            body.update(process_pool(f"st-{uuid.uuid4().hex[:12]}"))
        if "work_pool" in body:
            source = {"type": "local", "path": str(EXAMPLES_DIR)}
            body.update(work_pool="fixture", source=source, entrypoint="hello.py:hello")
    if case.operation.label in POOL_BODIES and isinstance(body, dict):
        body["paused"] = True
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}


def test_the_live_api_keeps_its_contract_along_its_links(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    assert schema.statistic.transitions.total >= 12  # the links are in the document

    failures: list[str] = []

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            _steer(case, server.key)

        calls = 0

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            type(self).calls += 1
            return {"timeout": 30}

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            # Collected, not raised: Hypothesis would replay the scenario against a server
            # whose state has moved on, and report that instead of the finding.
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except Exception as exc:
                details = [str(e) for e in getattr(exc, "exceptions", [])]
                failures.append("\n".join([f"{case.operation.label}: {exc}", *details]))

    calls = 0
    started = time.monotonic()
    for seed in range(ROUNDS):
        # A live server's state differs between Hypothesis' replays (a name taken, a run
        # cancelled): like schemathesis' own engine, a round that meets that ends there
        # (findings are collected above, not raised) and the next round starts afresh.
        with contextlib.suppress(Flaky):
            hypothesis.seed(seed)(Workflow).run(
                settings=settings(
                    max_examples=SCENARIOS,
                    stateful_step_count=STEPS,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate],
                )
            )
        calls = Workflow.calls
        if calls >= MIN_CALLS or time.monotonic() - started > BUDGET_SECONDS:
            break
    assert not failures, "\n\n".join(failures[:5])
    assert calls >= MIN_CALLS // 2, f"only {calls} linked calls ran"
