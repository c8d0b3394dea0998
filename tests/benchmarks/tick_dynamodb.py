"""Benchmark: one scheduler tick on the DynamoDB store (moto, in-process) — calls per tick.

    python -m tests.benchmarks.tick_dynamodb [--deployments 200,600] [--due 10]

DynamoDB bills and throttles by request, so the figure that matters is how many calls a
tick makes, and that it grows with *due* work, not with the number of deployments.

For each size: N deployments with one cron schedule each, deployed at 11:00:00. ``--due``
of them (``0 12 * * *``) fall within the horizon at the measured tick at 11:00:30; the rest
(``0 3 * * *``) are due tomorrow. The pool is a paused ``process`` pool: runs are
materialised, nothing is spawned. Equal due counts at different N show whether the cost
follows due work.

Printed: calls per operation for the first tick (the one that materialises) and for a
second tick a minute later with nothing new due, and the wall time of each. Wall time on
moto says little about DynamoDB latency; the call counts are the result. Setup goes
through the store API and is not measured.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from tests.benchmarks._common import load_note, table


def _run(n: int, due: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from service.deployments import DeploymentCreate, deploy
    from service.pools import WorkPoolCreate, create_pool
    from service.services import build_services
    from service.settings import Settings
    from service.store.dynamo import DynamoStore
    from tests.support.clock import FakeClock

    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        store = DynamoStore("pushpool-bench", client=client)
        store.migrate()
        clock = FakeClock(datetime(2026, 6, 1, 11, 0, 0, tzinfo=UTC))
        svc = build_services(Settings(), store=store, clock=clock)
        create_pool(svc, WorkPoolCreate(name="bench", type="process", paused=True))
        started = time.perf_counter()
        for i in range(n):
            cron = "0 12 * * *" if i < due else "0 3 * * *"
            body = {
                "name": f"d{i}",
                "flow_name": "bench",
                "entrypoint": "flow.py:bench",
                "work_pool": "bench",
                "source": {"type": "image"},
                "schedules": [{"kind": "cron", "cron": cron}],
            }
            deploy(svc, DeploymentCreate.model_validate(body))
        setup = time.perf_counter() - started
        calls: Counter[str] = Counter()

        def count(event_name: str, **_: Any) -> None:
            calls[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register("before-call.dynamodb.*", count)
        clock.set(datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC))
        t0 = time.perf_counter()
        first = svc.scheduler.tick(clock())
        first_ms = (time.perf_counter() - t0) * 1e3
        first_calls = dict(calls)
        calls.clear()
        clock.advance(60)
        t0 = time.perf_counter()
        svc.scheduler.tick(clock())
        idle_ms = (time.perf_counter() - t0) * 1e3
        return {
            "n": n,
            "due": due,
            "materialised": first.materialised,
            "setup_s": setup,
            "first": first_calls,
            "first_ms": first_ms,
            "idle": dict(calls),
            "idle_ms": idle_ms,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", default="200,600")
    parser.add_argument("--due", type=int, default=10)
    args = parser.parse_args()
    sizes = [int(x) for x in args.deployments.split(",")]
    print("pushpool tick benchmark on DynamoDB (moto, in-process)")
    print(f"  machine: {load_note()}")
    results = [_run(n, args.due) for n in sizes]
    ops = sorted({op for r in results for op in (*r["first"], *r["idle"])})
    rows = []
    for r in results:
        for phase in ("first", "idle"):
            rows.append(
                [
                    f"{r['n']:,} deployments, {r['due']} due",
                    "first tick" if phase == "first" else "next tick (nothing due)",
                    *[str(r[phase].get(op, 0)) for op in ops],
                    str(sum(r[phase].values())),
                    f"{r[f'{phase}_ms']:.0f}",
                ]
            )
    print(table(["case", "tick", *ops, "total calls", "ms (moto)"], rows))
    for r in results:
        print(
            f"  {r['n']:,} deployments: {r['materialised']} runs materialised at the measured "
            f"tick; setup {r['setup_s']:.1f} s"
        )
    print("Cost should follow due schedules: equal due counts give equal call counts.")
    print(f"  machine: {load_note()}")


if __name__ == "__main__":
    main()
