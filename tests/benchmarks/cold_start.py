"""Benchmark: Lambda cold start — a fresh process imports the handler and answers one event.

    python -m tests.benchmarks.cold_start [--repeats 7]

Each measurement is a new Python process (what a Lambda cold start pays, minus the
runtime's own start): wall time from process start to the handler's response, and the
import + first-event time measured inside the process. Cases, side by side:

* ``bare``: a FastAPI app with one route behind ``Mangum(app, lifespan="off")`` — the floor.
* ``bare, collector paused``: the same, built with the garbage collector paused as the
  handler builds its app — a like-for-like floor, so the report shows what the service's
  own code costs apart from that technique.
* ``health``: ``service.lambda_handler.handler`` answering ``GET /api/health`` (API
  Gateway HTTP API 2.0 event).
* ``flow-runs (dynamodb)``: the same handler answering ``GET /api/flow-runs`` with an API
  key on the DynamoDB store, against a moto server on loopback started by this script
  (skipped when the DynamoDB store is not available), with the deployed function's
  ``PUSHPOOL_DYNAMODB_CREATE_TABLE=false`` (the stack owns the table).

Targets (issue 4): health within 1.3x of bare; the first DynamoDB-backed request within 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks._common import load_note, table
from tests.support.factories import EVENTS_DIR

REPO = Path(__file__).resolve().parents[2]
EVENT = EVENTS_DIR / "apigw-http-v2-get.json"

_CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
event = json.loads(os.environ["BENCH_EVENT"])
class Ctx:
    def get_remaining_time_in_millis(self): return 30000
if os.environ["BENCH_CASE"].startswith("bare"):
    import gc
    paused = "paused" in os.environ["BENCH_CASE"]
    if paused:
        gc.disable()
    from fastapi import FastAPI
    from mangum import Mangum
    app = FastAPI()
    @app.get("/api/health")
    def health(): return {"status": "ok"}
    handler = Mangum(app, lifespan="off")
    if paused:
        gc.freeze(); gc.enable()
else:
    from service.lambda_handler import handler
t_import = time.perf_counter()
response = handler(event, Ctx())
t_done = time.perf_counter()
print(json.dumps({"status": response["statusCode"], "import_ms": (t_import - t0) * 1e3,
                  "first_event_ms": (t_done - t_import) * 1e3,
                  "boto3": "boto3" in sys.modules, "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def _event(path: str, key: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(EVENT.read_text())
    event.update(rawPath=path, rawQueryString="", body=None, isBase64Encoded=False)
    event["headers"] = {"content-type": "application/json"}
    if key:
        event["headers"]["authorization"] = f"Bearer {key}"
    event["requestContext"]["http"]["path"] = path
    event.pop("cookies", None)
    return event


def _once(case: str, event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    child_env = {**env, "BENCH_CASE": case, "BENCH_EVENT": json.dumps(event)}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, env=child_env, timeout=120
    )
    wall = (time.perf_counter() - start) * 1e3
    if out.returncode != 0:
        raise RuntimeError(f"{case}: child failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_ms"] = wall
    return result


def _measure(
    cases: list[tuple[str, dict[str, Any], dict[str, str]]], repeats: int
) -> list[dict[str, Any]]:
    """Median per case, the cases interleaved in every round so machine drift hits all."""
    for case, event, env in cases:
        _once(case, event, env)  # warm the OS page cache and .pyc files
    runs: dict[str, list[dict[str, Any]]] = {case: [] for case, _, _ in cases}
    for _ in range(repeats):
        for case, event, env in cases:
            runs[case].append(_once(case, event, env))
    rows = []
    for case, results in runs.items():
        if any(r["status"] != 200 for r in results):
            raise RuntimeError(f"{case}: status {[r['status'] for r in results]}")
        rows.append(
            {
                "case": case,
                "wall": statistics.median(r["wall_ms"] for r in results),
                "import": statistics.median(r["import_ms"] for r in results),
                "first": statistics.median(r["first_event_ms"] for r in results),
                "boto3": results[0]["boto3"],
                "sqlalchemy": results[0]["sqlalchemy"],
            }
        )
    return rows


def _dynamo_env(home: Path) -> tuple[dict[str, str], str, Any] | None:
    """A moto server with the store's table and an admin key, or None if unavailable."""
    try:
        import service.store.dynamo  # noqa: F401
    except ImportError:
        return None
    import logging

    from moto.server import ThreadedMotoServer

    from service.bootstrap import ensure_admin_key
    from service.services import build_services
    from service.settings import Settings

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PUSHPOOL_DYNAMODB_TABLE": "pushpool-bench",
        "PUSHPOOL_DYNAMODB_CREATE_TABLE": "false",
    }
    os.environ.update(env)
    svc = build_services(Settings(home=home, dynamodb_table="pushpool-bench"))  # type: ignore[call-arg]
    svc.store.migrate()  # the stack's job in AWS
    key = ensure_admin_key(svc)
    assert key is not None
    return env, key, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("pushpool cold-start benchmark")
    print(f"  machine: {load_note()}")
    print(
        f"  each figure: median of {args.repeats} fresh processes after 1 warm-up; "
        "the cases take turns in every round"
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = {"PATH": os.environ.get("PATH", ""), "PUSHPOOL_HOME": str(Path(tmp) / "home")}
        cases = [
            ("bare", _event("/api/health"), base),
            ("bare, collector paused", _event("/api/health"), base),
            ("health", _event("/api/health"), base),
        ]
        dynamo = _dynamo_env(Path(tmp) / "dyn")
        server = None
        if dynamo is None:
            print("  flow-runs (dynamodb): skipped, service.store.dynamo is not available")
        else:
            env, key, server = dynamo
            cases.append(("flow-runs (dynamodb)", _event("/api/flow-runs", key), {**base, **env}))
        try:
            rows = _measure(cases, args.repeats)
        finally:
            if server is not None:
                server.stop()
    bare, paused = rows[0]["wall"], rows[1]["wall"]
    print(
        table(
            [
                "case",
                "wall ms",
                "import ms",
                "first event ms",
                "x bare",
                "x bare paused",
                "boto3",
                "sqlalchemy",
            ],
            [
                [
                    r["case"],
                    f"{r['wall']:.0f}",
                    f"{r['import']:.0f}",
                    f"{r['first']:.0f}",
                    f"{r['wall'] / bare:.2f}",
                    f"{r['wall'] / paused:.2f}",
                    "yes" if r["boto3"] else "no",
                    "yes" if r["sqlalchemy"] else "no",
                ]
                for r in rows
            ],
        )
    )
    print("Targets: health within 1.3x of bare; the first DynamoDB-backed request within 2x")
    print("  (x bare paused: against a floor built with the collector paused, like the handler)")
    print(f"  machine: {load_note()}")


if __name__ == "__main__":
    main()
