"""SDK fixtures: a run environment over a temp result store and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.sdk import Env, Time

from pushpool.context import RunEnvironment, use_environment
from pushpool.reporting import LocalReporter
from pushpool.results import LocalResultStore


@pytest.fixture
def time_() -> Time:
    return Time()


@pytest.fixture
def sdk_env(tmp_path: Path, time_: Time) -> Iterator[Env]:
    reporter = LocalReporter(limits={"db": 1})
    store = LocalResultStore(tmp_path / "results")
    env = RunEnvironment(
        reporter=reporter, result_store=store, flow_run_id="run-1", clock=time_.clock()
    )
    with use_environment(env):
        yield Env(reporter, store, time_, env)
