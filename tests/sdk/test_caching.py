"""Caching: policies, cache_key_fn, expiry, across flow runs; result persistence."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.sdk import Env

from pushpool import DEFAULT, INPUTS, NONE, TASK_SOURCE, flow, task
from pushpool.cache import CacheContext
from pushpool.context import RunEnvironment, use_environment
from pushpool.errors import CacheKeyError, ResultNotSerializable
from pushpool.records import TaskState
from pushpool.reporting import LocalReporter
from pushpool.results import loads


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: Any = 0) -> Any:
        self.calls += 1
        return {"x": x}


def twice(t: Any, *args: Any) -> None:
    """Run ``t(*args)`` in two separate flow runs."""
    for _ in range(2):
        flow(lambda: t(*args))()


def test_inputs_policy_reads_the_result_in_a_later_run(sdk_env: Env) -> None:
    fn = Counter()
    t = task(name="c", cache_policy=INPUTS)(fn)
    twice(t, 1)
    assert fn.calls == 1
    assert sorted(r.state for r in sdk_env.runs("c")) == [TaskState.CACHED, TaskState.COMPLETED]
    flow(lambda: t(2))()
    assert fn.calls == 2


def test_a_cached_run_returns_the_stored_value(sdk_env: Env) -> None:
    t = task(name="c", cache_policy=INPUTS)(Counter())
    values = [flow(lambda: t(5))() for _ in range(2)]
    assert values == [{"x": 5}, {"x": 5}]


def test_task_source_policy_ignores_inputs_but_not_code(sdk_env: Env) -> None:
    first, second = Counter(), Counter()

    def a(x: int) -> int:
        first.calls += 1
        return x

    def b(x: int) -> int:
        second.calls += 2
        return x

    ta = task(name="a", cache_policy=TASK_SOURCE)(a)
    twice(ta, 1)
    flow(lambda: ta(2))()
    assert first.calls == 1
    tb = task(name="b", cache_policy=TASK_SOURCE)(b)
    flow(lambda: tb(1))()
    assert second.calls == 2  # other source, other key


def test_none_policy_never_caches(sdk_env: Env) -> None:
    fn = Counter()
    twice(task(name="n", cache_policy=NONE)(fn), 1)
    assert fn.calls == 2
    assert sdk_env.store.exists("cache") is False


def test_combined_policies() -> None:
    assert repr(INPUTS + TASK_SOURCE) == "INPUTS + TASK_SOURCE"
    assert repr(DEFAULT) == "INPUTS + TASK_SOURCE"
    assert repr(INPUTS + INPUTS) == "INPUTS"
    assert repr(NONE + INPUTS) == "INPUTS"

    def f(x: int) -> int:
        return x

    ctx = CacheContext("m.f", f, None)
    combined = (INPUTS + TASK_SOURCE).compute_key(ctx, {"x": 1})
    assert combined not in (
        INPUTS.compute_key(ctx, {"x": 1}),
        TASK_SOURCE.compute_key(ctx, {"x": 1}),
    )
    assert combined != (INPUTS + TASK_SOURCE).compute_key(ctx, {"x": 2})
    assert NONE.compute_key(ctx, {"x": 1}) is None


def test_cache_key_fn_takes_precedence(sdk_env: Env) -> None:
    fn = Counter()
    seen: list[Mapping[str, Any]] = []

    def key(context: CacheContext, parameters: Mapping[str, Any]) -> str:
        seen.append(dict(parameters))
        return f"{context.task_key}-fixed"

    t = task(name="k", cache_key_fn=key, cache_policy=NONE)(fn)
    flow(lambda: t(1))()
    flow(lambda: t(2))()
    assert fn.calls == 1
    assert seen == [{"x": 1}, {"x": 2}]


def test_cache_expiration(sdk_env: Env) -> None:
    fn = Counter()
    t = task(name="e", cache_policy=INPUTS, cache_expiration=timedelta(minutes=5))(fn)
    twice(t, 1)
    assert fn.calls == 1
    sdk_env.time.advance(301)
    flow(lambda: t(1))()
    assert fn.calls == 2


def test_cache_survives_processes_through_the_local_cache_directory(
    tmp_path: Path, sdk_env: Env
) -> None:
    fn = Counter()
    t = task(name="d", cache_policy=INPUTS)(fn)
    for _ in range(2):  # a fresh reporter each time, as in two `python my_flow.py`
        env = RunEnvironment(
            reporter=LocalReporter(cache_dir=tmp_path / "cache"), result_store=sdk_env.store
        )
        with use_environment(env):
            flow(lambda: t(1))()
    assert fn.calls == 1


def test_a_result_that_is_not_json_is_not_cached_without_pickle(
    sdk_env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def make_set() -> set[int]:
        calls.append(1)
        return {1}

    t = task(name="s", cache_policy=INPUTS)(make_set)
    twice(t)
    assert len(calls) == 2
    assert "not JSON-serialisable" in caplog.text
    pickled = task(name="p", cache_policy=INPUTS, result_serializer="pickle")(make_set)
    calls.clear()
    assert [flow(lambda: pickled())() for _ in range(2)] == [{1}, {1}]
    assert len(calls) == 1


def test_unhashable_inputs_are_a_clear_error(sdk_env: Env) -> None:
    class Opaque:
        def __reduce__(self) -> Any:
            raise TypeError("cannot pickle Opaque")

    t = task(name="u", cache_policy=INPUTS)(lambda x: 1)
    with pytest.raises(CacheKeyError, match="cannot hash its inputs"):
        flow(lambda: t(Opaque()))()
    assert sdk_env.runs("u")[0].state is TaskState.FAILED


def test_persist_result_writes_json_by_default(sdk_env: Env) -> None:
    t = task(name="r", persist_result=True)(Counter())
    flow(lambda: t(3))()
    (record,) = sdk_env.runs("r")
    assert record.result_key == f"task-runs/{record.id}"
    assert sdk_env.store.read(record.result_key)[:1] == b"J"
    assert loads(sdk_env.store.read(record.result_key)) == {"x": 3}


def test_persist_result_of_a_non_json_value_fails_clearly(sdk_env: Env) -> None:
    t = task(name="r", persist_result=True)(lambda: {1, 2})
    with pytest.raises(ResultNotSerializable, match="result_serializer='pickle'"):
        flow(lambda: t())()
    assert sdk_env.runs("r")[0].state is TaskState.FAILED


def test_no_result_is_written_unless_asked(sdk_env: Env) -> None:
    t = task(name="r")(Counter())
    flow(lambda: t(3))()
    assert sdk_env.runs("r")[0].result_key is None
    assert not (sdk_env.store.root).exists()
