"""Benchmark: evaluating automations as events are recorded, with many stored.

    python -m tests.benchmarks.automations [--automations 1000] [--events 100000]

Setup (reported, not measured): SQLite in a temporary directory holding ``--events``
events (the corpus of :mod:`tests.benchmarks.events`) and ``--automations`` automations:
all but two watch names no event has (``custom.never.<i>``); one fires on every
``bench.fire`` event (threshold 1), one counts ``pushpool.flow-run.Failed`` per
deployment (threshold 1,000 within a day: it reads, never fires).

Measured (median of ``--repeats`` calls, warm cache): one ``service.events.record`` —
the event's write plus the evaluation — for an event no automation matches, one that
fires (the firing's conditional write with its job, and the ``triggered`` event), and one
a threshold counts (a read of its window's events, up to the threshold); the evaluation
alone (no write) of an event no automation watches; and the cache refresh (reading and
indexing every automation, once per 5 s per process).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path

from service import automations, events
from service.automation_records import Automation
from service.event_records import Resource, new_event
from service.store.base import Store
from tests.benchmarks._common import table
from tests.benchmarks.events import NOW, fill, timed


def automation(i: int, trigger: dict[str, object]) -> Automation:
    return Automation.model_validate(
        {
            "id": f"id-{i}",
            "name": f"auto-{i:05d}",
            "trigger": trigger,
            "actions": [{"type": "pause-deployment", "deployment": "f/d"}],
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def populate(store: Store, n: int) -> None:
    for i in range(n - 2):
        store.create_automation(automation(i, {"event": f"custom.never.{i}"}))
    store.create_automation(automation(n - 2, {"event": "bench.fire"}))
    counting = {
        "event": "pushpool.flow-run.Failed",
        "threshold": 1000,
        "within": 86400,
        "for_each": "deployment",
    }
    store.create_automation(automation(n - 1, counting))


def rows(store: Store, n_auto: int, repeats: int) -> list[list[str]]:
    res = Resource(id="pushpool.flow-run.bench", labels={"deployment": "dep-3"})
    at = NOW - timedelta(hours=1)
    other = new_event("other.thing", res, occurred=at)
    cases = {
        "record, none matches": lambda: events.record(store, "other.thing", res, now=at),
        "record, fires (threshold 1)": lambda: events.record(store, "bench.fire", res, now=at),
        "record, threshold counts": lambda: events.record(
            store, "pushpool.flow-run.Failed", res, now=at
        ),
        "evaluation alone, none matches": lambda: automations.react(store, [other]),
        f"cache refresh ({n_auto:,} automations)": lambda: automations.Watching.of(
            store.list_automations()
        ),
    }
    automations.cached(store)
    return [[case, f"{timed(fn, repeats) * 1000:.2f}"] for case, fn in cases.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--automations", type=int, default=1000, help="automations stored")
    ap.add_argument("--events", type=int, default=100_000, help="events stored")
    ap.add_argument("--repeats", type=int, default=20, help="measured calls per case (median)")
    args = ap.parse_args()
    from service.store.sql import SqlStore

    automations.CACHE_SECONDS = 3600.0  # measure evaluation, not the refresh, per record
    print("pushpool automations benchmark (sqlite)")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.db'}")
        store.migrate()
        try:
            print(f"  {args.events:,} events stored in {fill(store, args.events):.1f} s")
            populate(store, args.automations)
            measured = rows(store, args.automations, args.repeats)
        finally:
            store.close()
    print(table(["operation", "median ms"], measured), flush=True)


if __name__ == "__main__":
    main()
