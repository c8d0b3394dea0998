"""Server time of the dashboard's heaviest pages on SQLite, at 100,000 runs in the store.

- the runs page (first page, newest first; a filtered page; a page deep in the cursor);
- a run page whose run has 5,000 log lines and 1,000 task runs (a map of 998 between
  one upstream and one downstream task), its live part (what its poll re-renders), and
  the 1,000 older log lines its "load older" button fetches;
- the events page (newest 50, and filtered by name pattern) at ``--events`` events.

Time is measured in process (FastAPI's TestClient: routing, the store queries, rendering;
no network), median and p95 of ``REPEAT`` requests after one warm-up. Target: < 200 ms each.

    python -m tests.benchmarks.dashboard [--runs 100000]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from service.bootstrap import ensure_admin_key, ensure_default_pool
from service.deployments import DeploymentCreate, deploy
from service.event_records import Event, Resource, new_event_id
from service.models import FlowRun, LogLine, StateRecord, TaskRun
from service.services import Services, build_services
from service.settings import Settings
from service.states import StateType
from service.store.base import Materialisation
from tests.benchmarks._common import EXAMPLES, ms, percentile, table

REPEAT = 20
BATCH = 5000
STATES = [StateType.COMPLETED] * 8 + [StateType.FAILED, StateType.CANCELLED]


def _run(dep_id: str, i: int, start: datetime) -> FlowRun:
    state = STATES[i % len(STATES)]
    at = start + timedelta(seconds=i)
    return FlowRun(
        id=str(uuid.uuid4()),
        name=f"run-{i}",
        deployment_id=dep_id,
        flow_name="hello",
        deployment_name="bench",
        work_pool="local",
        state=StateRecord(type=state, name=state.value.capitalize(), timestamp=at),
        expected_start=at,
        tags=["even" if i % 2 == 0 else "odd"],
        created_at=at,
        updated_at=at,
    )


def seed(svc: Services, runs: int) -> str:
    """``runs`` runs of one deployment (in batches, as the scheduler writes them); return the
    id of the newest, which gets the logs and task runs."""
    body = {
        "name": "bench",
        "flow_name": "hello",
        "entrypoint": "hello.py:hello",
        "work_pool": "local",
        "source": {"type": "local", "path": str(EXAMPLES)},
        "schedules": [{"interval_seconds": 86400}],
        "paused": True,
    }
    dep, _ = deploy(svc, DeploymentCreate.model_validate(body))
    schedule_id = svc.store.get_schedules(dep.id)[0].id
    start = datetime(2025, 1, 1, tzinfo=UTC)
    newest = ""
    for lo in range(0, runs, BATCH):
        batch = [_run(dep.id, i, start) for i in range(lo, min(lo + BATCH, runs))]
        svc.store.materialise([Materialisation(schedule_id, batch, None)])
        newest = batch[-1].id
    return newest


def add_logs_and_tasks(svc: Services, run_id: str, lines: int, tasks: int) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for lo in range(0, lines, 1000):
        chunk = [
            LogLine(run_id=run_id, timestamp=now, message=f"line {i}: processing item {i} ok")
            for i in range(lo, min(lo + 1000, lines))
        ]
        svc.store.append_logs(run_id, chunk)
    first = TaskRun(id=str(uuid.uuid4()), task_key="extract", name="extract", state="COMPLETED")
    mapped = [
        TaskRun(
            id=str(uuid.uuid4()),
            task_key="transform",
            name=f"transform[{i}]",
            state="COMPLETED",
            upstream=[first.id],
            map_index=i,
        )
        for i in range(tasks - 2)
    ]
    last = TaskRun(
        id=str(uuid.uuid4()),
        task_key="load",
        name="load",
        state="COMPLETED",
        upstream=[t.id for t in mapped],
    )
    everything = [first, *mapped, last]
    for lo in range(0, len(everything), 500):
        svc.store.upsert_task_runs(run_id, everything[lo : lo + 500])


def add_events(svc: Services, count: int) -> None:
    """``count`` events a second apart, on ten resources."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for lo in range(0, count, 1000):
        batch = [
            Event(
                id=new_event_id(),
                occurred=start + timedelta(seconds=i),
                name=f"bench.tick.{i % 20}",
                resource=Resource(id=f"bench.thing.{i % 10}", labels={"n": str(i % 10)}),
                payload={"i": i},
            )
            for i in range(lo, min(lo + 1000, count))
        ]
        svc.store.append_events(batch)


def timed(client: TestClient, path: str) -> tuple[list[float], int]:
    client.get(path)  # warm-up (templates compiled, caches filled)
    times = []
    size = 0
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - t0)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
        size = len(r.content)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--log-lines", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        # No rate limit: the benchmark sends far more than a person's requests per second.
        svc = build_services(Settings(home=Path(home), rate_limit_per_second=0))
        key = ensure_admin_key(svc)
        assert key is not None
        ensure_default_pool(svc)
        t0 = time.perf_counter()
        run_id = seed(svc, args.runs)
        add_logs_and_tasks(svc, run_id, args.log_lines, args.tasks)
        add_events(svc, args.events)
        print(
            f"seeded {args.runs} runs, {args.log_lines} log lines, {args.tasks} task "
            f"runs and {args.events} events in {time.perf_counter() - t0:.1f} s (SQLite)"
        )
        with TestClient(create_app(svc), base_url="https://bench") as client:
            client.post("/login", data={"api_key": key}, headers={"Origin": "https://bench"})
            first = client.get("/runs").text
            cursor = re.search(r'href="(/runs\?cursor=[^"]+)"', first)
            assert cursor, "no next page"
            older = re.search(
                r'hx-get="(/runs/[^"]+/logs/older\?before=\d+)"', client.get(f"/runs/{run_id}").text
            )
            assert older, "no older log lines"
            pages = [
                ("runs page (newest 50)", "/runs"),
                ("runs page, state=FAILED + tag", "/runs?state=FAILED&tag=even"),
                ("runs page, next cursor", cursor.group(1).replace("&amp;", "&")),
                ("runs table poll", "/runs/table"),
                (f"run page ({args.log_lines} lines, {args.tasks} tasks)", f"/runs/{run_id}"),
                ("run live part (its poll)", f"/runs/{run_id}/live"),
                ("run page, 1,000 older log lines", older.group(1)),
                (f"events page (newest 50 of {args.events})", "/events"),
                ("events page, name=bench.tick.1*", "/events?name=bench.tick.1%2A"),
            ]
            rows = []
            for label, path in pages:
                times, size = timed(client, path)
                rows.append(
                    [
                        label,
                        ms(percentile(times, 50)),
                        ms(percentile(times, 95)),
                        f"{size / 1024:.0f}",
                    ]
                )
        svc.store.close()
    print(table(["page", "p50 ms", "p95 ms", "KiB"], rows))
    print("target: < 200 ms each")


if __name__ == "__main__":
    main()
