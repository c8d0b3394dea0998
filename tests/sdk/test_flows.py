"""@flow options: local calls, parameters, retries, timeouts, log_prints, results."""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pydantic
import pytest
from support.sdk import Env

from pushpool import flow, task
from pushpool.errors import FlowTimeoutError, ParameterError
from pushpool.results import loads


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Window(pydantic.BaseModel):
    start: date
    days: int = 1


def test_a_flow_called_outside_a_run_runs_with_its_tasks_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path))

    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def pipeline(n: int) -> list[int]:
        return [double(i) for i in range(n)]

    assert pipeline(3) == [0, 2, 4]


def test_name_defaults_to_the_function_and_can_be_set() -> None:
    def etl() -> None: ...

    assert flow(etl).name == "etl"
    assert flow(name="nightly")(etl).name == "nightly"


def test_parameters_arrive_as_their_annotated_types(sdk_env: Env) -> None:
    seen: dict[str, object] = {}

    @flow
    def typed(
        day: date,
        when: datetime,
        color: Color,
        path: Path,
        mode: Literal["a", "b"],
        maybe: int | None,
        nums: list[int],
        point: Point,
        window: Window,
    ) -> None:
        seen.update(locals())

    typed(
        "2024-02-03",
        "2024-02-03T04:05:06+00:00",
        "red",
        "/tmp/x",
        "b",
        None,
        ["1", 2],
        {"x": 1, "y": "2"},
        {"start": "2024-01-01"},
    )
    assert seen["day"] == date(2024, 2, 3)
    assert isinstance(seen["when"], datetime)
    assert seen["color"] is Color.RED
    assert seen["path"] == Path("/tmp/x")
    assert seen["nums"] == [1, 2]
    assert seen["point"] == Point(1, 2)
    assert seen["window"] == Window(start=date(2024, 1, 1))


def test_a_value_that_does_not_fit_is_a_clear_parameter_error(sdk_env: Env) -> None:
    @flow
    def typed(n: int, mode: Literal["a", "b"] = "a") -> None: ...

    with pytest.raises(ParameterError, match=r"flow 'typed': invalid parameters: n:"):
        typed("notanint")
    with pytest.raises(ParameterError, match="mode"):
        typed(1, mode="c")
    with pytest.raises(ParameterError, match="unexpected keyword"):
        typed(1, other=2)  # type: ignore[call-arg]


def test_values_already_of_their_scalar_type_skip_pydantic() -> None:
    """A trivial flow's run must not pay for importing pydantic and building a model:
    values that already are their annotated str/int/float/bool pass as they are;
    anything else still goes through pydantic (converted, or a ParameterError)."""
    import subprocess
    import sys

    code = """
import sys
from pushpool import flow

@flow
def hello(name: str = "world", n: int = 1, x: float = 0.5, on: bool = True, raw=None) -> str:
    return f"{name} {n} {x} {on} {raw}"

assert hello("Ada", 2, 1.5, False, raw=[1]) == "Ada 2 1.5 False [1]"
assert hello() == "world 1 0.5 True None"
print("pydantic" in sys.modules)
assert hello(n="3") == "world 3 0.5 True None"  # converted: pydantic now
print("pydantic" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_a_bool_for_an_int_still_goes_through_pydantic(sdk_env: Env) -> None:
    @flow
    def count(n: int, x: float) -> tuple[object, object]:
        return n, x

    assert count(True, 1) == (1, 1.0)  # pydantic's conversions, not the fast path
    assert type(count(True, 1)[1]) is float


def test_validate_parameters_false_passes_values_unchanged(sdk_env: Env) -> None:
    @flow(validate_parameters=False)
    def raw(n: int) -> object:
        return n

    assert raw("7") == "7"  # type: ignore[arg-type]


def test_flow_retries_wait_the_delays_and_rerun(sdk_env: Env) -> None:
    attempts = []

    @flow(retries=2, retry_delay_seconds=[1, 5])
    def shaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return "ok"

    assert shaky() == "ok"
    assert sdk_env.time.slept == [1.0, 5.0]


def test_flow_retries_are_left_to_the_control_plane_when_it_says_so(sdk_env: Env) -> None:
    sdk_env.env.flow_retries_in_process = False
    attempts = []

    @flow(retries=3)
    def shaky() -> None:
        attempts.append(1)
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        shaky()
    assert len(attempts) == 1


def test_flow_timeout_fails_the_flow(sdk_env: Env) -> None:
    @flow(timeout_seconds=0.2)
    def slow() -> None:
        time.sleep(2)

    with pytest.raises(FlowTimeoutError, match=r"timed out after 0\.2 seconds"):
        slow()


def test_async_flow_timeout_and_result(sdk_env: Env) -> None:
    import asyncio

    @flow(timeout_seconds=0.2)
    async def slow(wait: float) -> float:
        await asyncio.sleep(wait)
        return wait

    assert asyncio.run(slow(0)) == 0
    with pytest.raises(FlowTimeoutError):
        asyncio.run(slow(2))


def test_log_prints_sends_print_to_the_run_logger(
    sdk_env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    @flow(log_prints=True)
    def chatty() -> None:
        print("hello", "world")

    @flow
    def quiet() -> None:
        print("not logged")

    with caplog.at_level(logging.INFO, logger="pushpool"):
        chatty()
        quiet()
    messages = [(r.getMessage(), getattr(r, "flow_run_id", None)) for r in caplog.records]
    assert messages == [("hello world", "run-1")]


def test_persist_result_writes_the_flow_result(sdk_env: Env) -> None:
    @flow(persist_result=True)
    def answer() -> dict[str, int]:
        return {"a": 1}

    answer()
    assert loads(sdk_env.store.read("flow-runs/run-1/result")) == {"a": 1}


def test_bad_options_are_rejected() -> None:
    def f() -> None: ...

    with pytest.raises(ValueError, match="retries"):
        flow(retries=-1)(f)
    with pytest.raises(ValueError, match="timeout_seconds"):
        flow(timeout_seconds=0)(f)
    with pytest.raises(ValueError, match="retry_delay_seconds"):
        flow(retry_delay_seconds=[-1])(f)
    with pytest.raises(TypeError, match="needs a function"):
        flow(3)  # type: ignore[call-overload]
