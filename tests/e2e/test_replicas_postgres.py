"""Two and three ``pushpool server start`` replicas on one PostgreSQL database race for
runs all due at once on a pool with a concurrency limit of 10: every run executes
exactly once, the limit holds at every instant (measured by the flows' own start/end
times and by polling the store), nothing deadlocks, no replica logs an error.

The suite races :data:`RUNS` runs (a minute of two CPU cores); the 1,000-run race is
``python -m tests.benchmarks.replicas``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import postgres_url
from support.replicas import race

from service.store.sql import SqlStore

pytestmark = pytest.mark.slow
RUNS = 200
LIMIT = 10


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_execute_each_run_once_within_the_limit(tmp_path: Path, replicas: int) -> None:
    url = postgres_url()
    store = SqlStore(url)
    store.migrate()
    store.close()
    result = race(
        url, tmp_path, replicas=replicas, runs=RUNS, limit=LIMIT, flow_seconds=0.2, timeout=300
    )
    print(result.summary())
    assert result.errors == []
    assert dict(result.states) == {"COMPLETED": RUNS}
    assert result.missing == 0 and result.duplicates == 0
    assert 1 < result.peak_executing <= LIMIT
    assert 1 < result.peak_active <= LIMIT
