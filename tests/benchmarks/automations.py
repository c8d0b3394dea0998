"""Benchmark: evaluating automations as events are recorded, with many stored.

    python -m tests.benchmarks.automations [--automations 1000] [--events 100000]
        [--dynamodb-events 2000] [--proactive-only]

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

Proactive triggers (the tick's pass over the due index), on SQLite with ``--events``
events and on DynamoDB (moto, in process) with ``--dynamodb-events``: ``--automations``
proactive automations, each armed (one instance each: no ``for_each``), 10 of them due.
Measured per pass (median of ``--repeats``; each pass at a time 2 h after the last, so
the 10 hourly ones are due again and the others, due in 31 days, are not): the pass
that fires the 10 (the due query, 10 firings with their jobs and events, 10 deadline
moves), the pass right after it with nothing due (one indexed query), and a ``record``
of an expected event (the evaluation moves its deadline: a read and a conditional
write). On DynamoDB the calls per pass are counted: the figure that matters there
(moto answers a GSI query by scanning the table in Python, so its wall times grow with
the table, unlike DynamoDB's).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from service import automations, events
from service.automation_records import Automation
from service.event_records import Resource, new_event
from service.store.base import Store
from tests.benchmarks._common import load_note, table
from tests.benchmarks.events import NOW, fill, moto_store, timed

#: Proactive automations due at each measured pass.
DUE = 10
HOUR = timedelta(hours=1)


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


def populate_proactive(store: Store, n: int) -> None:
    """``n`` armed proactive automations: ``DUE`` expect an hourly event last seen 2 h
    before ``NOW`` (due), the rest a monthly one (due in 31 days)."""
    from service.automation_triggers import arm_on_creation

    for i in range(n):
        hourly = i < DUE
        created = NOW - 2 * HOUR if hourly else NOW
        a = automation(
            i,
            {
                "posture": "proactive",
                "expect": f"bench.heartbeat.{i}",
                "within": 3600 if hourly else 31 * 86400,
            },
        ).model_copy(update={"name": f"proactive-{i:05d}", "created_at": created})
        store.create_automation(a)
        arm_on_creation(store, a)


def proactive_cases(store: Store, now: datetime) -> dict[str, Callable[[], object]]:
    """The measured calls of one pass at ``now``, in order."""
    from service.automation_triggers import fire_due

    res = Resource(id="bench", labels={})
    return {
        "pass, 10 due": lambda: fire_due(store, now),
        "pass, none due": lambda: fire_due(store, now),
        "record": lambda: events.record(store, f"bench.heartbeat.{DUE}", res, now=now),
    }


def proactive_rows(
    label: str, store: Store, repeats: int, calls: Counter[str] | None
) -> list[list[str]]:
    """Median ms (and DynamoDB calls, if counted) of the tick's proactive pass."""
    samples: dict[str, list[float]] = {"pass, 10 due": [], "pass, none due": [], "record": []}
    counted: dict[str, Counter[str]] = {k: Counter() for k in samples}
    automations.invalidate(store)
    automations.cached(store)
    for r in range(repeats + 1):  # the first is the warm-up
        for case, fn in proactive_cases(store, NOW + 2 * HOUR * r).items():
            if calls is not None:
                calls.clear()
            started = time.perf_counter()
            out = fn()
            took = time.perf_counter() - started
            if case == "pass, 10 due":
                assert out == DUE, f"fired {out}, expected {DUE}"
            if r:
                samples[case].append(took)
                if calls is not None and r == 1:
                    counted[case] = Counter(calls)
    rows = []
    for case, values in samples.items():
        spent = ", ".join(f"{k} {v}" for k, v in sorted(counted[case].items())) or "-"
        rows.append([label, case, f"{statistics.median(values) * 1000:.2f}", spent])
    return rows


def sqlite_proactive(n_auto: int, n_events: int, repeats: int) -> list[list[str]]:
    from service.store.sql import SqlStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'proactive.db'}")
        store.migrate()
        try:
            print(f"  sqlite: {n_events:,} events stored in {fill(store, n_events):.1f} s")
            populate_proactive(store, n_auto)
            return proactive_rows(f"sqlite {n_events // 1000}k", store, repeats, None)
        finally:
            store.close()


def dynamodb_proactive(n_auto: int, n_events: int, repeats: int) -> list[list[str]]:
    with moto_store() as store:
        print(f"  dynamodb/moto: {n_events:,} events stored in {fill(store, n_events):.1f} s")
        populate_proactive(store, n_auto)
        calls: Counter[str] = Counter()

        def seen(model: Any, **_: Any) -> None:
            calls[model.name] += 1

        store.client.meta.events.register("before-call.dynamodb.*", seen)
        return proactive_rows(f"dynamodb/moto {n_events // 1000}k", store, repeats, calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--automations", type=int, default=1000, help="automations stored")
    ap.add_argument("--events", type=int, default=100_000, help="events stored")
    ap.add_argument("--dynamodb-events", type=int, default=2000, help="events on moto")
    ap.add_argument("--repeats", type=int, default=20, help="measured calls per case (median)")
    ap.add_argument("--proactive-only", action="store_true", help="only the proactive part")
    args = ap.parse_args()
    from service.store.sql import SqlStore

    automations.CACHE_SECONDS = 3600.0  # measure evaluation, not the refresh, per record
    print(f"pushpool automations benchmark ({load_note()})")
    if not args.proactive_only:
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
    print(f"proactive: {args.automations:,} armed automations, {DUE} due per pass", flush=True)
    proactive = sqlite_proactive(args.automations, args.events, args.repeats)
    proactive += dynamodb_proactive(args.automations, args.dynamodb_events, args.repeats)
    print(table(["store", "operation", "median ms", "DynamoDB calls"], proactive))
    print(f"  ({load_note()})", flush=True)


if __name__ == "__main__":
    main()
