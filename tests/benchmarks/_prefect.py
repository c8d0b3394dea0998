"""Prefect 3 for the SDK benchmark's side-by-side column: a throwaway virtualenv, a real
``prefect server start`` on a free port, and the same flows run against it.

Never used by the tests or CI: only ``python -m tests.benchmarks.sdk --with-prefect``
(or ``--prefect-python``) gets here. Every wait is bounded and the server's whole process
group is stopped on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.benchmarks._common import clean_env
from tests.support.server import free_port

DEFAULT_VENV = Path(tempfile.gettempdir()) / "pushpool-bench-prefect-venv"
INSTALL_SECONDS = 1500
START_SECONDS = 300
RUN_SECONDS = 1800

SCRIPT = """
import json, sys, time
import httpx
from prefect import flow, task
from prefect.events.clients import PrefectEventsClient
from prefect.events.worker import EventsWorker

COUNTS = {"http": 0, "events": 0}
for cls in (httpx.Client, httpx.AsyncClient):
    def counting(send):
        def inner(self, *a, **k):
            COUNTS["http"] += 1
            return send(self, *a, **k)
        return inner
    cls.send = counting(cls.send)

_emit = PrefectEventsClient._emit
async def counting_emit(self, event):  # one websocket message per event
    COUNTS["events"] += 1
    return await _emit(self, event)
PrefectEventsClient._emit = counting_emit

def settle():
    # untimed: the events of the flow just run reach the server before the next one
    EventsWorker.drain_all(timeout=300, at_exit=False)
    time.sleep(1)

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
plain(1)  # warm the client and the server once, outside the measurement
settle()
out = {}
for name, fn in (("plain", plain), ("sequential", sequential), ("mapped", mapped)):
    times, http, events = [], [], []
    for _ in range(runs):
        before = dict(COUNTS)
        start = time.perf_counter()
        assert fn(n) == sum(range(n))
        times.append(time.perf_counter() - start)
        settle()
        http.append(COUNTS["http"] - before["http"])
        events.append(COUNTS["events"] - before["events"])
    mid = len(times) // 2
    out[name] = {"running": sorted(times)[mid], "http": sorted(http)[mid],
                 "events": sorted(events)[mid]}
print("RESULT " + json.dumps(out))
"""


def ensure_venv(venv: Path) -> str:
    """The python of ``venv``, created with ``pip install 'prefect==3.*'`` unless it already
    imports prefect 3."""
    python = venv / "bin" / "python"
    if python.exists() and version(str(python)).startswith("3."):
        return str(python)
    print(f"creating {venv} with prefect 3 (once; reused by later runs)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "prefect==3.*"],
        check=True,
        timeout=INSTALL_SECONDS,
    )
    return str(python)


def version(python: str) -> str:
    """``prefect.__version__`` in ``python``, or "" when it cannot import prefect."""
    probe = subprocess.run(
        [python, "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return probe.stdout.strip() if probe.returncode == 0 else ""


@contextlib.contextmanager
def prefect_server(python: str, home: Path) -> Iterator[str]:
    """A ``prefect server start`` with its own PREFECT_HOME and SQLite file on a free
    127.0.0.1 port; yields its API URL once ``/api/health`` answers; stops it on exit."""
    port = free_port()
    env = _env(home) | {
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    log = (home / "server.log").open("wb")
    cmd = [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(proc, url, home / "server.log")
        yield url
    finally:
        _stop(proc)
        log.close()


def _env(home: Path) -> dict[str, str]:
    return clean_env() | {
        "PREFECT_HOME": str(home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # SQLite under a burst of task-run events: wait for the lock rather than answer 503
        "PREFECT_SERVER_DATABASE_TIMEOUT": "120",
        "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "60",
        "PREFECT_CLIENT_MAX_RETRIES": "10",
    }


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited: {log.read_text()[-500:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health", timeout=5) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"prefect server not healthy after {START_SECONDS} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then SIGKILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run(python: str, count: int, runs: int) -> dict[str, dict[str, float]] | str:
    """Medians per mode under Prefect 3 against its own server (``running``: seconds of
    the flow call; ``http``: HTTP requests; ``events``: events sent over its websocket),
    or why there are none."""
    found = version(python)
    if not found.startswith("3."):
        return f"{python} cannot import prefect 3"
    with tempfile.TemporaryDirectory(prefix="pushpool-bench-prefect-") as tmp:
        home = Path(tmp)
        try:
            with prefect_server(python, home) as url:
                done = subprocess.run(
                    [python, "-c", SCRIPT, str(count), str(runs)],
                    capture_output=True,
                    text=True,
                    env=_env(home) | {"PREFECT_API_URL": url},
                    timeout=RUN_SECONDS,
                    check=False,
                )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"the Prefect server or run failed: {exc}"
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            server_log = (home / "server.log").read_text(errors="replace")
            return (
                f"the Prefect run failed: {done.stderr.strip()[-600:]}\n"
                f"server log (end): {server_log[-1500:]}"
            )
    print(f"Prefect {found} from {python}, against its own `prefect server start` (SQLite)")
    result: dict[str, dict[str, float]] = json.loads(line.removeprefix("RESULT "))
    return result
