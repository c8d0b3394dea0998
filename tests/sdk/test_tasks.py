"""@task options: calls, retries, timeouts, futures, map, task runners, tags, logs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
from support.sdk import Env

from pushpool import (
    ThreadPoolTaskRunner,
    as_completed,
    exponential_backoff,
    flow,
    get_run_logger,
    task,
    unmapped,
    wait,
)
from pushpool.errors import TaskTimeoutError
from pushpool.records import TaskRunRecord, TaskState


class Flaky:
    """Fails the first ``failures`` calls with ``error``, then returns the call count."""

    def __init__(self, failures: int, error: type[Exception] = ValueError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls


def run_in_flow(fn: Any) -> Any:
    return flow(fn)()


def test_a_task_call_records_a_completed_run(sdk_env: Env) -> None:
    @task(name="add-one")
    def add(x: int) -> int:
        return x + 1

    assert run_in_flow(lambda: add(1)) == 2
    (record,) = sdk_env.runs("add-one")
    assert record.state is TaskState.COMPLETED
    assert record.attempts == 1
    assert record.flow_run_id == "run-1"
    assert record.start_time is not None and record.end_time is not None


def test_a_task_called_outside_a_flow_still_runs(sdk_env: Env) -> None:
    @task
    def add(x: int) -> int:
        return x + 1

    assert add(1) == 2
    assert sdk_env.runs("add")[0].state is TaskState.COMPLETED


def test_retries_with_a_fixed_delay(sdk_env: Env) -> None:
    flaky = Flaky(2)
    t = task(name="flaky", retries=2, retry_delay_seconds=3)(flaky)
    assert run_in_flow(lambda: t()) == 3
    (record,) = sdk_env.runs("flaky")
    assert (record.state, record.attempts) == (TaskState.COMPLETED, 3)
    assert sdk_env.time.slept == [3.0, 3.0]


def test_retries_with_a_list_of_delays_repeat_the_last(sdk_env: Env) -> None:
    t = task(name="flaky", retries=3, retry_delay_seconds=[1, 4])(Flaky(3))
    run_in_flow(lambda: t())
    assert sdk_env.time.slept == [1.0, 4.0, 4.0]


def test_retries_with_exponential_backoff(sdk_env: Env) -> None:
    assert exponential_backoff(2, retries=3) == [2, 4, 8]
    t = task(name="flaky", retries=3, retry_delay_seconds=exponential_backoff(2))(Flaky(3))
    run_in_flow(lambda: t())
    assert sdk_env.time.slept == [2.0, 4.0, 8.0]


def test_retries_exhausted_fail_the_run_with_the_last_error(sdk_env: Env) -> None:
    t = task(name="flaky", retries=1)(Flaky(5))
    with pytest.raises(ValueError, match="failure 2"):
        run_in_flow(lambda: t())
    (record,) = sdk_env.runs("flaky")
    assert (record.state, record.attempts) == (TaskState.FAILED, 2)
    assert record.error is not None and record.error["message"] == "failure 2"


def test_retry_condition_fn_decides_whether_to_retry(sdk_env: Env) -> None:
    seen: list[tuple[str, int]] = []

    def only_value_errors(t: Any, record: TaskRunRecord, exc: BaseException) -> bool:
        seen.append((record.name, record.attempts))
        return isinstance(exc, ValueError)

    retried = task(name="a", retries=3, retry_condition_fn=only_value_errors)(Flaky(1))
    assert run_in_flow(lambda: retried()) == 2
    stopped = task(name="b", retries=3, retry_condition_fn=only_value_errors)(Flaky(1, KeyError))
    with pytest.raises(KeyError):
        run_in_flow(lambda: stopped())
    assert seen == [("a", 1), ("b", 1)]
    assert sdk_env.runs("b")[0].attempts == 1


def test_every_transition_is_reported_when_batches_hold_one_run(sdk_env: Env) -> None:
    states: list[TaskState] = []
    original = sdk_env.reporter.report

    def spy(batch: Any) -> None:
        states.extend(r.state for r in batch)
        original(batch)

    sdk_env.reporter.report = spy  # type: ignore[method-assign]
    sdk_env.env.report_batch_size = 1
    t = task(name="flaky", retries=1)(Flaky(1))
    run_in_flow(lambda: t())
    assert states == [
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.RETRYING,
        TaskState.RUNNING,
        TaskState.COMPLETED,
    ]


def test_sync_task_timeout_fails_the_attempt_and_may_retry(sdk_env: Env) -> None:
    calls = []

    @task(timeout_seconds=0.2, retries=1)
    def slow() -> str:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1)
        return "second"

    assert run_in_flow(lambda: slow()) == "second"
    (record,) = sdk_env.runs("slow")
    assert record.attempts == 2

    @task(timeout_seconds=0.2)
    def slower() -> None:
        time.sleep(1)

    with pytest.raises(TaskTimeoutError, match="timed out"):
        run_in_flow(lambda: slower())
    assert sdk_env.runs("slower")[0].state is TaskState.FAILED


def test_async_task_timeout(sdk_env: Env) -> None:
    @task(timeout_seconds=0.1)
    async def slow() -> None:
        await asyncio.sleep(1)

    @flow
    async def f() -> None:
        await slow()

    with pytest.raises(TaskTimeoutError):
        asyncio.run(f())
    assert sdk_env.runs("slow")[0].state is TaskState.FAILED


def test_submit_runs_sync_tasks_on_the_thread_pool_and_async_ones_on_a_loop(
    sdk_env: Env,
) -> None:
    @task
    def where() -> str:
        return threading.current_thread().name

    @task
    async def where_async() -> str:
        asyncio.get_running_loop()
        return threading.current_thread().name

    @flow
    def f() -> tuple[str, str]:
        a, b = where.submit(), where_async.submit()
        return a.result(), b.result()

    sync_thread, async_thread = f()
    assert sync_thread.startswith("pushpool-task")
    assert async_thread == "pushpool-loop"


def test_futures_as_inputs_are_resolved_and_recorded_upstream(sdk_env: Env) -> None:
    @task
    def one() -> int:
        return 1

    @task
    def add(a: int, b: int) -> int:
        return a + b

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    @flow
    def f() -> int:
        a = one.submit()
        b = add.submit(a, 2)
        return total([a, b])

    assert f() == 4
    ids = {r.name: r.id for r in sdk_env.runs()}
    records = {r.name: r for r in sdk_env.runs()}
    assert records["add"].upstream == [ids["one"]]
    assert sorted(records["total"].upstream) == sorted([ids["one"], ids["add"]])


def test_a_returned_object_passed_on_is_recorded_upstream(sdk_env: Env) -> None:
    @task
    def rows() -> list[int]:
        return [1, 2]

    @task
    def count(values: list[int]) -> int:
        return len(values)

    assert run_in_flow(lambda: count(rows())) == 2
    ids = {r.name: r.id for r in sdk_env.runs()}
    assert sdk_env.runs("count")[0].upstream == [ids["rows"]]


def test_map_fans_out_with_unmapped_and_keyword_iterables(sdk_env: Env) -> None:
    @task
    def scale(x: int, factor: int, offset: list[int]) -> int:
        return x * factor + len(offset)

    @flow
    def f() -> list[int]:
        return scale.map([1, 2, 3], factor=10, offset=unmapped([0, 0])).result()

    assert f() == [12, 22, 32]
    assert [r.name for r in sdk_env.runs("scale")] == ["scale[0]", "scale[1]", "scale[2]"]
    assert [r.map_index for r in sdk_env.runs("scale")] == [0, 1, 2]


def test_map_rejects_iterables_of_different_lengths(sdk_env: Env) -> None:
    @task
    def add(a: int, b: int) -> int:
        return a + b

    with pytest.raises(ValueError, match="different lengths"):
        run_in_flow(lambda: add.map([1, 2], [1]))
    with pytest.raises(ValueError, match="at least one iterable"):
        run_in_flow(lambda: add.map(1, 2))


def test_wait_and_as_completed(sdk_env: Env) -> None:
    @task
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @flow
    def f() -> tuple[list[float], int, int]:
        futures = nap.map([0.3, 0.0])
        order = [fut.result() for fut in as_completed(futures)]
        done, not_done = wait(futures)
        return order, len(done), len(not_done)

    assert f() == ([0.0, 0.3], 2, 0)


def test_submit_outside_a_flow_is_a_clear_error() -> None:
    @task
    def t() -> None: ...

    with pytest.raises(RuntimeError, match=r"inside a @flow"):
        t.submit()


def _peak_concurrency(sdk_env: Env, runner: ThreadPoolTaskRunner | None, tags: list[str]) -> int:
    lock = threading.Lock()
    active = [0]
    peak = [0]

    @task(tags=tags)
    def busy(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return i

    @flow(task_runner=runner)
    def f() -> None:
        busy.map(range(8)).wait()

    f()
    return peak[0]


def test_task_runner_max_workers_bounds_parallelism(sdk_env: Env) -> None:
    assert _peak_concurrency(sdk_env, ThreadPoolTaskRunner(max_workers=2), []) == 2
    assert _peak_concurrency(sdk_env, ThreadPoolTaskRunner(max_workers=8), []) > 2


def test_a_tag_with_a_limit_takes_a_slot(sdk_env: Env) -> None:
    # the fixture's reporter limits tag "db" to one slot
    assert _peak_concurrency(sdk_env, ThreadPoolTaskRunner(max_workers=8), ["db"]) == 1


def test_async_submit_is_bounded_by_max_workers(sdk_env: Env) -> None:
    active = [0]
    peak = [0]

    @task
    async def busy(i: int) -> int:
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(0.02)
        active[0] -= 1
        return i

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def f() -> list[int]:
        return busy.map(range(9)).result()

    assert f() == list(range(9))
    assert peak[0] == 3


def test_logs_inside_a_task_name_the_task_run(
    sdk_env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    @task
    def noisy() -> None:
        get_run_logger().info("from the task")

    @flow
    def f() -> None:
        get_run_logger().info("from the flow")
        noisy.submit().wait()

    with caplog.at_level(logging.INFO, logger="pushpool"):
        f()
    by_message = {r.getMessage(): r for r in caplog.records}
    task_id = sdk_env.runs("noisy")[0].id
    assert by_message["from the task"].task_run_id == task_id  # type: ignore[attr-defined]
    assert by_message["from the flow"].task_run_id is None  # type: ignore[attr-defined]
    assert by_message["from the flow"].flow_run_id == "run-1"  # type: ignore[attr-defined]


def test_with_options_copies_and_rejects_unknown_options() -> None:
    @task(retries=1)
    def t() -> None: ...

    assert t.with_options(retries=4).retries == 4
    assert t.retries == 1
    with pytest.raises(TypeError, match="unknown task options"):
        t.with_options(retry=3)


def test_bad_task_options_are_rejected() -> None:
    def f() -> None: ...

    with pytest.raises(ValueError, match="retries"):
        task(retries=-1)(f)
    with pytest.raises(ValueError, match="timeout_seconds"):
        task(timeout_seconds=-1)(f)
    with pytest.raises(ValueError, match="result_serializer"):
        task(result_serializer="yaml")(f)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="cache_policy"):
        task(cache_policy="inputs")(f)  # type: ignore[call-overload]
