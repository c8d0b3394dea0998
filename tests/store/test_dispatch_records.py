"""Recording the infrastructure of a batch of submitted runs, in every store."""

from __future__ import annotations

import pytest
from store.test_conformance import T0, issue, run

from service.models import Deployment, FlowRun, InfraRef, StateRecord
from service.store.base import Store
from service.vocabulary import StateType


def _claimed(store: Store, dep: Deployment, n: int) -> list[FlowRun]:
    for _ in range(n):
        store.create_run(run(dep))
    claimed = store.claim_due_runs(T0, n, issue)
    assert len(claimed) == n
    return claimed


def _to(store: Store, run_id: str, frm: StateType, to: StateType) -> None:
    store.transition(run_id, frm, StateRecord(type=to, name=to.value.title(), timestamp=T0))


def test_infra_of_a_batch_is_recorded_for_runs_still_on_their_attempt(
    store: Store, dep: Deployment
) -> None:
    pending, running, cancelled = _claimed(store, dep, 3)
    _to(store, running.id, StateType.PENDING, StateType.RUNNING)  # its runner was quick
    _to(store, cancelled.id, StateType.PENDING, StateType.CANCELLED)
    refs = {
        r.id: InfraRef(type="process", id=f"infra-{r.id}") for r in (pending, running, cancelled)
    }
    done = store.set_infra_many([(r, refs[r.id]) for r in (pending, running, cancelled)])
    assert done == {pending.id, running.id}
    assert store.get_run(pending.id).infra == refs[pending.id]
    assert store.get_run(running.id).infra == refs[running.id]
    assert store.get_run(cancelled.id).infra is None
    assert store.set_infra_many([]) == set()


def test_infra_is_not_recorded_on_a_later_attempt(store: Store, dep: Deployment) -> None:
    (first,) = _claimed(store, dep, 1)
    _to(store, first.id, StateType.PENDING, StateType.SCHEDULED)  # requeued meanwhile
    (second,) = store.claim_due_runs(T0, 1, issue)
    assert second.run_count == first.run_count + 1
    assert store.set_infra_many([(first, InfraRef(type="process", id="stale"))]) == set()
    assert store.get_run(first.id).infra is None


@pytest.fixture
def dep(store: Store) -> Deployment:
    from store.test_conformance import deployment, pool

    store.create_pool(pool())
    return store.upsert_deployment(deployment(), [])[0]


def test_deployments_are_read_by_ids_at_once(store: Store, dep: Deployment) -> None:
    from store.test_conformance import deployment

    other = store.upsert_deployment(deployment("e"), [])[0]
    found = store.get_deployments([dep.id, other.id, "no-such-id", dep.id])
    assert found == {dep.id: dep, other.id: other}
    assert store.get_deployments([]) == {}
