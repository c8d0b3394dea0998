"""Benchmark: what the ``pushpool`` SDK costs a runner.

    python -m tests.benchmarks.sdk [--repeats 15] [--tasks 1000] [--runs 3] [--with-prefect]

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
* The trivial flow (DESIGN's "about 150 ms from a fresh runner to COMPLETED"): ``hello``
  as a plain function in a file that does not import pushpool, and the same function
  with ``@flow``: PENDING->COMPLETED (the runner's spawn to its final report, server
  clock), RUNNING->COMPLETED and create->COMPLETED, side by side with the change.
* Prefect 3 side by side (``--with-prefect``: a throwaway virtualenv at
  ``--prefect-venv``, created once with ``pip install 'prefect==3.*'`` and reused; or
  ``--prefect-python`` / ``$PUSHPOOL_BENCH_PREFECT_PYTHON``: an interpreter that has it;
  never a project dependency, never in tests or CI): a real ``prefect server start`` on
  a free 127.0.0.1 port with its own PREFECT_HOME and SQLite file, the same flows run
  against it (``PREFECT_API_URL``) in the same benchmark run, the server stopped at the
  end. Without one the column is skipped, saying so.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.benchmarks._common import REPO, median, table
from tests.benchmarks._prefect import DEFAULT_VENV as DEFAULT_PREFECT_VENV

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

MODES = ("plain", "sequential", "mapped")
#: The trivial flow (DESIGN: "a fresh runner process takes a trivial flow from start to
#: COMPLETED in about 150 ms"), as a plain function in a file that does not import
#: pushpool (the baseline) and decorated with ``@flow``.
TRIVIAL_PLAIN = """
def hello(name: str = "world") -> str:
    return f"Hello, {name}!"
"""
TRIVIAL_FLOW = """
from pushpool import flow


@flow
def hello(name: str = "world") -> str:
    return f"Hello, {name}!"
"""
TRIVIAL = ("trivial plain", "trivial @flow")


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
    """Median seconds (``running``: RUNNING->COMPLETED, ``started``: PENDING->COMPLETED,
    i.e. from the runner's spawn, ``total``: create->COMPLETED) and requests per run of
    each mode, through a live server and the process pool."""
    from service.settings import Settings
    from tests.support.server import live_server

    counter = RequestCounter()
    results: dict[str, dict[str, list[float]]] = {m: {} for m in (*MODES, *TRIVIAL)}
    with tempfile.TemporaryDirectory(prefix="pushpool-bench-sdk-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "bench_flows.py").write_text(FLOWS)
        (src / "trivial_plain.py").write_text(TRIVIAL_PLAIN)
        (src / "trivial_flow.py").write_text(TRIVIAL_FLOW)
        with live_server(Settings(home=Path(tmp) / "home", heartbeat_seconds=10)) as live:
            access = logging.getLogger("uvicorn.access")
            access.setLevel(logging.INFO)
            access.addHandler(counter)
            deployments = {}
            for mode in MODES:
                entry = f"bench_flows.py:{mode}"
                deployments[mode] = deploy_local(live, src, f"bench-{mode}", entry, takes_n=True)
            for mode, file in zip(TRIVIAL, ("trivial_plain", "trivial_flow"), strict=True):
                deployments[mode] = deploy_local(
                    live, src, f"bench-{file}", f"{file}.py:hello", takes_n=False
                )
            for round_ in range(runs + 1):  # the first round warms up
                for mode, dep in deployments.items():
                    params = {"n": count} if mode in MODES else {}
                    timing = _one_run(live, dep, params, counter)
                    if round_ > 0:
                        for key, value in timing.items():
                            results[mode].setdefault(key, []).append(value)
            access.removeHandler(counter)
    return {m: {k: median(v) for k, v in values.items()} for m, values in results.items()}


def _one_run(
    live: Any, deployment: str, params: dict[str, Any], counter: RequestCounter
) -> dict[str, float]:
    from service.states import StateType

    t0 = time.perf_counter()
    run_id = live.client.post(
        f"/deployments/{deployment}/runs", json={"parameters": params}
    ).json()["id"]
    run = live.services.store.get_run(run_id)
    while run.state.type not in (StateType.COMPLETED, StateType.FAILED):
        time.sleep(0.005)
        run = live.services.store.get_run(run_id)
    total = time.perf_counter() - t0
    assert run.state.type == StateType.COMPLETED, run.state
    _wait_exit(live, run)
    at = {r.type: r.timestamp for r in live.services.store.state_history(run_id)}
    return {
        "running": (at[StateType.COMPLETED] - at[StateType.RUNNING]).total_seconds(),
        "started": (at[StateType.COMPLETED] - at[StateType.PENDING]).total_seconds(),
        "total": total,
        "requests": float(counter.count(run_id)),
    }


def deploy_local(live: Any, src: Path, name: str, entrypoint: str, *, takes_n: bool) -> str:
    """Deploy ``entrypoint`` of the directory ``src`` on the ``local`` pool; its id.
    ``takes_n``: the flow takes an integer parameter ``n``."""
    body: dict[str, Any] = {
        "name": name,
        "flow_name": entrypoint.rpartition(":")[2],
        "entrypoint": entrypoint,
        "work_pool": "local",
        "source": {"type": "local", "path": str(src)},
    }
    if takes_n:
        body["parameter_schema"] = {"type": "object", "properties": {"n": {"type": "integer"}}}
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


def prefect(args: argparse.Namespace) -> dict[str, dict[str, float]] | str:
    """Prefect 3's figures for the same flows, or why there are none."""
    from tests.benchmarks import _prefect

    python = args.prefect_python
    if python is None and args.with_prefect:
        python = _prefect.ensure_venv(Path(args.prefect_venv))
    if not python:
        return "give --with-prefect (or --prefect-python / $PUSHPOOL_BENCH_PREFECT_PYTHON)"
    return _prefect.run(python, args.tasks, args.runs)


def report_e2e(
    count: int,
    runs: int,
    ours: dict[str, dict[str, float]],
    theirs: dict[str, dict[str, float]] | str,
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
            t = theirs[mode]
            their_task = (t["running"] - theirs["plain"]["running"]) / count * 1e6
            row += [
                f"{t['running'] * 1000:.0f}",
                "-" if mode == "plain" else f"{their_task:.0f}",
                f"{t['http']:.0f} + {t['events']:.0f}",
                "-" if mode == "plain" else f"{their_task / max(per_task, 1e-9):.1f}x",
            ]
        rows.append(row)
    headers = ["flow", "running ms", "create->done ms", "us/task", "requests/run"]
    if isinstance(theirs, dict):
        headers += ["Prefect ms", "Prefect us/task", "Prefect HTTP + ws", "Prefect/pushpool"]
    print(table(headers, rows))
    if isinstance(theirs, str):
        print(f"Prefect 3 column skipped: {theirs}")
    else:
        print(
            "Prefect 3: the flow call in a warmed client process against `prefect server "
            "start`; its client's HTTP requests + events sent on its websocket (one message "
            "each), counted in the client after its events worker drained"
        )
    report_trivial(runs, ours)


def report_trivial(runs: int, ours: dict[str, dict[str, float]]) -> None:
    """The trivial flow as a plain function (no pushpool import) and with ``@flow``."""
    print(f"\nTrivial flow (hello), median of {runs} runs, ms")
    keys = (
        ("started", "PENDING->COMPLETED"),
        ("running", "RUNNING->COMPLETED"),
        ("total", "create->COMPLETED"),
    )
    rows = []
    for key, label in keys:
        plain, decorated = ours[TRIVIAL[0]][key], ours[TRIVIAL[1]][key]
        change = (decorated - plain) / plain * 100
        rows.append((label, f"{plain * 1000:.1f}", f"{decorated * 1000:.1f}", f"{change:+.0f}%"))
    print(table(["measure", "plain function", "@flow", "change"], rows))


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
    parser.add_argument(
        "--with-prefect",
        action="store_true",
        help="create (once) a throwaway virtualenv with prefect 3 at --prefect-venv and use it",
    )
    parser.add_argument("--prefect-venv", default=str(DEFAULT_PREFECT_VENV))
    args = parser.parse_args(argv)
    if args.e2e:
        report_e2e(
            args.tasks,
            args.runs,
            e2e(args.tasks, args.runs),
            prefect(args),
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
