"""A control plane outage costs nothing: ``kill -9`` of a real server (``pushpool server
start`` in its own process, the process pool, real HTTP) at the four points that matter,
kept down past the heartbeat timeout, then restarted on the same port and home.

Four runs are held at gates (files the test creates) so that at the kill each is at one
point: (1) before its runner reports RUNNING (held while importing the flow file), (2) in
the middle of its logging, (3) just before the flow returns, (4) just before it raises.
The gates open while the server is down. After the restart every run must end in its true
final state with its result or error, every log line must be stored exactly once and in
order, and no flow may have run twice (the deployment has retries)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.process_server import (
    DOWN_SECONDS,
    OUTAGE_SETTINGS,
    Server,
    all_logs,
    server_process,
    wait_until,
)

pytestmark = pytest.mark.slow


FLOWS = """
import os, sys, time
from pathlib import Path

GATES = Path(os.environ["OUTAGE_GATES"])


def arrive_and_wait(name):
    (GATES / f"at-{name}").touch()
    while not (GATES / f"go-{name}").exists():
        time.sleep(0.05)


def steady(name: str, lines: int, gate_at: int, pause: float = 0.0, fail: bool = False) -> str:
    with open(GATES / f"ran-{name}", "a") as ran:
        ran.write("ran\\n")
    for i in range(lines):
        if i == gate_at:
            arrive_and_wait(name)
        print(f"{name} line {i}", flush=True)
        time.sleep(pause)
    if gate_at >= lines:
        arrive_and_wait(name)
    if fail:
        raise ValueError(f"{name} failed")
    return f"{name} done"
"""

SLOW_IMPORT = """
from outage_flows import arrive_and_wait, steady

arrive_and_wait("setup")  # at import: before the runner reports RUNNING


def main(lines: int) -> str:
    return steady("setup", lines, gate_at=lines + 1)
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with server_process(tmp_path / "home", OUTAGE_SETTINGS) as srv:
        yield srv


def _deploy(client: httpx.Client, flows: Path, gates: Path, **body: Any) -> str:
    body = {
        "name": body.pop("name"),
        "work_pool": "local",
        "source": {"type": "local", "path": str(flows)},
        "job_variables": {"env": {"OUTAGE_GATES": str(gates)}},
        "retries": 2,
        **body,
    }
    r = client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_kill_9_at_the_four_points_costs_nothing(server: Server, tmp_path: Path) -> None:
    flows, gates = tmp_path / "flows", tmp_path / "gates"
    flows.mkdir()
    gates.mkdir()
    (flows / "outage_flows.py").write_text(FLOWS)
    (flows / "slow_import.py").write_text(SLOW_IMPORT)
    scenarios: dict[str, tuple[dict[str, Any], str, int]] = {
        # name: (parameters, expected state, lines the flow prints)
        "setup": ({"lines": 5}, "COMPLETED", 5),
        "logging": ({"name": "logging", "lines": 40, "gate_at": 10, "pause": 0.2}, "COMPLETED", 40),
        "returning": ({"name": "returning", "lines": 5, "gate_at": 5}, "COMPLETED", 5),
        "failing": (
            {"name": "failing", "lines": 5, "gate_at": 5, "fail": True},
            "FAILED",
            5,
        ),
    }
    with server.client() as client:
        steady = _deploy(
            client,
            flows,
            gates,
            name="steady",
            flow_name="steady",
            entrypoint="outage_flows.py:steady",
        )
        setup = _deploy(
            client, flows, gates, name="setup", flow_name="setup", entrypoint="slow_import.py:main"
        )
        failing = _deploy(
            client,
            flows,
            gates,
            name="failing",
            flow_name="failing",
            entrypoint="outage_flows.py:steady",
            retries=0,
        )
        runs: dict[str, str] = {}
        for name, (params, _, _) in scenarios.items():
            dep = {"setup": setup, "failing": failing}.get(name, steady)
            r = client.post(f"/deployments/{dep}/runs", json={"parameters": params})
            assert r.status_code == 201, r.text
            runs[name] = r.json()["id"]
        wait_until(
            lambda: all((gates / f"at-{n}").exists() for n in scenarios),
            60,
            "the gates",
            lambda: (
                f"{sorted(p.name for p in gates.iterdir())}\n"
                f"{[client.get(f'/flow-runs/{r}').json() for r in runs.values()]}\n"
                f"{server.log_tail()}"
            ),
        )
        assert client.get(f"/flow-runs/{runs['setup']}").json()["state"]["type"] == "PENDING"
        time.sleep(1.5)  # what was printed before the gates is shipped (or spooled)

    server.kill()  # (1)..(4): each run is at its point
    for name in scenarios:
        (gates / f"go-{name}").touch()
    time.sleep(DOWN_SECONDS)
    server.start()

    with server.client() as client:

        def final(run_id: str) -> dict[str, Any]:
            return dict(client.get(f"/flow-runs/{run_id}").json())

        terminal = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
        wait_until(
            lambda: all(final(r)["state"]["type"] in terminal for r in runs.values()),
            90,
            "final states",
        )
        time.sleep(3)  # ticks go on: a retry would show here
        report = {}
        for name, (_, expected, count) in scenarios.items():
            run = final(runs[name])
            lines = [x for x in all_logs(client, runs[name]) if x.startswith(f"{name} line")]
            report[name] = (run["state"]["type"], count, len(lines))
            assert run["state"]["type"] == expected, (name, run["state"], run.get("error"))
            assert run["run_count"] == 1, (name, run["state_history"])
            assert lines == [f"{name} line {i}" for i in range(count)], (name, lines)
            assert (gates / f"ran-{name}").read_text() == "ran\n", name  # ran once
            if expected == "COMPLETED":
                assert run["result"] == f"{name} done"
            else:
                assert run["error"]["type"] == "ValueError"
                assert run["error"]["message"] == f"{name} failed"
        print("kill point: (state, lines sent, lines stored):", report)
