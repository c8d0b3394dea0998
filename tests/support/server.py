"""A real pushpool server on a free loopback port, in a thread, for end-to-end tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn

from service.app import create_app
from service.bootstrap import ensure_admin_key, ensure_default_pool
from service.services import Services, build_services
from service.settings import Settings

#: This checkout (computed here: benchmarks import this module without ``tests`` on the path).
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    services: Services
    url: str
    api_key: str
    client: httpx.Client


@contextmanager
def live_server(settings: Settings, *, run_scheduler: bool = False) -> Iterator[LiveServer]:
    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})
    svc = build_services(settings)
    key = ensure_admin_key(svc)
    assert key is not None
    ensure_default_pool(svc, [REPO, settings.home.parent])  # this checkout, the test's files
    app = create_app(svc, run_scheduler=run_scheduler)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(
        base_url=url + "/api", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    try:
        yield LiveServer(svc, url, key, client)
    finally:
        client.close()
        stop_all_runs(svc)
        server.should_exit = True
        thread.join(timeout=10)
        svc.store.close()


def stop_all_runs(svc: Services) -> None:
    """Stop every run still going, so no test leaves a process behind."""
    from service.states import ACTIVE

    for run in svc.store.runs_in_states(sorted(ACTIVE), 1000):
        if run.infra is not None:
            svc.dispatcher.provisioner(run.work_pool).teardown(run.infra)
    for item in svc.store.pending_teardowns(1000):
        svc.dispatcher.provisioner(item.work_pool).teardown(item.infra)
