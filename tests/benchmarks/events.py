"""Benchmark: recording and listing events with many stored.

    python -m tests.benchmarks.events [--events 100000] [--dynamodb-events 2000] [--repeats 20]

Setup (reported, not measured): a store holds N events spread over 30 days (one every
~26 s at N = 100,000), on 200 flow runs and 10 deployments, names from the service's own
(``pushpool.flow-run.<State>``) plus a few custom ones; written with ``append_events`` in
batches of 1,000. SQLite in a temporary directory; DynamoDB on moto in process (smaller
N and fewer repeats: moto answers every GSI query by scanning the whole table in Python,
so its figures show call counts' cost on moto, not DynamoDB's latency).

Measured (median of ``--repeats`` calls, warm):

* ``record``: one ``service.events.record`` (one event, one write): the cost a state
  change pays for its event (``set_state`` adds exactly this);
* ``list`` queries of one page (50): newest of all; a name pattern; a resource id (an
  index on SQL, the ``by_kind`` GSI on DynamoDB); a label; a one-hour window a week ago;
  and paging to the 10th page by cursor.

Automations' evaluation cost (1,000 automations, 100,000 events) is measured by
:mod:`tests.benchmarks.automations`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from service import events
from service.event_records import Event, EventFilter, Resource, new_event
from service.store.base import Store
from tests.benchmarks._common import table

if TYPE_CHECKING:
    from service.store.dynamo import DynamoStore

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
STATES = ["Scheduled", "Pending", "Running", "Completed", "Failed", "Crashed", "Cancelled"]


def corpus(n: int) -> list[Event]:
    """``n`` events over the 30 days before NOW, newest last."""
    step = timedelta(days=30) / n
    out = []
    for i in range(n):
        run, dep = i % 200, i % 10
        name = f"pushpool.flow-run.{STATES[i % len(STATES)]}" if i % 10 else f"shop.order.{i % 3}"
        resource = Resource(
            id=f"pushpool.flow-run.run-{run}",
            labels={"deployment": f"dep-{dep}", "flow": "etl", "pool": "local"},
        )
        at = NOW - timedelta(days=30) + step * i
        out.append(new_event(name, resource, occurred=at, payload={"i": i}))
    return out


def fill(store: Store, n: int) -> float:
    started = time.perf_counter()
    batch = corpus(n)
    for start in range(0, n, 1000):
        store.append_events(batch[start : start + 1000])
    return time.perf_counter() - started


def timed(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def tenth_page(store: Store) -> None:
    cursor = None
    for _ in range(10):
        cursor = store.list_events(EventFilter(), 50, cursor).next_cursor


def measure(label: str, store: Store, n: int, repeats: int) -> list[list[str]]:
    setup = fill(store, n)
    print(f"  {label}: {n:,} events stored in {setup:.1f} s", flush=True)
    week_ago = NOW - timedelta(days=7)
    resource = Resource(id="pushpool.flow-run.bench", labels={"deployment": "dep-1"})
    cases: dict[str, Callable[[], object]] = {
        "record (one event)": lambda: events.record(
            store, "pushpool.flow-run.Completed", resource, now=NOW
        ),
        "list newest 50": lambda: store.list_events(EventFilter(), 50),
        "list name 'shop.*'": lambda: store.list_events(EventFilter(names=["shop.*"]), 50),
        "list one resource": lambda: store.list_events(
            EventFilter(resource="pushpool.flow-run.run-7"), 50
        ),
        "list label deployment": lambda: store.list_events(
            EventFilter(labels={"deployment": "dep-3"}), 50
        ),
        "list 1 h a week ago": lambda: store.list_events(
            EventFilter(since=week_ago, until=week_ago + timedelta(hours=1)), 50
        ),
        "10th page by cursor": lambda: tenth_page(store),
    }
    return [[label, case, f"{timed(fn, repeats) * 1000:.2f}"] for case, fn in cases.items()]


def sqlite_rows(n: int, repeats: int) -> list[list[str]]:
    from service.store.sql import SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        try:
            return measure(f"sqlite {n // 1000}k", store, n, repeats)
        finally:
            store.close()


@contextmanager
def moto_store() -> Iterator[DynamoStore]:
    """A migrated DynamoStore on moto's in-process DynamoDB (dummy credentials)."""
    import boto3
    from moto import mock_aws

    from service.store.dynamo import DynamoStore

    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        store = DynamoStore("bench", client=client)
        store.migrate()
        yield store


def dynamodb_rows(n: int, repeats: int) -> list[list[str]]:
    with moto_store() as store:
        return measure(f"dynamodb/moto {n // 1000}k", store, n, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="events stored on SQLite")
    ap.add_argument("--dynamodb-events", type=int, default=2_000, help="on moto; 0 skips")
    ap.add_argument("--repeats", type=int, default=20, help="measured calls per case (median)")
    args = ap.parse_args()
    print("pushpool events benchmark")
    print(table(["store", "operation", "median ms"], sqlite_rows(args.events, args.repeats)))
    if args.dynamodb_events:
        rows = dynamodb_rows(args.dynamodb_events, max(3, args.repeats // 4))
        print(table(["store", "operation", "median ms"], rows), flush=True)


if __name__ == "__main__":
    main()
