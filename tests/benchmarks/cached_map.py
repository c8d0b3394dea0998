"""Benchmark: does the runner's rate limit throttle a large cached ``.map``?

    python -m tests.benchmarks.cached_map [--tasks 10000]

A live server (uvicorn in a thread, SQLite in a temporary home) and the local process
pool run one flow: ``.map`` over ``--tasks`` trivial tasks with ``cache_policy=INPUTS``
(each task asks the server for its cache record, and a miss stores one: one or two
runner requests per task). Two runs in a row: the first fills the cache (misses), the
second reads it (hits). Each pair runs once with the runner rate limit as configured
(``--rate``/``--burst``, default the service's defaults) and once with it off; the
figures are RUNNING->COMPLETED (server clock), the runner's requests and how many were
answered 429, and the tasks' final states.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.benchmarks._common import load_note, table
from tests.benchmarks.sdk import deploy_local

FLOW = """
from pushpool import INPUTS, flow, task


@task(cache_policy=INPUTS)
def trivial(i: int) -> int:
    return i


@flow
def cached(n: int) -> int:
    return sum(trivial.map(range(n)).result())
"""


class AccessLog(logging.Handler):
    """(path, status) of every request the server logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 5:
            self.lines.append((str(args[2]), int(args[4])))


def measure(tasks: int, rate: float, burst: int) -> list[dict[str, Any]]:
    """The two runs (cache filled, cache read) of the cached flow at this rate limit."""
    from service.settings import Settings
    from tests.support.server import live_server

    log = AccessLog()
    rows = []
    with tempfile.TemporaryDirectory(prefix="pushpool-bench-cached-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "cached_flow.py").write_text(FLOW)
        settings = Settings(
            home=Path(tmp) / "home",
            heartbeat_seconds=10,
            runner_rate_limit_per_second=rate,
            runner_rate_limit_burst=burst,
        )
        with live_server(settings) as live:
            access = logging.getLogger("uvicorn.access")
            access.setLevel(logging.INFO)
            access.addHandler(log)
            try:
                dep = deploy_local(live, src, "bench-cached", "cached_flow.py:cached", takes_n=True)
                for label in ("fill (misses)", "read (hits)"):
                    rows.append(_run(live, dep, tasks, log) | {"run": label})
            finally:
                access.removeHandler(log)
    return rows


def _run(live: Any, dep: str, tasks: int, log: AccessLog) -> dict[str, Any]:
    from service.states import StateType

    first = len(log.lines)
    run_id = live.client.post(f"/deployments/{dep}/runs", json={"parameters": {"n": tasks}}).json()[
        "id"
    ]
    deadline = time.monotonic() + 1800
    run = live.services.store.get_run(run_id)
    while run.state.type not in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED):
        assert time.monotonic() < deadline, "the cached flow did not finish in 30 min"
        time.sleep(0.05)
        run = live.services.store.get_run(run_id)
    time.sleep(0.5)  # the last access-log lines
    at = {r.type: r.timestamp for r in live.services.store.state_history(run_id)}
    running = (at[run.state.type] - at[StateType.RUNNING]).total_seconds()
    mine = [(path, status) for path, status in log.lines[first:] if run_id in path]
    states = Counter(tr.state for tr in live.services.store.list_task_runs(run_id))
    return {
        "state": run.state.type.value,
        "seconds": running,
        "requests": len(mine),
        "cache requests": sum("/cache/" in path for path, _ in mine),
        "429": sum(status == 429 for _, status in mine),
        "task states": ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=None, help="runner requests/s (default)")
    parser.add_argument("--burst", type=int, default=None, help="runner burst (default)")
    parser.add_argument(
        "--skip-off", action="store_true", help="only the configured limit (no run with it off)"
    )
    args = parser.parse_args()
    from service.settings import Settings

    defaults = Settings()
    rate = defaults.runner_rate_limit_per_second if args.rate is None else args.rate
    burst = defaults.runner_rate_limit_burst if args.burst is None else args.burst
    print(f"Cached .map of {args.tasks} tasks; {load_note()}")
    rows = []
    cases = [(f"{rate:g}/s, burst {burst}", rate, burst), ("off", 0.0, burst)]
    for label, r, b in cases[:1] if args.skip_off else cases:
        for row in measure(args.tasks, r, b):
            rows.append(
                [
                    label,
                    row["run"],
                    row["state"],
                    f"{row['seconds']:.1f}",
                    row["requests"],
                    row["cache requests"],
                    row["429"],
                    row["task states"],
                ]
            )
    headers = ["rate limit", "run", "state", "s", "requests", "cache req", "429", "tasks"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
