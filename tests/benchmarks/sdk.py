"""Benchmark: what the ``pushpool`` SDK costs a runner.

    python -m tests.benchmarks.sdk [--repeats 15] [--tasks 1000]

* Start-up: fresh interpreters that import the runner (``runner_image.runner``), with
  and without ``import pushpool``, interleaved; medians of wall time to exit.
  Target (issue 12): the SDK adds at most 30 ms.
* Per-task overhead: a flow of ``--tasks`` trivial tasks called sequentially and with
  ``.map``, against an in-memory reporter (this is the SDK's own cost: the server
  round trip is measured once the runner's reporter is wired); also the number of
  report batches per 1,000 tasks (target <= 20).
* End to end (``--e2e``, on by default): a live server (uvicorn in a thread, SQLite in a
  temporary home) and the local process pool run flows of ``--tasks`` trivial tasks
  (sequential, and with ``.map``) and the same flow calling a plain function instead
  (the baseline): RUNNING->COMPLETED from the run's state history, create->COMPLETED
  from the client, per-task overhead = (tasks - plain) / count, and the requests the
  run made to the server (counted from the server's access log), medians of ``--runs``.
* Prefect 3 side by side (``--prefect-python``, or ``$PUSHPOOL_BENCH_PREFECT_PYTHON``: an
  interpreter of a throwaway virtualenv with ``prefect`` 3 installed; never a project
  dependency): the same flows under Prefect in that interpreter, in the same benchmark
  run. Without one that imports ``prefect`` the column is skipped, saying so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks._common import REPO, clean_env, median, table

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


FLOWS = """
from pushpool import flow, task


def plain_step(i: int) -> int:
    return i


@task
def trivial(i: int) -> int:
    return i


@flow
def plain(n: int) -> int:
    return sum(plain_step(i) for i in range(n))


@flow
def sequential(n: int) -> int:
    return sum(trivial(i) for i in range(n))


@flow
def mapped(n: int) -> int:
    return sum(trivial.map(range(n)).result())
"""

PREFECT_SCRIPT = """
import json, sys, time
from prefect import flow, task

def plain_step(i):
    return i

@task
def trivial(i):
    return i

@flow
def plain(n):
    return sum(plain_step(i) for i in range(n))

@flow
def sequential(n):
    return sum(trivial(i) for i in range(n))

@flow
def mapped(n):
    return sum(f.result() for f in trivial.map(range(n)))

n, runs = int(sys.argv[1]), int(sys.argv[2])
plain(1)  # start the ephemeral API once, outside the measurement
out = {}
for name, fn in (("plain", plain), ("sequential", sequential), ("mapped", mapped)):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert fn(n) == sum(range(n))
        times.append(time.perf_counter() - start)
    out[name] = sorted(times)[len(times) // 2]
print("RESULT " + json.dumps(out))
"""
MODES = ("plain", "sequential", "mapped")


class RequestCounter(logging.Handler):
    """Counts the server's access-log lines per flow run id."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(str(record.args))

    def count(self, run_id: str) -> int:
        return sum(run_id in line for line in self.lines)


def e2e(count: int, runs: int) -> dict[str, dict[str, float]]:
    """Median seconds (``running``: RUNNING->COMPLETED, ``total``: create->COMPLETED) and
    requests per run of each mode, through a live server and the process pool."""
    from service.settings import Settings
    from service.states import StateType
    from tests.support.server import live_server

    counter = RequestCounter()
    results: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    with tempfile.TemporaryDirectory(prefix="pushpool-bench-sdk-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "bench_flows.py").write_text(FLOWS)
        with live_server(Settings(home=Path(tmp) / "home", heartbeat_seconds=10)) as live:
            access = logging.getLogger("uvicorn.access")
            access.setLevel(logging.INFO)
            access.addHandler(counter)
            deployments = {mode: _deploy(live, src, mode) for mode in MODES}
            for round_ in range(runs + 1):  # the first round warms up
                for mode, dep in deployments.items():
                    t0 = time.perf_counter()
                    run_id = live.client.post(
                        f"/deployments/{dep}/runs", json={"parameters": {"n": count}}
                    ).json()["id"]
                    run = live.services.store.get_run(run_id)
                    while run.state.type not in (StateType.COMPLETED, StateType.FAILED):
                        time.sleep(0.005)
                        run = live.services.store.get_run(run_id)
                    total = time.perf_counter() - t0
                    assert run.state.type == StateType.COMPLETED, run.state
                    _wait_exit(live, run)
                    if round_ == 0:
                        continue
                    at = {r.type: r.timestamp for r in live.services.store.state_history(run_id)}
                    running = (at[StateType.COMPLETED] - at[StateType.RUNNING]).total_seconds()
                    for key, value in (
                        ("running", running),
                        ("total", total),
                        ("requests", float(counter.count(run_id))),
                    ):
                        results[mode].setdefault(key, []).append(value)
            access.removeHandler(counter)
    return {m: {k: median(v) for k, v in values.items()} for m, values in results.items()}


def _deploy(live: Any, src: Path, mode: str) -> str:
    body = {
        "name": f"bench-{mode}",
        "flow_name": mode,
        "entrypoint": f"bench_flows.py:{mode}",
        "work_pool": "local",
        "source": {"type": "local", "path": str(src)},
        "parameter_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    r = live.client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _wait_exit(live: Any, run: Any) -> None:
    if run.infra is None:
        return
    provisioner = live.services.dispatcher.provisioner(run.work_pool)
    deadline = time.monotonic() + 30
    while not provisioner.status(run.infra).finished and time.monotonic() < deadline:
        time.sleep(0.01)


def prefect(python: str | None, count: int, runs: int) -> dict[str, float] | str:
    """Median seconds per mode under Prefect 3 in ``python``, or why there are none."""
    if not python:
        return "no --prefect-python (or $PUSHPOOL_BENCH_PREFECT_PYTHON) given"
    probe = subprocess.run(
        [python, "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or not probe.stdout.startswith("3."):
        return f"{python} cannot import prefect 3 ({(probe.stderr or probe.stdout).strip()[-200:]})"
    with tempfile.TemporaryDirectory(prefix="pushpool-bench-prefect-") as tmp:
        env = clean_env() | {
            "PREFECT_HOME": tmp,
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # its ephemeral API server needs longer than the default on a loaded machine
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        }
        done = subprocess.run(
            [python, "-c", PREFECT_SCRIPT, str(count), str(runs)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        return f"the Prefect run failed: {done.stderr.strip()[-300:]}"
    found: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    print(f"Prefect {probe.stdout.strip()} from {python}")
    return found


def report_e2e(
    count: int, runs: int, ours: dict[str, dict[str, float]], theirs: dict[str, float] | str
) -> None:
    print(
        f"\nEnd to end, {count} trivial tasks, local server + process pool, median of {runs} "
        "runs (RUNNING->COMPLETED; per-task overhead against the plain-function flow)"
    )
    base = ours["plain"]["running"]
    rows = []
    for mode in MODES:
        m = ours[mode]
        per_task = (m["running"] - base) / count * 1e6
        row: list[object] = [
            mode,
            f"{m['running'] * 1000:.0f}",
            f"{m['total'] * 1000:.0f}",
            "-" if mode == "plain" else f"{per_task:.0f}",
            f"{m['requests']:.0f}",
        ]
        if isinstance(theirs, dict):
            their_task = (theirs[mode] - theirs["plain"]) / count * 1e6
            row += [
                f"{theirs[mode] * 1000:.0f}",
                "-" if mode == "plain" else f"{their_task:.0f}",
                "-" if mode == "plain" else f"{their_task / max(per_task, 1e-9):.0f}x",
            ]
        rows.append(row)
    headers = ["flow", "running ms", "create->done ms", "us/task", "requests/run"]
    if isinstance(theirs, dict):
        headers += ["Prefect ms", "Prefect us/task", "Prefect/pushpool"]
    print(table(headers, rows))
    if isinstance(theirs, str):
        print(f"Prefect 3 column skipped: {theirs}")
    else:
        print("Prefect 3: the flow call in-process (ephemeral API started before timing)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="end-to-end runs per flow")
    parser.add_argument("--no-e2e", dest="e2e", action="store_false")
    parser.add_argument(
        "--prefect-python",
        default=os.environ.get("PUSHPOOL_BENCH_PREFECT_PYTHON"),
        help="python of a throwaway virtualenv with prefect 3 (the side-by-side column)",
    )
    args = parser.parse_args(argv)
    if args.e2e:
        report_e2e(
            args.tasks,
            args.runs,
            e2e(args.tasks, args.runs),
            prefect(args.prefect_python, args.tasks, args.runs),
        )
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
