"""The ETL example runs from plain Python, and a second run reads its transforms from cache."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from support.sdk import Env

from pushpool.records import TaskState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "etl.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("etl_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_etl_retries_maps_and_caches(sdk_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    etl = load_example()
    failures = iter([0.0, 1.0])  # extract fails once, then succeeds
    monkeypatch.setattr(etl.random, "random", lambda: next(failures, 1.0))
    assert etl.etl("2026-02-01", "3", 0.5) == 3
    extract = sdk_env.runs("extract")[0]
    assert (extract.state, extract.attempts) == (TaskState.COMPLETED, 2)
    assert [r.state for r in sdk_env.runs("transform")] == [TaskState.COMPLETED] * 3
    transform_ids = {r.id for r in sdk_env.runs("transform")}
    assert set(sdk_env.runs("load")[0].upstream) == transform_ids
    assert {tuple(r.upstream) for r in sdk_env.runs("transform")} == {(extract.id,)}
    sdk_env.reporter.task_runs.clear()
    etl.etl("2026-02-01", 3, 0.0)
    assert [r.state for r in sdk_env.runs("transform")] == [TaskState.CACHED] * 3
    cached_ids = {r.id for r in sdk_env.runs("transform")}
    assert set(sdk_env.runs("load")[0].upstream) == cached_ids


@pytest.mark.slow
def test_etl_runs_as_a_script(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PUSHPOOL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "5"
    assert list((tmp_path / "results" / "cache").iterdir())
