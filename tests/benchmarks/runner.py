"""Benchmark: from "create a run" to COMPLETED on the local process pool, and runner start-up.

    python -m tests.benchmarks.runner [--runs 10] [--warmup 1] [--startup-runs 10]

End to end: a live server (uvicorn in a thread of this process, like the e2e tests'
``live_server``; SQLite store in a temporary home; scheduler off) with
``examples/hello.py:hello`` deployed on the ``local`` process pool. Each measured run:
``POST /api/deployments/{id}/runs`` (which pushes the run: the request spawns ``python -m
runner_image``), then the run is polled every 5 ms - straight from the store, so polling
does not load the server the runner talks to - until it is terminal, then the process
until it has exited. Runs go one at a time; warm-up runs are excluded. The phases come from
the run's state history (server clock): SCHEDULED->PENDING is the request's own
dispatch, PENDING->RUNNING is interpreter start + runner imports + spec fetch + loading the
flow, RUNNING->COMPLETED is the flow itself plus the final log flush and report.

Start-up alone: ``python -X importtime -c "import runner_image.runner"`` (summed "self"
times), and the wall time of ``python -c "import runner_image.runner"`` against
``python -c pass`` (median of ``--startup-runs`` after one warm-up each).

Bytecode: if PYTHONDONTWRITEBYTECODE is set (it is in this repo's dev environment and in
runner_image/Dockerfile) and no .pyc exists for runner_image, every runner start compiles
its modules from source. Both cases are measured: "as is" (the environment inherited) and
"cached" (PYTHONPYCACHEPREFIX pointing at a temporary directory a warm-up run filled).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from service.settings import Settings
from service.states import StateType
from tests.support.server import LiveServer, live_server

from ._common import EXAMPLES, REPO, clean_env, load_note, median, ms, parallel_slowdown, table

POLL = 0.005
TERMINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}


@dataclass
class RunTiming:
    post: float  # the create request, client side (includes the spawn)
    done: float  # create -> terminal state observed
    exited: float  # create -> runner process gone
    state: str
    phases: dict[str, float] = field(default_factory=dict)  # from the state history


def deploy(live: LiveServer, name: str, env: dict[str, str]) -> str:
    body = {
        "name": name,
        "flow_name": "hello",
        "entrypoint": "hello.py:hello",
        "work_pool": "local",
        "source": {"type": "local", "path": str(EXAMPLES)},
        "job_variables": {"env": env},
    }
    r = live.client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def one_run(live: LiveServer, deployment_id: str, timeout: float) -> RunTiming:
    store = live.services.store
    t0 = time.perf_counter()
    r = live.client.post(f"/deployments/{deployment_id}/runs", json={})
    post = time.perf_counter() - t0
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    deadline = t0 + timeout
    run = store.get_run(run_id)
    while run.state.type not in TERMINAL:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"run {run_id} still {run.state.type} after {timeout}s")
        time.sleep(POLL)
        run = store.get_run(run_id)
    done = time.perf_counter() - t0
    exited = done
    if run.infra is not None:
        provisioner = live.services.dispatcher.provisioner(run.work_pool)
        while not provisioner.status(run.infra).finished:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the runner of {run_id} did not exit in {timeout}s")
            time.sleep(POLL)
        exited = time.perf_counter() - t0
    at: dict[str, datetime] = {}
    for rec in store.state_history(run_id):
        at.setdefault(rec.type.value, rec.timestamp)
    phases = {}
    for a, b in (("SCHEDULED", "PENDING"), ("PENDING", "RUNNING"), ("RUNNING", "COMPLETED")):
        if a in at and b in at:
            phases[f"{a}->{b}"] = (at[b] - at[a]).total_seconds()
    if run.state.type != StateType.COMPLETED and run.infra is not None:
        log = Path(run.infra.data["dir"]) / "output.log"
        if log.exists():
            print(log.read_text()[-2000:], file=sys.stderr)
    return RunTiming(post, done, exited, run.state.type.value, phases)


# -- start-up alone ------------------------------------------------------------------------
def _wall(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, timeout=60)
    return time.perf_counter() - t0


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


@dataclass
class Import:
    name: str
    depth: int
    cumulative: float  # seconds
    parent: str  # the top-level import it happened under


def importtime(code: str, env: dict[str, str]) -> tuple[float, list[Import]]:
    """Summed self time of every import (seconds), and the imports of depth 0 and 1."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stderr
    total, found = 0, []
    pending: list[Import] = []  # children print before their parent
    for line in out.splitlines():
        m = _IMPORT_LINE.match(line)
        if not m:
            continue
        total += int(m[1])
        depth = (len(m[3]) - 1) // 2
        if depth == 1:
            pending.append(Import(m[4], 1, int(m[2]) / 1e6, ""))
        elif depth == 0:
            for imp in pending:
                imp.parent = m[4]
            found += [*pending, Import(m[4], 0, int(m[2]) / 1e6, "")]
            pending = []
    return total / 1e6, found


def _top(imports: list[Import], parent: str | None, n: int = 8) -> str:
    chosen = [
        i
        for i in imports
        if (i.depth == 0 if parent is None else (i.depth == 1 and i.parent == parent))
    ]
    chosen.sort(key=lambda i: -i.cumulative)
    return ", ".join(f"{i.name} {i.cumulative * 1000:.1f}" for i in chosen[:n])


def startup(envs: dict[str, dict[str, str]], runs: int) -> None:
    py = sys.executable
    rows, tops = [], {}
    for label, env in envs.items():
        for name, code in (("python -c pass", "pass"), ("import runner_image.runner", None)):
            cmd = [py, "-c", code or "import runner_image.runner"]
            _wall(cmd, env)  # warm-up (fills the bytecode cache when there is one)
            walls = [_wall(cmd, env) for _ in range(runs)]
            imp = [importtime(code or "import runner_image.runner", env)[0] for _ in range(3)]
            if code is None:
                tops[label] = importtime("import runner_image.runner", env)[1]
            rows.append(
                [
                    f"{name} ({label})",
                    ms(median(walls)),
                    ms(min(walls)),
                    ms(max(walls)),
                    ms(median(imp)),
                ]
            )
    print()
    print(f"Interpreter start-up, wall time of the whole process ({runs} runs after 1 warm-up)")
    print(
        table(
            ["command", "median ms", "min ms", "max ms", "importtime total ms (median of 3)"], rows
        )
    )
    for label, imports in tops.items():
        print(f"  cumulative import ms ({label}):")
        print(f"    top level: {_top(imports, None)}")
        print(f"    under site: {_top(imports, 'site')}")
        print(f"    under runner_image.runner: {_top(imports, 'runner_image.runner')}")


# -- output ---------------------------------------------------------------------------------------
def summarise(label: str, timings: list[RunTiming]) -> list[list[Any]]:
    def row(name: str, values: list[float]) -> list[Any]:
        return [label, name, ms(median(values)), ms(min(values)), ms(max(values))]

    rows = [
        row("create -> COMPLETED (observed)", [t.done for t in timings]),
        row("create -> runner exited", [t.exited for t in timings]),
        row("POST create-run (incl. spawn)", [t.post for t in timings]),
    ]
    for phase in ("SCHEDULED->PENDING", "PENDING->RUNNING", "RUNNING->COMPLETED"):
        values = [t.phases[phase] for t in timings if phase in t.phases]
        if values:
            rows.append(row(f"  {phase} (server clock)", values))
    return rows


def spool_cost(base: Path, lines: int = 20_000) -> None:
    """What the log spool adds per line over the plain deque it replaced (put + take of a
    typical entry): in memory, and once spilled to disk (the service unreachable)."""
    from collections import deque

    from runner_image.logs import make_entry
    from runner_image.spool import Spool

    entry = make_entry(
        "a typical line of flow output, " * 2, level="INFO", stream="stdout", logger=None
    )

    def per_line(put: Any, take: Any) -> float:
        t0 = time.perf_counter()
        for _ in range(lines):
            put(entry)
        while take(500):
            pass
        return (time.perf_counter() - t0) / lines * 1e6

    plain: deque[Any] = deque()

    def take_plain(n: int) -> list[Any]:
        return [plain.popleft() for _ in range(min(n, len(plain)))]

    memory = Spool(base, memory_bytes=1 << 30, make_marker=lambda m: {"message": m})
    disk = Spool(base, memory_bytes=0, disk_bytes=1 << 30, make_marker=lambda m: {"message": m})
    rows = [
        ["deque (before)", f"{per_line(plain.append, take_plain):.2f}"],
        ["spool, in memory", f"{per_line(memory.put, memory.take):.2f}"],
        ["spool, on disk", f"{per_line(disk.put, disk.take):.2f}"],
    ]
    print()
    print(f"Log spool: put + take per line, {lines} lines (microseconds)")
    print(table(["buffer", "us per line"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="measured runs per case")
    ap.add_argument("--warmup", type=int, default=1, help="excluded runs per case")
    ap.add_argument("--startup-runs", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=60, help="per run, seconds")
    ap.add_argument(
        "--bytecode",
        choices=["both", "as-is", "cached"],
        default="both",
        help="runner bytecode: the inherited environment, a .pyc cache, or both",
    )
    args = ap.parse_args()

    print("pushpool runner benchmark")
    print(f"  machine: {load_note()} at start")
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    print(
        f"  {os.cpu_count()} CPUs ({parallel_slowdown():.1f}x slower per process when both are "
        f"busy); PYTHONDONTWRITEBYTECODE={dont_write!r} in this environment; "
        f"{sys.executable}"
    )
    with tempfile.TemporaryDirectory(prefix="pushpool-bench-runner-") as tmp:
        base = Path(tmp)
        pycache = base / "pycache"
        cached_env = {"PYTHONPYCACHEPREFIX": str(pycache), "PYTHONDONTWRITEBYTECODE": ""}
        cases = {"as-is": {}, "cached": cached_env}
        if args.bytecode != "both":
            cases = {args.bytecode: cases[args.bytecode]}

        settings = Settings(home=base / "home", heartbeat_seconds=10)
        results: dict[str, list[RunTiming]] = {}
        with live_server(settings) as live:
            # The "cached" case sets PYTHON* variables: host settings the pool must allow.
            config = live.client.get("/work-pools/local").json()["config"]
            r = live.client.patch(
                "/work-pools/local", json={"config": config | {"allow_job_commands": True}}
            )
            assert r.status_code == 200, r.text
            deployments = {
                label: deploy(live, f"bench-{label}", env) for label, env in cases.items()
            }
            for dep in deployments.values():
                for _ in range(args.warmup):
                    one_run(live, dep, args.timeout)
            # Interleaved, so drift on a shared machine hits both cases alike.
            for _ in range(args.runs):
                for label, dep in deployments.items():
                    results.setdefault(label, []).append(one_run(live, dep, args.timeout))

        print()
        print(
            f"hello.py:hello on the local process pool: {args.runs} runs per case after "
            f"{args.warmup} warm-up, one at a time (median / min / max)"
        )
        rows = []
        for label, timings in results.items():
            rows += summarise(label, timings)
        print(table(["bytecode", "measure", "median ms", "min ms", "max ms"], rows))
        failed = [t.state for ts in results.values() for t in ts if t.state != "COMPLETED"]
        print(f"  runs not COMPLETED: {len(failed)} {sorted(set(failed)) or ''}")

        envs = {label: clean_env() | env for label, env in cases.items()}
        startup(envs, args.startup_runs)
        spool_cost(base)

        print()
        print("Budget: create -> COMPLETED well under 1 s (the established peer: about 4 s)")
        for label, timings in results.items():
            med = median([t.done for t in timings])
            print(
                f"  {label}: median {med * 1000:.0f} ms, max "
                f"{max(t.done for t in timings) * 1000:.0f} ms "
                f"[{'ok' if med < 1 else 'OVER'}]"
            )
        print()
        print(f"machine: {load_note()} at the end")


if __name__ == "__main__":
    main()
