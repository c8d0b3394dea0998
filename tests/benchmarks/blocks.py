"""Benchmark: what locking blocks against a concurrent deploy costs a deploy and a delete.

    python -m tests.benchmarks.blocks [--deployments 1000] [--dynamodb-deployments 200]
                                      [--repeats 20]

Setup (reported, not measured): a store with one pool, 60 blocks and N deployments, each
listing 5 of the blocks (written with ``upsert_deployment``). SQLite in a temporary
directory; DynamoDB on moto in process (fewer deployments: moto answers a GSI query by
scanning the table in Python, so its figures show calls' cost on moto, not DynamoDB's).

Measured (median of ``--repeats`` calls, warm):

* ``redeploy, no blocks`` / ``redeploy, 5 blocks`` / ``redeploy, 5 blocks changed``:
  ``upsert_deployment`` of one existing deployment listing none, the same five, or five
  others (SQL: one ``SELECT … FOR KEY SHARE`` of the listed blocks' rows; DynamoDB: one
  ``Update`` per block started or stopped in the deploy's transaction);
* ``delete block in use (refused)`` and ``delete unused block``: ``delete_block``, which
  locks the block's row (SQL) or is conditional on its users (DynamoDB), and still reads
  the deployments to name them (and, on DynamoDB, for items written before ``users``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from service.blocks.models import BlockDocument
from service.errors import BlockInUse
from service.models import Deployment, WorkPool
from service.store.base import Store
from tests.benchmarks._common import table
from tests.benchmarks.events import moto_store
from tests.store.test_conformance import deployment as store_deployment

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BLOCKS = 60


def timed(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def deployment(name: str, blocks: list[str]) -> Deployment:
    return store_deployment(name, blocks=blocks, flow_name="bench")


def refs(start: int) -> list[str]:
    return [f"secret/b{(start + i) % BLOCKS}" for i in range(5)]


def setup(store: Store, n: int) -> None:
    store.create_pool(WorkPool(name="p", type="process", created_at=T0, updated_at=T0))
    for i in range(BLOCKS):
        store.put_block(BlockDocument(type="secret", name=f"b{i}", created_at=T0, updated_at=T0))
    for i in range(n):
        store.upsert_deployment(deployment(f"d{i}", refs(i * 5)), [])


def measure(label: str, store: Store, n: int, repeats: int) -> list[list[str]]:
    setup(store, n)
    store.put_block(BlockDocument(type="secret", name="unused", created_at=T0, updated_at=T0))
    flip = iter(range(10**9))

    def swap() -> None:
        store.upsert_deployment(deployment("d0", refs(5 + 5 * (next(flip) % 2))), [])

    def delete_in_use() -> None:
        with contextlib.suppress(BlockInUse):  # refused, as it must be
            store.delete_block("secret", "b0")

    def delete_unused() -> None:
        store.delete_block("secret", "unused")
        store.put_block(BlockDocument(type="secret", name="unused", created_at=T0, updated_at=T0))

    cases = {
        "redeploy, no blocks": lambda: store.upsert_deployment(deployment("plain", []), []),
        "redeploy, 5 blocks": lambda: store.upsert_deployment(deployment("d1", refs(5)), []),
        "redeploy, 5 blocks changed": swap,
        "delete block in use (refused)": delete_in_use,
        "delete unused block (+ re-create)": delete_unused,
    }
    return [[label, case, f"{timed(fn, repeats) * 1000:.2f}"] for case, fn in cases.items()]


@contextmanager
def sqlite_store() -> Iterator[Store]:
    from service.store.sql import SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        try:
            yield store
        finally:
            store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--deployments", type=int, default=1_000, help="deployments on SQLite")
    ap.add_argument("--dynamodb-deployments", type=int, default=200, help="on moto; 0 skips")
    ap.add_argument("--repeats", type=int, default=20, help="measured calls per case (median)")
    args = ap.parse_args()
    rows = []
    with sqlite_store() as store:
        rows += measure(f"sqlite {args.deployments}", store, args.deployments, args.repeats)
    if args.dynamodb_deployments:
        with moto_store() as store:
            n = args.dynamodb_deployments
            rows += measure(f"dynamodb/moto {n}", store, n, args.repeats)
    print("pushpool blocks benchmark (deploy/delete with block locking)")
    print(table(["store", "operation", "median ms"], rows))


if __name__ == "__main__":
    main()
