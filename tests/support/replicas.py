"""Several ``pushpool server start`` replicas on one PostgreSQL database, racing for runs.

:func:`race` puts ``runs`` runs, all due at once, on a ``process`` pool with a
concurrency limit, starts ``replicas`` server processes on the database, and waits
until every run is final. What it measures, not assumes:

- each run's flow appends ``run id, pid, start, end`` to one file as it finishes: the
  number of executions per run, and the most runs executing at any instant;
- a poller reads the store every few milliseconds: the most runs in ``ACTIVE`` states
  (``PENDING``/``RUNNING``/``CANCELLING``) any one consistent snapshot saw;
- each replica's stderr: anything logged at ERROR or a traceback counts as an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from service.models import Deployment, FlowRun, StateRecord, WorkPool
from service.store.sql import SqlStore
from service.vocabulary import ACTIVE, TERMINAL, StateType

POOL = "race"
FLOW = '''
import os
import time


def record(path: str, seconds: float) -> None:
    """Executes once per attempt: note when, then append one line (atomic: O_APPEND)."""
    start = time.time()
    time.sleep(seconds)
    line = f"{os.environ['PUSHPOOL_FLOW_RUN_ID']} {os.getpid()} {start:.6f} {time.time():.6f}\\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
'''


@dataclass
class RaceResult:
    replicas: int
    runs: int
    limit: int
    seconds: float = 0.0
    states: Counter[str] = field(default_factory=Counter)
    executions: Counter[str] = field(default_factory=Counter)
    #: The most flows executing at one instant, from their own start/end times.
    peak_executing: int = 0
    #: The most runs in ACTIVE states in one snapshot of the store.
    peak_active: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.executions.values() if n > 1)

    @property
    def missing(self) -> int:
        return self.runs - len(self.executions)

    def summary(self) -> str:
        return (
            f"{self.replicas} replicas, {self.runs} runs, limit {self.limit}: "
            f"{self.seconds:.1f} s, states {dict(self.states)}, executed "
            f"{sum(self.executions.values())} (duplicates {self.duplicates}, missing "
            f"{self.missing}), peak executing {self.peak_executing}, peak ACTIVE in the "
            f"store {self.peak_active}, errors {len(self.errors)}"
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _peak(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    peak = now = 0
    for _, delta in events:  # at a tie an end sorts first: touching is not overlapping
        now += delta
        peak = max(peak, now)
    return peak


def _seed(store: SqlStore, root: Path, runs: int, limit: int, seconds: float) -> Path:
    """The pool, the deployment and ``runs`` runs due now; returns the record file."""
    now = datetime.now(UTC)
    flows = root / "flows"
    flows.mkdir()
    (flows / "race_flow.py").write_text(FLOW)
    record = root / "executions.txt"
    store.create_pool(
        WorkPool(
            name=POOL,
            type="process",
            config={"working_dir": str(root / "runs"), "allowed_source_roots": [str(flows)]},
            concurrency_limit=limit,
            created_at=now,
            updated_at=now,
        )
    )
    deployment, _ = store.upsert_deployment(
        Deployment(
            id=str(uuid.uuid4()),
            name="race",
            flow_name="record",
            entrypoint="race_flow.py:record",
            work_pool=POOL,
            source={"type": "local", "path": str(flows)},  # type: ignore[arg-type]
            parameters={"path": str(record), "seconds": seconds},
            created_at=now,
            updated_at=now,
        ),
        [],
    )
    for _ in range(runs):
        store.create_run(
            FlowRun(
                id=str(uuid.uuid4()),
                deployment_id=deployment.id,
                flow_name=deployment.flow_name,
                deployment_name=deployment.name,
                work_pool=POOL,
                state=StateRecord(type=StateType.SCHEDULED, name="Scheduled", timestamp=now),
                parameters=dict(deployment.parameters),
                expected_start=now,
                created_at=now,
                updated_at=now,
            )
        )
    return record


def _pushpool() -> list[str]:
    script = Path(sys.executable).parent / "pushpool"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from service.cli.main import main; main()"]


def _start_replica(
    url: str, root: Path, index: int, tick: float
) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = _free_port()
    home = root / f"replica-{index}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    env |= {
        "PUSHPOOL_HOME": str(home),
        "PUSHPOOL_DATABASE_URL": url,
        "PUSHPOOL_TICK_INTERVAL_SECONDS": str(tick),
        "PUSHPOOL_HEARTBEAT_SECONDS": "5",
    }
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*_pushpool(), "server", "start", "--no-migrate", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, f"http://127.0.0.1:{port}", log


def _wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"replica exited at start: {log.read_text()[-1000:]}")
        try:
            if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"replica at {base} did not become healthy")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _errors(log: Path) -> list[str]:
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines() if "Traceback" in line or "ERROR" in line]


def race(
    url: str,
    root: Path,
    *,
    replicas: int,
    runs: int,
    limit: int = 10,
    flow_seconds: float = 0.02,
    tick: float = 0.2,
    timeout: float = 600.0,
) -> RaceResult:
    """Run the race on the migrated, empty database at ``url``; ``root`` is scratch."""
    result = RaceResult(replicas, runs, limit)
    store = SqlStore(url)
    record = _seed(store, root, runs, limit, flow_seconds)
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.is_set():
            active = store.runs_in_states(sorted(ACTIVE), 10 * limit + 10)
            result.peak_active = max(result.peak_active, len(active))
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    started = time.monotonic()
    try:
        bases = []
        for i in range(replicas):
            proc, base, log = _start_replica(url, root, i, tick)
            procs.append(proc)
            bases.append(base)
            logs.append(log)
        poller.start()
        for proc, base, log in zip(procs, bases, logs, strict=True):
            _wait_healthy(proc, base, log, 60)
        deadline = started + timeout
        while time.monotonic() < deadline:
            done = store.runs_in_states(sorted(TERMINAL), runs + 1)
            if len(done) >= runs:
                break
            time.sleep(0.25)
        result.seconds = time.monotonic() - started
    finally:
        stop_polling.set()
        if poller.is_alive():
            poller.join(timeout=5)
        _stop(procs)
    for run in store.runs_in_states(list(StateType), runs + 1):
        result.states[run.state.type.value] += 1
    store.close()
    intervals = []
    if record.exists():
        for line in record.read_text().splitlines():
            run_id, _pid, start, end = line.split()
            result.executions[run_id] += 1
            intervals.append((float(start), float(end)))
    result.peak_executing = _peak(intervals)
    for log in logs:
        result.errors += _errors(log)
    return result
