"""The runner's task-run reporter: batches through the transport, kept across outages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runner_image.tasks import RunnerTaskReporter, task_environment


class Transport:
    """Records what is sent; fails while ``down``."""

    def __init__(self) -> None:
        self.down = False
        self.batches: list[list[dict[str, Any]]] = []

        self.cache: dict[str, dict[str, Any]] = {}
        self.slots = 1
        self.holders: set[str] = set()
        self.asked: list[str] = []

    def send_task_runs(self, batch: list[dict[str, Any]]) -> None:
        if self.down:
            raise ConnectionError("control plane unavailable")
        self.batches.append(batch)

    def get_cache_record(self, key: str) -> dict[str, Any] | None:
        if self.down:
            raise ConnectionError("control plane unavailable")
        return self.cache.get(key)

    def put_cache_record(self, key: str, record: dict[str, Any]) -> None:
        if self.down:
            raise ConnectionError("control plane unavailable")
        self.cache[key] = record

    def acquire_slots(self, tags: list[str], holder: str, lease_seconds: float) -> bool:
        if self.down:
            raise ConnectionError("control plane unavailable")
        self.asked.append(holder)
        return holder in self.holders or len(self.holders) < self.slots

    def release_slots(self, tags: list[str], holder: str) -> None:
        self.holders.discard(holder)

    def latest(self) -> dict[str, dict[str, Any]]:
        return {item["id"]: item for batch in self.batches for item in batch}


def run_flow(send: Transport, count: int, tmp_path: Path) -> RunnerTaskReporter | None:
    from pushpool import flow, task

    @task
    def trivial(i: int) -> int:
        return i

    @flow
    def many() -> int:
        return sum(trivial.map(range(count)).result())

    with task_environment("run-1", send) as reporter:
        assert many() == sum(range(count))
    return reporter


def test_a_flow_reports_its_task_runs_in_few_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path))
    send = Transport()
    run_flow(send, 1000, tmp_path)
    latest = send.latest()
    assert len(latest) == 1000
    assert {item["state"] for item in latest.values()} == {"COMPLETED"}
    assert {item["flow_run_id"] for item in latest.values()} == {"run-1"}
    assert len(send.batches) <= 20


def test_snapshots_survive_an_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path))
    send = Transport()
    send.down = True
    reporter = RunnerTaskReporter(send)
    from pushpool.records import TaskRunRecord, TaskState

    record = TaskRunRecord(id="t1", flow_run_id="run-1", task_key="k", name="t")
    reporter.report([record])
    record.state = TaskState.COMPLETED
    reporter.report([record])
    assert send.batches == [] and reporter.failures == 2
    send.down = False
    reporter.close()
    assert [[item["state"] for item in batch] for batch in send.batches] == [["COMPLETED"]]


def test_a_plain_flow_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "from runner_image.tasks import task_environment\n"
        "with task_environment('r', None) as r:\n"
        "    assert r is None\n"
        "assert 'pushpool' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cache_records_go_through_the_transport_and_outages_are_misses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from pushpool import INPUTS, flow, task

    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path))
    calls: list[int] = []

    @task(cache_policy=INPUTS, cache_expiration=timedelta(hours=1))
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    send = Transport()
    for down in (False, False, True):
        send.down = down
        with task_environment("run-1", send):
            assert flow(lambda: square(3))() == 9
    assert calls == [3, 3]  # second run cached; the third (outage) recomputed
    (record,) = send.cache.values()
    assert record["result_key"].startswith("cache/") and record["expires_at"]


def test_slots_are_asked_for_with_backoff_until_the_timeout() -> None:
    send = Transport()
    send.slots = 0
    slept: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    reporter = RunnerTaskReporter(send, sleep=sleep, monotonic=lambda: now[0])
    assert not reporter.acquire(["db"], "t1", timeout=3)
    assert slept == [0.2, 0.5, 1.0]
    send.slots = 1
    send.down = True
    calls = iter([True, False])

    def flaky_sleep(seconds: float) -> None:
        send.down = next(calls, False)

    reporter = RunnerTaskReporter(send, sleep=flaky_sleep, monotonic=lambda: 0.0)
    assert reporter.acquire(["db"], "t2", timeout=None)  # an outage is waited out
    reporter.release(["db"], "t2")
    reporter.close()


def test_lines_written_inside_a_task_carry_its_task_run_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_run_logger, print under log_prints, any logger and a bare print inside a task
    are filed under that task run; the flow's own lines under none."""
    import logging

    from pushpool import flow, get_run_logger, task
    from runner_image.logs import LogCapture

    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path))
    entries: list[dict[str, Any]] = []

    def send(batch: list[dict[str, Any]], seq: int, deadline: float | None) -> None:
        entries.extend(batch)

    @task
    def shout(word: str) -> str:
        get_run_logger().info("logger %s", word)
        print(f"print {word}")
        logging.getLogger("third.party").warning("lib %s", word)
        return word

    @flow(log_prints=True)
    def words() -> list[str]:
        get_run_logger().info("flow line")
        print("flow print")
        return shout.map(["a", "b"]).result()

    @flow
    def quiet() -> str:  # no log_prints: the print reaches the runner's stdout tee
        return shout("c")

    capture = LogCapture(send, redact=lambda text: text)
    capture.start()
    try:
        with task_environment("run-1", Transport()):
            assert words() == ["a", "b"]
            assert quiet() == "c"
    finally:
        capture.stop()
    by_message = {e["message"]: e.get("task_run_id") for e in entries}
    assert by_message["flow line"] is None and by_message["flow print"] is None
    ids = {by_message[f"{kind} a"] for kind in ("logger", "print", "lib")}
    assert len(ids) == 1 and None not in ids
    assert by_message["logger a"] != by_message["logger b"]
    assert by_message["print c"] == by_message["logger c"] is not None
