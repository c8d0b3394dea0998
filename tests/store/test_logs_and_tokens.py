"""Store conformance, continued: run-token exchange and logs stored exactly once, capped,
paged by size and deleted with their runs (every backend in ``STORE_FACTORIES``)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from store.test_conformance import T0, deployment, pool, run

from service.models import Deployment, LogLine
from service.states import StateType
from service.store.base import LogLimits, Store

LIMITS = LogLimits(max_lines=5, max_bytes=1000)


@pytest.fixture
def dep(store: Store) -> Deployment:
    store.create_pool(pool())
    return store.upsert_deployment(deployment(), [])[0]


def lines(run_id: str, *texts: str) -> list[LogLine]:
    return [LogLine(run_id=run_id, timestamp=T0, message=t) for t in texts]


def messages(store: Store, run_id: str) -> list[str]:
    return [x.message for x in store.read_logs(run_id)]


def test_replace_token_is_a_compare_and_set(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    (claimed,) = store.claim_due_runs(T0, 1, lambda _: "bootstrap-hash")
    assert claimed.id == r.id
    assert store.replace_token(r.id, "bootstrap-hash", "token-hash")
    assert store.get_run(r.id).token_hash == "token-hash"
    assert not store.replace_token(r.id, "bootstrap-hash", "other-hash")  # spent
    assert store.get_run(r.id).token_hash == "token-hash"
    assert not store.replace_token("no-such-run", "a", "b")


def test_a_resent_batch_is_stored_once(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    assert store.append_logs(r.id, lines(r.id, "a", "b"), batch=(1, 0))
    assert not store.append_logs(r.id, lines(r.id, "a", "b"), batch=(1, 0))
    assert store.append_logs(r.id, lines(r.id, "c"), batch=(1, 1))
    assert store.append_logs(r.id, lines(r.id, "again"), batch=(2, 0))  # another attempt
    assert messages(store, r.id) == ["a", "b", "c", "again"]


def test_concurrent_copies_of_a_batch_are_stored_once(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    results: list[bool] = []

    def send() -> None:
        results.append(store.append_logs(r.id, lines(r.id, "x", "y"), batch=(1, 7)))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert messages(store, r.id) == ["x", "y"]
    assert sorted(results) == [False, False, False, True]


def test_logs_are_capped_with_one_growing_marker(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.append_logs(r.id, lines(r.id, "1", "2", "3"), limits=LIMITS)
    store.append_logs(r.id, lines(r.id, "4", "5", "6", "7"), limits=LIMITS)
    store.append_logs(r.id, lines(r.id, "8"), limits=LIMITS)
    stored = messages(store, r.id)
    assert stored[:5] == ["1", "2", "3", "4", "5"]
    assert len(stored) == 6
    assert stored[5].startswith("3 log line(s) (3 bytes) dropped")
    assert "5 lines and 1000 bytes" in stored[5]


def test_logs_are_capped_by_bytes(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.append_logs(r.id, lines(r.id, "x" * 600, "y" * 600, "z"), limits=LIMITS)
    stored = messages(store, r.id)
    assert stored[0] == "x" * 600
    assert stored[1].startswith("2 log line(s) (601 bytes) dropped")  # no holes: z goes too
    assert len(stored) == 2


def test_log_reads_are_paged_by_size(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.append_logs(r.id, lines(r.id, "a" * 40, "b" * 40, "c" * 40))
    page = store.read_logs(r.id, max_bytes=100)
    assert [len(x.message) for x in page] == [40, 40]
    rest = store.read_logs(r.id, after_id=page[-1].id, max_bytes=10)
    assert [x.message for x in rest] == ["c" * 40]  # always at least one line


def test_logs_go_with_their_runs_and_deployments(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    other, _ = store.create_run(run(dep, start=T0 + timedelta(minutes=1)))
    store.append_logs(r.id, lines(r.id, "a"), batch=(1, 0), limits=LIMITS)
    store.append_logs(other.id, lines(other.id, "b"))
    assert store.delete_logs(run_ids=[r.id]) == 1
    assert messages(store, r.id) == []
    # Its batch and cap records went too: the same batch number is new again.
    assert store.append_logs(r.id, lines(r.id, "a"), batch=(1, 0), limits=LIMITS)
    store.claim_due_runs(T0 + timedelta(minutes=5), 10, lambda _: "h")
    assert store.get_run(r.id).state.type == StateType.PENDING
    store.delete_deployment(dep.id)
    assert messages(store, r.id) == [] and messages(store, other.id) == []


def test_old_logs_expire(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    old = LogLine(run_id=r.id, timestamp=T0 - timedelta(days=40), message="old")
    store.append_logs(r.id, [old, *lines(r.id, "new")])
    deleted = store.delete_logs(before=T0 - timedelta(days=30))
    if store.expires_logs:  # lines carry their own expiry (DynamoDB TTL)
        assert deleted == 0
        return
    assert deleted == 1
    assert messages(store, r.id) == ["new"]


def test_lines_keep_their_task_run_and_filter_by_it(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    written = [
        LogLine(run_id=r.id, timestamp=T0, message=f"{who}-{i}", task_run_id=who)
        for i in range(3)
        for who in ("t1", "t2", None)
    ]
    store.append_logs(r.id, written, batch=(1, 0))
    stored = store.read_logs(r.id)
    assert [(x.message, x.task_run_id) for x in stored] == [
        (x.message, x.task_run_id) for x in written
    ]
    t1 = store.read_logs(r.id, task_run_id="t1")
    assert [x.message for x in t1] == ["t1-0", "t1-1", "t1-2"]
    page = store.read_logs(r.id, task_run_id="t2", after_id=t1[0].id, limit=2)
    assert [x.message for x in page] == ["t2-0", "t2-1"]
    assert [x.message for x in store.read_logs_tail(r.id, 2, task_run_id="t1")] == [
        "t1-1",
        "t1-2",
    ]
    assert store.read_logs(r.id, task_run_id="t9") == []


def test_tail_pages_backwards_before_an_id(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    other, _ = store.create_run(run(dep))
    store.append_logs(r.id, lines(r.id, *(f"m{i}" for i in range(2500))))
    store.append_logs(other.id, lines(other.id, "elsewhere"))
    newest = store.read_logs_tail(r.id, 1000)
    assert [x.message for x in newest[:1]] == ["m1500"] and newest[-1].message == "m2499"
    page = store.read_logs_tail(r.id, 1000, before_id=newest[0].id)
    assert [x.message for x in page] == [f"m{i}" for i in range(500, 1500)]
    last = store.read_logs_tail(r.id, 1000, before_id=page[0].id)
    assert [x.message for x in last] == [f"m{i}" for i in range(500)]
    assert store.read_logs_tail(r.id, 1000, before_id=last[0].id) == []
