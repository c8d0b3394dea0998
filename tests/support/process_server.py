"""A real ``pushpool server start`` in its own process, to kill -9 and restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from support.server import free_port

#: Short settings for outage tests: heartbeats judged within seconds, an outage noticed
#: after 3 s, runners that keep delivering for 2 minutes.
OUTAGE_SETTINGS = {
    "PUSHPOOL_HEARTBEAT_SECONDS": "1",
    "PUSHPOOL_HEARTBEAT_TIMEOUT_SECONDS": "5",
    "PUSHPOOL_TICK_INTERVAL_SECONDS": "0.5",
    "PUSHPOOL_REPORT_GRACE_SECONDS": "2",
    "PUSHPOOL_OUTAGE_GAP_SECONDS": "3",
    "PUSHPOOL_DELIVERY_WINDOW_SECONDS": "120",
}
#: How long outage tests keep the server down: past the heartbeat timeout above.
DOWN_SECONDS = 8.0


@dataclass
class Server:
    port: int
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> None:
        pushpool = Path(sys.executable).parent / "pushpool"
        log = open(self.home.parent / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [str(pushpool), "server", "start", "--port", str(self.port)],
            cwd=self.home.parent,  # started where its flows are, as a user starts it
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, (self.home.parent / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self) -> str:
        """The end of the server's output, and of every run's ``output.log``."""
        parts = [(self.home.parent / "server.log").read_text()[-3000:]]
        for log in sorted((self.home / "runs").glob("*/*/output.log")):
            parts.append(f"--- {log.parent.name}\n{log.read_text()[-2000:]}")
        return "\n".join(parts)

    def client(self) -> httpx.Client:
        key = json.loads((self.home / "credentials").read_text())["api_key"]
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )


@contextmanager
def server_process(home: Path, settings: dict[str, str]) -> Iterator[Server]:
    """A started server with ``settings`` and its data in ``home``; stopped after, with
    every process-pool runner it left."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    env |= settings | {"PUSHPOOL_HOME": str(home)}
    srv = Server(free_port(), home, env)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        for record in (home / "runs").glob("*/*/pid.json"):
            pid = json.loads(record.read_text())["pid"]
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def wait_until(condition: Any, timeout: float, what: str, details: Any = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {details()}"
        time.sleep(0.1)


def all_logs(client: httpx.Client, run_id: str) -> list[str]:
    """Every stored log message of the run, in order, page by page."""
    out: list[str] = []
    after = 0
    while True:
        page = client.get(f"/flow-runs/{run_id}/logs", params={"after": after}).json()
        if not page["logs"]:
            return out
        out += [line["message"] for line in page["logs"]]
        after = page["next_after"]
