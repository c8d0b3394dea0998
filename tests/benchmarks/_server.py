"""The API benchmark's server process: pushpool (or a bare FastAPI app) under uvicorn.

    python -m tests.benchmarks._server --home DIR --info FILE [--bare] [--max-seconds 600]

Binds a free 127.0.0.1 port itself, writes ``{"port", "api_key", "deployment_id", "pid"}``
to ``--info`` (atomically), then serves until SIGTERM/SIGINT, until its parent exits, or
until ``--max-seconds`` pass, whichever comes first: it always stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from ._common import EXAMPLES

POOL = "bench"
CONSTANT = {"id": "00000000-0000-0000-0000-000000000000", "state": {"type": "SCHEDULED"}}


def pushpool_app(
    home: Path, port: int, database_url: str | None = None
) -> tuple[FastAPI, str, str]:
    """pushpool on SQLite in ``home`` (or the migrated, empty database at ``database_url``):
    admin key, a *paused* process pool, one deployment."""
    from service.app import create_app
    from service.bootstrap import ensure_admin_key
    from service.deployments import DeploymentCreate, deploy
    from service.pools import WorkPoolCreate, create_pool
    from service.services import build_services
    from service.settings import Settings

    # One key sends every request: a limit that never bites, so the bucket is still paid for.
    settings = Settings(
        home=home,
        host="127.0.0.1",
        port=port,
        database_url=database_url,
        rate_limit_per_second=1e9,
        rate_limit_burst=10**9,
    )
    svc = build_services(settings)
    key = ensure_admin_key(svc)
    assert key is not None, "a fresh home must get a fresh admin key"
    create_pool(
        svc,
        WorkPoolCreate(
            name=POOL,
            type="process",
            paused=True,
            config={"working_dir": str(home / "runs"), "allowed_source_roots": [str(EXAMPLES)]},
        ),
    )
    body = DeploymentCreate.model_validate(
        {
            "name": "bench",
            "flow_name": "hello",
            "entrypoint": "hello.py:hello",
            "work_pool": POOL,
            "source": {"type": "local", "path": str(EXAMPLES)},
        }
    )
    deployment, _ = deploy(svc, body)
    return create_app(svc), key, deployment.id


def bare_app() -> FastAPI:
    """The framework floor: same route shape (sync handler), a constant answer."""
    app = FastAPI()

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/deployments/{deployment_id}/runs", status_code=201)
    def create_run(deployment_id: str) -> dict[str, Any]:
        return CONSTANT

    return app


def _watchdog(server: uvicorn.Server, deadline: float, parent: int) -> None:
    while not server.should_exit:
        if time.monotonic() > deadline or os.getppid() != parent:
            server.should_exit = True
            return
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--info", type=Path, required=True)
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--database-url", default=None, help="default: SQLite in --home")
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()

    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only for
    # sockets that say so; without it, Nagle + delayed ACK add ~40 ms to every response.
    # (``pushpool server start`` lets uvicorn bind host:port, which gets this right.)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    if args.bare:
        app, key, deployment_id = bare_app(), "none", "bare"
    else:
        args.home.mkdir(parents=True, exist_ok=True)
        app, key, deployment_id = pushpool_app(args.home, port, args.database_url)
    info = {"port": port, "api_key": key, "deployment_id": deployment_id, "pid": os.getpid()}
    tmp = args.info.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(args.info)

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    deadline = time.monotonic() + args.max_seconds
    threading.Thread(target=_watchdog, args=(server, deadline, os.getppid()), daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
