"""Benchmark: what the ``pushpool`` SDK costs a runner.

    python -m tests.benchmarks.sdk [--repeats 15] [--tasks 1000]

* Start-up: fresh interpreters that import the runner (``runner_image.runner``), with
  and without ``import pushpool``, interleaved; medians of wall time to exit.
  Target (issue 12): the SDK adds at most 30 ms.
* Per-task overhead: a flow of ``--tasks`` trivial tasks called sequentially and with
  ``.map``, against an in-memory reporter (this is the SDK's own cost: the server
  round trip is measured once the runner's reporter is wired); also the number of
  report batches per 1,000 tasks (target <= 20).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.benchmarks._common import REPO, median, table

BASE = "import runner_image.runner"
WITH_SDK = "import runner_image.runner, pushpool"


def start_times(repeats: int) -> dict[str, list[float]]:
    """Wall seconds of fresh interpreters running each import line, interleaved."""
    cases = {"runner": BASE, "runner + pushpool": WITH_SDK}
    times: dict[str, list[float]] = {name: [] for name in cases}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for code in cases.values():  # warm the bytecode caches once
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env)
    for _ in range(repeats):
        for name, code in cases.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env)
            times[name].append(time.perf_counter() - start)
    return times


def task_overhead(count: int) -> list[tuple[str, float, int]]:
    """(mode, microseconds per task, report batches per 1,000 tasks) for each mode."""
    from pushpool import flow, task
    from pushpool.context import RunEnvironment, use_environment
    from pushpool.reporting import LocalReporter
    from pushpool.results import LocalResultStore

    @task
    def trivial(i: int) -> int:
        return i

    def sequential() -> None:
        for i in range(count):
            trivial(i)

    def mapped() -> None:
        trivial.map(range(count)).wait()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, body in (("sequential", sequential), (".map", mapped)):
            reporter = LocalReporter()
            env = RunEnvironment(reporter=reporter, result_store=LocalResultStore(Path(tmp)))
            with use_environment(env):
                start = time.perf_counter()
                flow(name=mode)(body)()
                elapsed = time.perf_counter() - start
            rows.append((mode, elapsed / count * 1e6, round(reporter.batches * 1000 / count)))
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args(argv)
    times = start_times(args.repeats)
    base = median(times["runner"])
    rows = [(name, f"{median(v) * 1000:.1f}") for name, v in times.items()]
    print(f"Runner start-up, median of {args.repeats} fresh interpreters (ms)")
    print(table(["case", "ms"], rows))
    extra = (median(times["runner + pushpool"]) - base) * 1000
    print(f"pushpool adds {extra:.1f} ms (target <= 30 ms)\n")
    print(f"Per-task overhead, {args.tasks} trivial tasks, in-memory reporter")
    overhead = [(m, f"{us:.0f}", b) for m, us, b in task_overhead(args.tasks)]
    print(table(["mode", "us/task", "batches/1000 tasks"], overhead))


if __name__ == "__main__":
    main()
