"""Batching of task-run reports and the local reporter's slots and cache records."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from support.sdk import Env

from pushpool import flow, task
from pushpool.records import CacheRecord, TaskRunRecord, TaskState
from pushpool.reporting import BatchingReporter, LocalReporter, TaskRunReporter


class Counting(LocalReporter):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def report(self, batch: Sequence[TaskRunRecord]) -> None:
        self.sizes.append(len(batch))
        super().report(batch)


def test_a_thousand_tasks_make_few_reports(sdk_env: Env) -> None:
    counting = Counting()
    sdk_env.env.reporter = counting

    @task
    def trivial(i: int) -> int:
        return i

    @flow
    def many() -> None:
        for i in range(1000):
            trivial(i)
        trivial.map(range(1000)).wait()

    many()
    assert len(counting.task_runs) == 2000
    assert all(r.state is TaskState.COMPLETED for r in counting.task_runs.values())
    assert len(counting.sizes) <= 40  # <= 20 per 1,000 tasks
    assert max(counting.sizes) <= 500


def test_snapshots_of_one_run_coalesce_and_are_copies() -> None:
    inner = Counting()
    batching = BatchingReporter(inner, batch_size=10, flush_seconds=60, monotonic=lambda: 0.0)
    record = TaskRunRecord(id="t1", flow_run_id=None, task_key="k", name="n")
    batching.add(record)
    record.state = TaskState.RUNNING
    batching.add(record)
    record.state = TaskState.COMPLETED
    assert inner.sizes == []
    batching.flush()
    assert inner.sizes == [1]
    assert inner.task_runs["t1"].state is TaskState.RUNNING


def test_a_batch_goes_out_when_the_interval_passed() -> None:
    inner = Counting()
    now = [0.0]
    batching = BatchingReporter(inner, batch_size=100, flush_seconds=2, monotonic=lambda: now[0])
    batching.add(TaskRunRecord(id="a", flow_run_id=None, task_key="k", name="a"))
    now[0] = 2.5
    batching.add(TaskRunRecord(id="b", flow_run_id=None, task_key="k", name="b"))
    assert inner.sizes == [2]


def test_local_reporter_is_a_task_run_reporter() -> None:
    assert isinstance(LocalReporter(), TaskRunReporter)


def test_local_slots_block_until_released() -> None:
    reporter = LocalReporter(limits={"db": 1})
    assert reporter.acquire(["db", "free"], "a", timeout=0)
    assert not reporter.acquire(["db"], "b", timeout=0.05)
    releaser = threading.Timer(0.05, reporter.release, (["db"], "a"))
    releaser.start()
    assert reporter.acquire(["db"], "b", timeout=5)
    releaser.join()


def test_local_cache_records_on_disk(tmp_path: Path) -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    LocalReporter(cache_dir=tmp_path).cache_put(CacheRecord("k1", "cache/k1", expires))
    again = LocalReporter(cache_dir=tmp_path)
    assert again.cache_get("k1") == CacheRecord("k1", "cache/k1", expires)
    assert again.cache_get("other") is None


def test_records_serialise_to_json() -> None:
    record = TaskRunRecord(
        id="t",
        flow_run_id="f",
        task_key="m.t",
        name="t",
        state=TaskState.CACHED,
        start_time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    data = record.to_json()
    assert data["state"] == "CACHED"
    assert data["start_time"] == "2026-01-01T00:00:00+00:00"
    assert data["end_time"] is None
