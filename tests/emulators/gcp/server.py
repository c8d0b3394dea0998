"""The emulator as a uvicorn server in a thread on 127.0.0.1 (a free port), and a fixture
helper that points the product's Google clients at it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from emulators.gcp.app import Services, build_app


class GcpEmulator(Services):
    """The emulated services plus the server that serves them; ``url`` once started."""

    url: str

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        message: str = "injected",
        *,
        reason: str = "",
        times: int = 1,
        after: bool = False,
    ) -> None:
        """Answer ``status`` to the next ``times`` requests whose path matches ``path``."""
        import re

        from emulators.gcp.base import Fault

        fault = Fault(method, re.compile(path), status, message, reason, times, after)
        with self.journal.lock:
            self.journal.faults.append(fault)


@contextmanager
def running_emulator(timeout: float = 10.0) -> Iterator[GcpEmulator]:
    """Start an emulator; stop it (and its thread) on exit."""
    emulator = GcpEmulator()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        build_app(emulator), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the GCP emulator did not start")
        time.sleep(0.01)
    emulator.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield emulator
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
