"""Listing runs by when they began (the default "most recent" listing), in every store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from store.test_conformance import T0, deployment, issue, pool, run

from service.models import Deployment, StateRecord
from service.store.base import RunFilter, Store, TransitionEffects
from service.vocabulary import StateType

M = timedelta(minutes=1)


@pytest.fixture
def dep(store: Store) -> Deployment:
    store.create_pool(pool())
    return store.upsert_deployment(deployment(), [])[0]


def _to(
    store: Store, run_id: str, frm: StateType, to: StateType, at: object, **fields: object
) -> None:
    state = StateRecord(type=to, name=to.value.title(), timestamp=at)  # type: ignore[arg-type]
    store.transition(run_id, frm, state, TransitionEffects(fields=dict(fields)))


@pytest.fixture
def runs(store: Store, dep: Deployment) -> dict[str, str]:
    """``late``: expected an hour before ``ran`` but claimed after it ran; ``ran``: ran
    and finished; ``cancelled``: cancelled while scheduled; ``upcoming``: not begun."""
    late = store.create_run(run(dep, start=T0 - 60 * M))[0].id
    ran = store.create_run(run(dep, start=T0))[0].id
    cancelled = store.create_run(run(dep, start=T0 - 120 * M))[0].id
    upcoming = store.create_run(run(dep, start=T0 + 120 * M))[0].id
    assert [r.id for r in store.claim_due_runs(T0 + M, 1, issue, run_ids=[ran])] == [ran]
    _to(store, ran, StateType.PENDING, StateType.RUNNING, T0 + 2 * M, start_time=T0 + 2 * M)
    _to(store, ran, StateType.RUNNING, StateType.COMPLETED, T0 + 5 * M, end_time=T0 + 5 * M)
    assert [r.id for r in store.claim_due_runs(T0 + 10 * M, 1, issue, run_ids=[late])] == [late]
    _to(store, cancelled, StateType.SCHEDULED, StateType.CANCELLED, T0 + 20 * M)
    return {"late": late, "ran": ran, "cancelled": cancelled, "upcoming": upcoming}


def _ids(store: Store, flt: RunFilter, limit: int = 50) -> list[str]:
    return [r.id for r in store.list_runs(flt, limit).items]


def test_most_recent_first_by_when_runs_began_not_expected_start(
    store: Store, runs: dict[str, str]
) -> None:
    began = RunFilter(by_began=True)
    assert _ids(store, began) == [runs["cancelled"], runs["late"], runs["ran"]]
    # by expected start, the upcoming run comes first and the late one after the one that ran
    assert _ids(store, RunFilter())[:2] == [runs["upcoming"], runs["ran"]]
    assert store.count_runs(began) == 3


def test_since_and_before_filter_on_when_runs_began(store: Store, runs: dict[str, str]) -> None:
    since = RunFilter(by_began=True, since=T0 + 3 * M)
    assert _ids(store, since) == [runs["cancelled"], runs["late"]]
    assert store.count_runs(since) == 2
    both = RunFilter(by_began=True, since=T0 + 3 * M, before=T0 + 15 * M)
    assert _ids(store, both) == [runs["late"]]
    assert store.count_runs(both) == 1
    # by expected start, `since` T0-30m would keep the late run out
    assert runs["late"] not in _ids(store, RunFilter(since=T0 - 30 * M))
    assert runs["late"] in _ids(store, RunFilter(by_began=True, since=T0 - 30 * M))


def test_pages_and_counts_from_a_cursor(store: Store, runs: dict[str, str]) -> None:
    flt = RunFilter(by_began=True)
    seen, cursor = [], None
    while True:
        page = store.list_runs(flt, 1, cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert store.count_runs(flt, cursor) == 3 - len(seen)
    assert seen == [runs["cancelled"], runs["late"], runs["ran"]]
    with_floor = RunFilter(by_began=True, since=T0 + 3 * M)
    first = store.list_runs(with_floor, 1)
    assert first.next_cursor is not None
    assert store.count_runs(with_floor, first.next_cursor) == 1


def test_other_filters_combine_with_began(
    store: Store, runs: dict[str, str], dep: Deployment
) -> None:
    pending = RunFilter(by_began=True, states=[StateType.PENDING])
    assert _ids(store, pending) == [runs["late"]]
    mine = RunFilter(by_began=True, deployment_id=dep.id, states=[StateType.COMPLETED])
    assert _ids(store, mine) == [runs["ran"]]
    assert _ids(store, RunFilter(by_began=True, deployment_id="other")) == []
    late = store.get_run(runs["late"])
    assert _ids(store, RunFilter(by_began=True, name=late.name)) == [late.id]
    upcoming = store.get_run(runs["upcoming"])
    assert _ids(store, RunFilter(by_began=True, id_prefix=upcoming.id[:8])) == []
    assert _ids(store, RunFilter(id_prefix=upcoming.id[:8])) == [upcoming.id]


def test_a_retried_run_begins_again_when_it_runs_again(store: Store, runs: dict[str, str]) -> None:
    late = runs["late"]
    _to(store, late, StateType.PENDING, StateType.RUNNING, T0 + 40 * M, start_time=T0 + 40 * M)
    _to(store, late, StateType.RUNNING, StateType.FAILED, T0 + 41 * M)
    _to(store, late, StateType.FAILED, StateType.SCHEDULED, T0 + 41 * M)  # awaiting retry
    assert _ids(store, RunFilter(by_began=True))[0] == late  # listed by its last start
    (again,) = store.claim_due_runs(T0 + 50 * M, 1, issue, run_ids=[late])
    assert again.run_count == 2
    _to(store, late, StateType.PENDING, StateType.RUNNING, T0 + 51 * M, start_time=T0 + 51 * M)
    assert _ids(store, RunFilter(by_began=True, since=T0 + 51 * M)) == [late]
