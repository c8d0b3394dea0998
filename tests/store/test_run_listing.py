"""Finding runs, in every store: names, id prefixes, flow, tag, since, oldest-first, counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from store.test_conformance import T0, deployment, pool, run

from service.models import Deployment
from service.run_names import run_name
from service.store.base import RunFilter, Store


@pytest.fixture
def dep(store: Store) -> Deployment:
    store.create_pool(pool())
    return store.upsert_deployment(deployment(), [])[0]


def _ids(store: Store, flt: RunFilter, limit: int = 100) -> list[str]:
    return [r.id for r in store.list_runs(flt, limit).items]


def test_a_run_gets_a_name_from_its_id_unless_given_one(store: Store, dep: Deployment) -> None:
    plain, _ = store.create_run(run(dep))
    named, _ = store.create_run(run(dep, name="nightly-backfill"))
    assert plain.name == run_name(plain.id) and "-" in plain.name
    assert store.get_run(plain.id).name == plain.name
    assert store.get_run(named.id).name == "nightly-backfill"
    assert _ids(store, RunFilter(name="nightly-backfill")) == [named.id]


def test_filters_by_id_prefix_flow_tag_and_since(store: Store, dep: Deployment) -> None:
    old, _ = store.create_run(run(dep, start=T0 - timedelta(days=2), tags=["etl", "nightly"]))
    new, _ = store.create_run(run(dep, start=T0, tags=["etl_v2"]))
    assert _ids(store, RunFilter(id_prefix=old.id[:8])) == [old.id]
    assert _ids(store, RunFilter(id_prefix="%")) == []  # no wildcard reading
    assert _ids(store, RunFilter(tag="etl")) == [old.id]  # not the "etl_v2" run
    assert _ids(store, RunFilter(tag="nightly")) == [old.id]
    assert _ids(store, RunFilter(since=T0 - timedelta(days=1))) == [new.id]
    assert _ids(store, RunFilter(flow_name="flow")) == [new.id, old.id]
    assert _ids(store, RunFilter(flow_name="other")) == []


def test_oldest_first_pages_and_counts(store: Store, dep: Deployment) -> None:
    made = [store.create_run(run(dep, start=T0 + timedelta(minutes=i)))[0].id for i in range(7)]
    flt = RunFilter(ascending=True)
    seen, cursor = [], None
    while True:
        page = store.list_runs(flt, 3, cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert store.count_runs(flt, cursor) == 7 - len(seen)
    assert seen == made
    assert store.count_runs(RunFilter()) == 7
    assert store.count_runs(RunFilter(), at_most=5) == 5
    assert store.count_runs(RunFilter(since=T0 + timedelta(minutes=5))) == 2
    assert _ids(store, RunFilter(ascending=True, since=T0 + timedelta(minutes=5))) == made[5:]
    assert _ids(store, RunFilter(before=T0 + timedelta(minutes=2))) == made[1::-1]
    assert _ids(store, RunFilter(ascending=True, before=T0 + timedelta(minutes=2))) == made[:2]
    assert store.count_runs(RunFilter(before=T0 + timedelta(minutes=2))) == 2


def test_log_tail_is_the_last_lines_in_order(store: Store, dep: Deployment) -> None:
    from service.models import LogLine

    r, _ = store.create_run(run(dep))
    for batch in range(3):
        lines = [LogLine(run_id=r.id, timestamp=T0, message=f"{batch}-{i}") for i in range(350)]
        store.append_logs(r.id, lines)
    tail = store.read_logs_tail(r.id, 5)
    assert [x.message for x in tail] == [f"2-{i}" for i in range(345, 350)]
    assert store.read_logs_tail(r.id, 5000)[0].message == "0-0"
    assert store.read_logs_tail("no-such-run", 3) == []
