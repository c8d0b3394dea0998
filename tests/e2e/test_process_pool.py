"""End to end through real HTTP: uvicorn on loopback, the `process` pool, the real runner."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.factories import EXAMPLES
from support.server import LiveServer, live_server

from service.settings import Settings

pytestmark = pytest.mark.slow
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        home=tmp_path / "home",
        heartbeat_seconds=1,
        cancel_grace_seconds=3,
        submit_timeout_seconds=5,
        report_grace_seconds=0,
    )
    with live_server(settings) as server:
        yield server


def deploy(client: httpx.Client, entrypoint: str, **extra: Any) -> str:
    body = {
        "name": "e2e",
        "flow_name": entrypoint.rsplit(":", 1)[1],
        "entrypoint": entrypoint,
        "work_pool": "local",
        "source": {"type": "local", "path": str(EXAMPLES)},
        **extra,
    }
    r = client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def start(client: httpx.Client, deployment_id: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/deployments/{deployment_id}/runs", json=body)
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    return run


def wait_for(
    live: LiveServer, run_id: str, states: set[str], timeout: float = 30, tick: bool = False
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = live.client.get(f"/flow-runs/{run_id}").json()
        if run["state"]["type"] in states:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run stayed {run['state']} (wanted {states})")
        if tick:
            live.client.post("/scheduler/tick")
        time.sleep(0.1)


def logs(live: LiveServer, run_id: str) -> list[str]:
    return [line["message"] for line in live.client.get(f"/flow-runs/{run_id}/logs").json()["logs"]]


def test_hello_completes_with_its_logs(live: LiveServer) -> None:
    dep = deploy(live.client, "hello.py:hello")
    run = start(live.client, dep, parameters={"name": "pushpool"})
    assert run["state"]["type"] == "PENDING"  # pushed in the same request
    assert run["infra"]["type"] == "process"
    done = wait_for(live, run["id"], TERMINAL)
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == "Hello, pushpool!"
    assert done["run_count"] == 1 and done["start_time"] and done["end_time"]
    assert [s["type"] for s in done["state_history"]] == [
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
    ]
    lines = logs(live, run["id"])
    assert "Hello, pushpool!" in lines and "Greeted pushpool" in lines
    # Teardown on the next tick removes the working directory.
    workdir = Path(done["infra"]["data"]["dir"])
    live.client.post("/scheduler/tick")
    assert not workdir.exists()


def test_failing_flow_fails_with_the_exception(live: LiveServer) -> None:
    dep = deploy(live.client, "failing.py:fail")
    run = start(live.client, dep, parameters={"message": "kaput"})
    done = wait_for(live, run["id"], TERMINAL)
    assert done["state"]["type"] == "FAILED"
    assert done["error"]["type"].endswith("ValueError")
    assert done["error"]["message"] == "kaput"
    assert "Traceback" in done["error"]["traceback"]
    assert any("About to fail" in line for line in logs(live, run["id"]))


def test_cancel_sleeping_run(live: LiveServer) -> None:
    dep = deploy(live.client, "sleepy.py:sleep")
    run = start(live.client, dep, parameters={"seconds": 60})
    wait_for(live, run["id"], {"RUNNING"})
    r = live.client.post(f"/flow-runs/{run['id']}/cancel")
    assert r.json()["state"]["type"] in ("CANCELLING", "CANCELLED")
    done = wait_for(live, run["id"], TERMINAL, tick=True)
    assert done["state"]["type"] == "CANCELLED"
    pid = done["infra"]["data"]["pid"]
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_killed_process_crashes_on_next_tick(live: LiveServer) -> None:
    dep = deploy(live.client, "sleepy.py:sleep")
    run = start(live.client, dep, parameters={"seconds": 60})
    running = wait_for(live, run["id"], {"RUNNING"})
    os.kill(running["infra"]["data"]["pid"], signal.SIGKILL)
    time.sleep(0.3)
    report = live.client.post("/scheduler/tick").json()
    assert report["reconcile"]["crashed"] == 1
    done = live.client.get(f"/flow-runs/{run['id']}").json()
    assert done["state"]["type"] == "CRASHED"
    assert done["error"]["exit_code"] == 137
    assert "SIGKILL" in done["state"]["message"]


def test_retries_rerun_a_failing_flow(live: LiveServer) -> None:
    dep = deploy(live.client, "failing.py:fail", retries=2, retry_delay_seconds=0)
    run = start(live.client, dep)
    done = wait_for(live, run["id"], {"FAILED"} | {"COMPLETED", "CRASHED"}, tick=True, timeout=60)
    # Each failure went back to SCHEDULED (AwaitingRetry) until retries ran out.
    deadline = time.monotonic() + 60
    while done["run_count"] < 3 or done["state"]["type"] != "FAILED":
        assert time.monotonic() < deadline, done
        live.client.post("/scheduler/tick")
        time.sleep(0.2)
        done = live.client.get(f"/flow-runs/{run['id']}").json()
    names = [s["name"] for s in done["state_history"]]
    assert names.count("AwaitingRetry") == 2
    assert names.count("Failed") == 3
    assert done["run_count"] == 3


def test_run_token_never_in_logs_or_responses(live: LiveServer) -> None:
    dep = deploy(live.client, "hello.py:hello")
    run = start(live.client, dep)
    done = wait_for(live, run["id"], TERMINAL)
    blob = str(done) + str(logs(live, run["id"]))
    assert "ppr_" not in blob


def test_last_words_of_a_runner_that_dies_are_kept(live: LiveServer, tmp_path: Path) -> None:
    """A flow prints (flushed), then the process dies at once: the line lives on in the
    platform's own log (``output.log``), which the reconciler keeps before teardown."""
    (tmp_path / "dies.py").write_text(
        "import os\n\ndef dies() -> None:\n    print('last words', flush=True)\n    os._exit(3)\n"
    )
    dep = deploy(live.client, "dies.py:dies", source={"type": "local", "path": str(tmp_path)})
    run = start(live.client, dep)
    done = wait_for(live, run["id"], TERMINAL, tick=True)
    assert done["state"]["type"] == "CRASHED"
    assert done["error"]["exit_code"] == 3
    lines = live.client.get(f"/flow-runs/{run['id']}/logs").json()["logs"]
    platform = [line for line in lines if line["stream"] == "platform"]
    assert platform and "process platform log" in platform[0]["message"]
    assert "last words" in [line["message"] for line in platform]


def test_a_retry_delay_is_honoured_to_within_a_second(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", tick_interval_seconds=10, report_grace_seconds=0)
    with live_server(settings, run_scheduler=True) as server:
        dep = deploy(server.client, "failing.py:fail", retries=1, retry_delay_seconds=1)
        run = start(server.client, dep)
        deadline = time.monotonic() + 30
        while True:
            done = server.client.get(f"/flow-runs/{run['id']}").json()
            if done["run_count"] == 2 and done["state"]["type"] in TERMINAL:
                break
            assert time.monotonic() < deadline, done["state_history"]
            time.sleep(0.1)
    history = done["state_history"]
    failed = next(s for s in history if s["type"] == "FAILED")["timestamp"]
    again = [s for s in history if s["type"] == "PENDING"][1]["timestamp"]
    waited = (datetime.fromisoformat(again) - datetime.fromisoformat(failed)).total_seconds()
    assert 1 <= waited < 2, history  # the loop woke for it, not on its 10 s tick


LEAK = """
import gc, json, os, urllib.request


def leak() -> None:
    env = open("/proc/self/environ", "rb").read().decode().split("\\0")
    boot = next(v.split("=", 1)[1] for v in env if v.startswith("PUSHPOOL_BOOTSTRAP_TOKEN="))
    from runner_image.client import RunnerClient

    token = next(o for o in gc.get_objects() if isinstance(o, RunnerClient))._token
    url = os.environ["PUSHPOOL_API_URL"] + "/api/runner/flow-runs/"
    url += os.environ["PUSHPOOL_FLOW_RUN_ID"] + "/exchange"
    body = json.dumps({"token": "ppr_" + "x" * 43}).encode()
    request = urllib.request.Request(url, body, {"Authorization": f"Bearer {boot}",
        "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request)
        print("second exchange: accepted", flush=True)
    except urllib.error.HTTPError as exc:
        print(f"second exchange: {exc.code}", flush=True)
    print("leaking", boot, token, flush=True)
    raise RuntimeError(f"{boot} {token}")
"""


def test_the_credentials_never_surface(live: LiveServer, tmp_path: Path) -> None:
    """A hostile flow finds the bootstrap credential (in /proc/self/environ) and the run
    token (in the runner's memory): the credential is spent, and neither is stored or
    written anywhere - state, error, traceback, history, logs, ``output.log``."""
    (tmp_path / "leak.py").write_text(LEAK)
    dep = deploy(live.client, "leak.py:leak", source={"type": "local", "path": str(tmp_path)})
    run = start(live.client, dep)
    done = wait_for(live, run["id"], TERMINAL)
    assert done["state"]["type"] == "FAILED", done
    messages = logs(live, run["id"])
    assert "second exchange: 401" in messages
    output = (Path(done["infra"]["data"]["dir"]) / "output.log").read_text()
    everything = json.dumps(done) + json.dumps(messages) + output
    assert "leaking [REDACTED] [REDACTED]" in messages
    assert done["error"]["message"] == "[REDACTED] [REDACTED]"
    assert "ppb_" not in everything and "ppr_" not in everything


def test_a_pushpool_flow_reports_task_runs_and_caches_across_runs(
    live: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ETL example on the process pool: mapped, retried and cached tasks, over HTTP."""
    env = {"PUSHPOOL_HOME": str(tmp_path / "runner-home")}
    dep = deploy(live.client, "etl.py:etl", job_variables={"env": env})
    params = {"day": "2026-03-01", "rows": 3, "failure_rate": 0.0}
    states: list[dict[str, str]] = []
    for _ in range(2):
        run = start(live.client, dep, parameters=params)
        done = wait_for(live, run["id"], TERMINAL)
        assert done["state"]["type"] == "COMPLETED", done
        assert done["result"] == 3
        task_runs = live.client.get(f"/flow-runs/{run['id']}/task-runs").json()
        states.append({tr["name"]: tr["state"] for tr in task_runs})
    transforms = [f"transform[{i}]" for i in range(3)]
    assert states[0] == {"extract": "COMPLETED", "load": "COMPLETED"} | dict.fromkeys(
        transforms, "COMPLETED"
    )
    assert states[1] == {"extract": "COMPLETED", "load": "COMPLETED"} | dict.fromkeys(
        transforms, "CACHED"
    )
    graph = live.client.get(f"/flow-runs/{run['id']}/graph").json()
    names = {node["id"]: node["name"] for node in graph["nodes"]}
    edges = sorted((names[e["source"]], names[e["target"]]) for e in graph["edges"])
    assert edges == sorted([("extract", t) for t in transforms] + [(t, "load") for t in transforms])
    assert_task_logs(live, run["id"], monkeypatch)
    # the cached transforms' results are in the pool's result storage: the server's
    # $PUSHPOOL_HOME/results (the process pool's default), not the runner's own home
    persisted = [p for p in (tmp_path / "home" / "results").rglob("*") if p.is_file()]
    assert len(persisted) >= 3
    assert not (tmp_path / "runner-home" / "results").exists()


def assert_task_logs(live: LiveServer, run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ETL run's lines are filed under the task run that wrote them (API and CLI)."""
    from support.e2e import invoke

    lines = live.client.get(f"/flow-runs/{run_id}/logs").json()["logs"]
    load_id = next(
        tr["id"]
        for tr in live.client.get(f"/flow-runs/{run_id}/task-runs").json()
        if tr["name"] == "load"
    )
    owner = {line["message"]: line["task_run_id"] for line in lines}
    assert owner["loading 3 rows"] == load_id
    assert owner["2026-03-01: 3 rows loaded"] is None  # the flow's own print
    only = live.client.get(f"/flow-runs/{run_id}/logs", params={"task_run": "load"}).json()
    assert [line["message"] for line in only["logs"]] == ["loading 3 rows"]
    assert (
        live.client.get(f"/flow-runs/{run_id}/logs", params={"task_run": "nope"}).status_code == 404
    )
    monkeypatch.setenv("PUSHPOOL_API_URL", live.url)
    monkeypatch.setenv("PUSHPOOL_API_KEY", live.api_key)
    code, out = invoke("runs", "logs", run_id, "--task", load_id[:8], "--output", "json")
    assert code == 0, out
    assert [line["message"] for line in json.loads(out)] == ["loading 3 rows"]
    code, out = invoke("runs", "logs", run_id, "--task", "nope")
    assert code != 0 and "task run 'nope' not found" in out


TAGGED_FLOW = """
import time
from pathlib import Path
from pushpool import flow, task

@task(tags=["db"])
def hold(log: str, seconds: float) -> None:
    start = time.time()
    time.sleep(seconds)
    with open(log, "a") as f:
        f.write(f"{start} {time.time()}\\n")

@flow
def tagged(log: str, seconds: float = 0.8) -> None:
    hold(log, seconds)
"""


def deploy_db_limited(live: LiveServer, tmp_path: Path, name: str, code: str) -> str:
    """Deploy ``code`` (flow ``name`` in ``name.py``) with a limit of 1 on tag ``db``."""
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(code)
    assert live.client.put("/concurrency-limits", json={"tag": "db", "limit": 1}).is_success
    body = {
        "name": name,
        "flow_name": name,
        "entrypoint": f"{name}.py:{name}",
        "work_pool": "local",
        "source": {"type": "local", "path": str(src)},
    }
    return str(live.client.post("/deployments", json=body).json()["id"])


def test_a_tag_limit_of_one_serialises_two_runs_tasks(live: LiveServer, tmp_path: Path) -> None:
    dep = deploy_db_limited(live, tmp_path, "tagged", TAGGED_FLOW)
    log = tmp_path / "intervals.txt"
    runs = [start(live.client, dep, parameters={"log": str(log)}) for _ in range(2)]
    for run in runs:
        assert wait_for(live, run["id"], TERMINAL)["state"]["type"] == "COMPLETED"
    (_, a_end), (b_start, _) = sorted(
        tuple(map(float, line.split())) for line in log.read_text().splitlines()
    )
    assert b_start >= a_end - 0.05  # the second task waited for the first's slot
    assert live.client.get("/concurrency-limits").json()[0]["active_slots"] == 0


HOLDING_FLOW = """
import time
from pathlib import Path
from pushpool import flow, task

@task(tags=["db"])
def hold(marker: str, seconds: float) -> None:
    Path(marker).write_text("holding")
    time.sleep(seconds)

@flow
def holding(marker: str, seconds: float) -> None:
    hold(marker, seconds)
"""


def test_a_killed_runners_slots_go_to_another_run(live: LiveServer, tmp_path: Path) -> None:
    """SIGKILL a runner whose task holds the only `db` slot: the reconciler's CRASHED frees
    it at once, so another run's task gets it long before the 60 s lease would expire."""
    dep = deploy_db_limited(live, tmp_path, "holding", HOLDING_FLOW)
    first, second = tmp_path / "first", tmp_path / "second"
    crashed = start(live.client, dep, parameters={"marker": str(first), "seconds": 120})
    running = wait_for(live, crashed["id"], {"RUNNING"})
    deadline = time.monotonic() + 30
    while not first.exists():
        assert time.monotonic() < deadline, "the first task never took its slot"
        time.sleep(0.1)
    waiting = start(live.client, dep, parameters={"marker": str(second), "seconds": 0})
    wait_for(live, waiting["id"], {"RUNNING"})
    time.sleep(1.0)
    assert not second.exists()  # its task waits for the slot
    os.kill(running["infra"]["data"]["pid"], signal.SIGKILL)
    time.sleep(0.3)
    assert live.client.post("/scheduler/tick").json()["reconcile"]["crashed"] == 1
    done = wait_for(live, waiting["id"], TERMINAL, timeout=20)  # the lease lasts 60 s
    assert done["state"]["type"] == "COMPLETED", done["state"]
    assert second.read_text() == "holding"
    assert live.client.get("/concurrency-limits").json()[0]["active_slots"] == 0
