"""Replicas on PostgreSQL: 1,000 runs due at once on a pool with a concurrency limit of
10, raced by 2 and by 3 ``pushpool server start`` processes on one database.

Prints, per case: wall time until every run is final, final states, executions (and
duplicates, missing), the most flows executing at one instant (their own start/end
times) and the most runs ``ACTIVE`` in one snapshot of the store, errors logged.
``make test`` races 200 runs (tests/e2e/test_replicas_postgres.py); this is the full size.

    python -m tests.benchmarks.replicas [--runs 1000] [--replicas 2 3] [--flow-seconds 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from service.store.sql import SqlStore

from ._common import REPO, table

sys.path.insert(0, str(REPO / "tests"))
from support.postgres import shared_server, stop_shared_server
from support.replicas import race


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--replicas", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--flow-seconds", type=float, default=0.2)
    args = parser.parse_args()
    rows = []
    try:
        server = shared_server()
        for replicas in args.replicas:
            url = server.new_database()
            store = SqlStore(url)
            store.migrate()
            store.close()
            with tempfile.TemporaryDirectory(prefix="pushpool-race-") as scratch:
                r = race(
                    url,
                    Path(scratch),
                    replicas=replicas,
                    runs=args.runs,
                    limit=args.limit,
                    flow_seconds=args.flow_seconds,
                    timeout=1200,
                )
            print(r.summary(), flush=True)
            rows.append(
                [
                    replicas,
                    r.runs,
                    f"{r.seconds:.1f}",
                    r.states.get("COMPLETED", 0),
                    sum(r.executions.values()),
                    r.duplicates,
                    r.missing,
                    r.peak_executing,
                    r.peak_active,
                    len(r.errors),
                ]
            )
    finally:
        stop_shared_server()
    print()
    print(f"Concurrency limit {args.limit}; each flow sleeps {args.flow_seconds} s")
    headers = ["replicas", "runs", "wall s", "completed", "executed", "duplicates"]
    headers += ["missing", "peak executing", "peak ACTIVE", "errors"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
