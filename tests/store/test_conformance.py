"""The Store conformance suite: every backend must pass all of it (see ``STORE_FACTORIES``)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from service.errors import (
    AlreadyExists,
    ApiKeyNotFound,
    ConcurrencyLimitNotFound,
    Conflict,
    DeploymentNotFound,
    IllegalTransition,
    InvalidInput,
    PoolNotFound,
    RunNotFound,
)
from service.models import (
    ApiKey,
    CacheRecord,
    ConcurrencyLimit,
    Deployment,
    FlowRun,
    InfraRef,
    LogLine,
    Role,
    ScheduleRecord,
    StateRecord,
    TaskRun,
    WorkPool,
)
from service.schedules import CronSchedule
from service.states import StateType
from service.store.base import Materialisation, RunFilter, Store, TransitionEffects

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def pool(name: str = "p", **kw: object) -> WorkPool:
    return WorkPool(name=name, type="process", created_at=T0, updated_at=T0, **kw)  # type: ignore[arg-type]


def deployment(name: str = "d", pool_name: str = "p", **kw: object) -> Deployment:
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "name": name,
        "flow_name": "flow",
        "entrypoint": "f.py:flow",
        "work_pool": pool_name,
        "source": {"type": "image"},
        "created_at": T0,
        "updated_at": T0,
    }
    return Deployment.model_validate(fields | kw)


def run(dep: Deployment, *, start: datetime = T0, key: str | None = None, **kw: object) -> FlowRun:
    created = kw.pop("created_at", T0)
    return FlowRun(
        id=str(uuid.uuid4()),
        deployment_id=dep.id,
        flow_name=dep.flow_name,
        deployment_name=dep.name,
        work_pool=dep.work_pool,
        state=StateRecord(type=StateType.SCHEDULED, name="Scheduled", timestamp=T0),
        expected_start=start,
        idempotency_key=key,
        created_at=created,
        updated_at=created,
        **kw,  # type: ignore[arg-type]
    )


def issue(run_id: str) -> str:
    return f"hash-{run_id}"


@pytest.fixture
def dep(store: Store) -> Deployment:
    store.create_pool(pool())
    d, created = store.upsert_deployment(deployment(), [])
    assert created
    return d


# -- pools ---------------------------------------------------------------------------
def test_pool_lifecycle(store: Store) -> None:
    store.create_pool(pool("a"))
    store.create_pool(pool("b", concurrency_limit=2))
    with pytest.raises(AlreadyExists):
        store.create_pool(pool("a"))
    assert [p.name for p in store.list_pools()] == ["a", "b"]
    updated = store.update_pool("a", {"paused": True, "config": {"x": 1}}, T0 + timedelta(1))
    assert updated.paused and updated.config == {"x": 1} and updated.updated_at > T0
    for field in ("name", "created_at", "active"):
        with pytest.raises(InvalidInput) as bad:
            store.update_pool("a", {"paused": False, field: "x"}, T0 + timedelta(2))
        assert bad.value.field == field
    assert store.get_pool("a") == updated  # nothing applied
    store.delete_pool("b")
    with pytest.raises(PoolNotFound) as info:
        store.get_pool("b")
    assert info.value.ident == "b" and isinstance(info.value, LookupError)
    with pytest.raises(PoolNotFound):
        store.update_pool("zz", {"paused": True}, T0)
    with pytest.raises(PoolNotFound):
        store.delete_pool("zz")


def test_pool_in_use_cannot_be_deleted(store: Store, dep: Deployment) -> None:
    with pytest.raises(Conflict):
        store.delete_pool("p")
    assert store.get_pool("p")


def test_pool_with_live_runs_cannot_be_deleted(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.claim_due_runs(T0, 1, issue)
    store.delete_deployment(dep.id)
    with pytest.raises(Conflict):
        store.delete_pool("p")
    store.transition(r.id, StateType.PENDING, _to(StateType.CRASHED))
    store.delete_pool("p")


# -- deployments -------------------------------------------------------------------------
def test_upsert_keeps_identity(store: Store, dep: Deployment) -> None:
    again, created = store.upsert_deployment(deployment(entrypoint="g.py:flow"), [])
    assert not created
    assert again.id == dep.id and again.created_at == dep.created_at
    assert store.get_deployment(dep.id).entrypoint == "g.py:flow"
    assert store.find_deployment("flow", "d").id == dep.id
    assert len(store.list_deployments()) == 1


def test_deployment_needs_pool(store: Store) -> None:
    with pytest.raises(PoolNotFound):
        store.upsert_deployment(deployment(pool_name="nope"), [])
    assert store.list_deployments() == []


def test_deployment_lookups_raise(store: Store) -> None:
    with pytest.raises(DeploymentNotFound):
        store.get_deployment("x")
    with pytest.raises(DeploymentNotFound):
        store.find_deployment("f", "n")
    with pytest.raises(DeploymentNotFound):
        store.delete_deployment("x")


def test_delete_deployment_removes_scheduled_runs_only(store: Store, dep: Deployment) -> None:
    future, _ = store.create_run(run(dep, start=T0 + timedelta(hours=1)))
    done, _ = store.create_run(run(dep))
    store.transition(
        done.id,
        StateType.SCHEDULED,
        StateRecord(type=StateType.CANCELLED, name="Cancelled", timestamp=T0),
    )
    store.delete_deployment(dep.id)
    with pytest.raises(RunNotFound):
        store.get_run(future.id)
    assert store.get_run(done.id).state.type == StateType.CANCELLED


def _sched(dep: Deployment, cron: str, cursor: datetime | None) -> ScheduleRecord:
    return ScheduleRecord(
        id=f"{dep.id}:{cron}",
        deployment_id=dep.id,
        schedule=CronSchedule(cron=cron),
        next_fire_at=cursor,
    )


def test_schedules_replace_keeps_cursor_and_drops_removed_runs(
    store: Store, dep: Deployment
) -> None:
    a, b = _sched(dep, "0 * * * *", T0), _sched(dep, "30 * * * *", T0)
    store.upsert_deployment(deployment(), [a, b])
    auto = run(dep, start=T0 + timedelta(hours=1), schedule_id=b.id, auto_scheduled=True)
    store.materialise([Materialisation(b.id, [auto], T0 + timedelta(hours=2))])
    store.materialise([Materialisation(a.id, [], T0 + timedelta(hours=5))])
    # Redeploy: a unchanged (cursor given again but the stored one wins), b removed.
    store.upsert_deployment(deployment(), [_sched(dep, "0 * * * *", T0)])
    (kept,) = store.get_schedules(dep.id)
    assert kept.id == a.id and kept.next_fire_at == T0 + timedelta(hours=5)
    with pytest.raises(RunNotFound):
        store.get_run(auto.id)


def test_due_schedules(store: Store, dep: Deployment) -> None:
    store.create_pool(pool("q"))
    paused, _ = store.upsert_deployment(deployment("paused", "q", paused=True), [])
    store.upsert_deployment(
        deployment(),
        [_sched(dep, "0 * * * *", T0), _sched(dep, "5 * * * *", T0 + timedelta(hours=3))],
    )
    store.upsert_deployment(
        deployment("paused", "q", paused=True), [_sched(paused, "* * * * *", T0)]
    )
    due = store.due_schedules(T0 + timedelta(minutes=1), 10)
    assert [(s.id, d.id) for s, d in due] == [(f"{dep.id}:0 * * * *", dep.id)]


def test_materialise_is_idempotent_and_cursor_moves_forward(store: Store, dep: Deployment) -> None:
    rec = _sched(dep, "0 * * * *", T0)
    store.upsert_deployment(deployment(), [rec])
    runs = [run(dep, start=T0, auto_scheduled=True, schedule_id=rec.id)]
    assert store.materialise([Materialisation(rec.id, runs, T0 + timedelta(hours=2))]) == 1
    assert store.materialise([Materialisation(rec.id, runs, T0 + timedelta(hours=1))]) == 0
    assert store.get_schedules(dep.id)[0].next_fire_at == T0 + timedelta(hours=2)


def test_concurrent_materialise_creates_once(store: Store, dep: Deployment) -> None:
    rec = _sched(dep, "0 * * * *", T0)
    store.upsert_deployment(deployment(), [rec])
    runs = [run(dep, start=T0 + timedelta(hours=i), auto_scheduled=True) for i in range(20)]
    created: list[int] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        created.append(store.materialise([Materialisation(rec.id, runs, T0 + timedelta(days=1))]))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(created) == 20
    assert len(store.list_runs(RunFilter(), 100).items) == 20


def test_reset_schedules(store: Store, dep: Deployment) -> None:
    rec = _sched(dep, "0 * * * *", T0)
    store.upsert_deployment(deployment(), [rec])
    auto = run(dep, start=T0 + timedelta(hours=1), auto_scheduled=True, schedule_id=rec.id)
    adhoc = run(dep, start=T0 + timedelta(hours=1))
    store.materialise([Materialisation(rec.id, [auto], T0 + timedelta(hours=2))])
    store.create_run(adhoc)
    assert store.reset_schedules(dep.id, {rec.id: T0 + timedelta(days=1)}) == 1
    assert store.get_schedules(dep.id)[0].next_fire_at == T0 + timedelta(days=1)
    assert store.get_run(adhoc.id)


# -- runs ------------------------------------------------------------------------------------
def test_create_and_get_run(store: Store, dep: Deployment) -> None:
    r, created = store.create_run(run(dep, parameters={"x": [1, 2]}, tags=["t"]))
    assert created
    got = store.get_run(r.id)
    assert got.parameters == {"x": [1, 2]} and got.tags == ["t"]
    assert got.state.type == StateType.SCHEDULED
    assert [s.type for s in store.state_history(r.id)] == [StateType.SCHEDULED]
    with pytest.raises(RunNotFound):
        store.get_run("missing")


def test_idempotency_key(store: Store, dep: Deployment) -> None:
    first, created = store.create_run(run(dep, key="k1"))
    again, created_again = store.create_run(run(dep, key="k1"))
    assert created and not created_again and again.id == first.id
    other, created_other = store.create_run(run(dep, key="k2"))
    assert created_other and other.id != first.id


def test_list_runs_paginates_newest_first(store: Store, dep: Deployment) -> None:
    ids = [store.create_run(run(dep, start=T0 + timedelta(seconds=i)))[0].id for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_runs(RunFilter(deployment_id=dep.id), 3, cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(ids))
    assert store.list_runs(RunFilter(states=[StateType.RUNNING]), 10).items == []
    with pytest.raises(InvalidInput) as info:
        store.list_runs(RunFilter(), 3, "garbage!")
    assert info.value.field == "cursor"


# -- claims ------------------------------------------------------------------------------------
def test_claim_only_due_runs(store: Store, dep: Deployment) -> None:
    due, _ = store.create_run(run(dep, start=T0 - timedelta(seconds=1)))
    store.create_run(run(dep, start=T0 + timedelta(seconds=1)))
    claimed = store.claim_due_runs(T0, 10, issue)
    assert [r.id for r in claimed] == [due.id]
    c = claimed[0]
    assert c.state.type == StateType.PENDING and c.run_count == 1
    assert c.token_hash == f"hash-{due.id}"
    assert store.claim_due_runs(T0, 10, issue) == []


def test_claim_respects_paused_pool_and_run_ids(store: Store, dep: Deployment) -> None:
    a, _ = store.create_run(run(dep))
    b, _ = store.create_run(run(dep))
    assert [r.id for r in store.claim_due_runs(T0, 10, issue, run_ids=[b.id])] == [b.id]
    store.update_pool("p", {"paused": True}, T0)
    assert store.claim_due_runs(T0, 10, issue) == []
    store.update_pool("p", {"paused": False}, T0)
    assert [r.id for r in store.claim_due_runs(T0, 10, issue)] == [a.id]


@pytest.mark.parametrize("where", ["pool", "deployment"])
def test_claim_respects_concurrency_limits_under_concurrency(store: Store, where: str) -> None:
    store.create_pool(pool(concurrency_limit=3 if where == "pool" else None))
    d, _ = store.upsert_deployment(
        deployment(concurrency_limit=3 if where == "deployment" else None), []
    )
    for _ in range(30):
        store.create_run(run(d))
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def claimer() -> None:
        barrier.wait()
        got = store.claim_due_runs(T0, 5, issue)
        with lock:
            claimed.extend(r.id for r in got)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(claimed) == len(set(claimed)) == 3


def _claim_while_another_is_in_flight(
    store: Store, first_ids: list[str], second_ids: list[str]
) -> int:
    """Claim ``first_ids`` in a thread whose transaction stays open (its token issuer
    sleeps) and ``second_ids`` meanwhile; the number of runs the two claimed."""
    inside = threading.Event()
    first: list[FlowRun] = []

    def slow_issue(run_id: str) -> str:
        inside.set()
        time.sleep(0.3)
        return issue(run_id)

    thread = threading.Thread(
        target=lambda: first.extend(store.claim_due_runs(T0, 5, slow_issue, run_ids=first_ids))
    )
    thread.start()
    assert inside.wait(10)
    second = store.claim_due_runs(T0, 5, issue, run_ids=second_ids)
    thread.join()
    return len(first) + len(second)


def test_pool_limit_holds_while_another_claim_is_in_flight(store: Store) -> None:
    store.create_pool(pool(concurrency_limit=3))
    d, _ = store.upsert_deployment(deployment(), [])
    ids = [store.create_run(run(d))[0].id for _ in range(10)]
    assert _claim_while_another_is_in_flight(store, ids[:5], ids[5:]) == 3


def test_deployment_limit_holds_across_pools_while_another_claim_is_in_flight(
    store: Store,
) -> None:
    """A deployment moved to another pool has runs in both: claims in the two pools
    still share the deployment's limit."""
    store.create_pool(pool("p"))
    store.create_pool(pool("q"))
    d, _ = store.upsert_deployment(deployment(concurrency_limit=3), [])
    in_p = [store.create_run(run(d))[0].id for _ in range(5)]
    moved, _ = store.upsert_deployment(deployment(pool_name="q", concurrency_limit=3), [])
    in_q = [store.create_run(run(moved))[0].id for _ in range(5)]
    assert _claim_while_another_is_in_flight(store, in_p, in_q) == 3


def test_claims_never_overlap(store: Store, dep: Deployment) -> None:
    for _ in range(40):
        store.create_run(run(dep))
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer() -> None:
        for _ in range(5):
            got = store.claim_due_runs(T0, 3, issue)
            with lock:
                claimed.extend(r.id for r in got)

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(claimed) == len(set(claimed)) == 40


# -- transitions -----------------------------------------------------------------------------
def _to(state: StateType, at: datetime = T0) -> StateRecord:
    return StateRecord(type=state, name=state.value.capitalize(), timestamp=at)


def test_transition_is_compare_and_set(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    (_claimed,) = store.claim_due_runs(T0, 1, issue)
    moved = store.transition(r.id, StateType.PENDING, _to(StateType.RUNNING))
    assert moved.state.type == StateType.RUNNING
    with pytest.raises(IllegalTransition) as info:
        store.transition(r.id, StateType.PENDING, _to(StateType.RUNNING))
    assert info.value.current == "RUNNING"
    assert [s.type for s in store.state_history(r.id)] == [
        StateType.SCHEDULED,
        StateType.PENDING,
        StateType.RUNNING,
    ]
    with pytest.raises(RunNotFound):
        store.transition("nope", StateType.PENDING, _to(StateType.RUNNING))


def test_transition_effects(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.claim_due_runs(T0, 1, issue)
    ref = InfraRef(type="process", id="x", data={"pid": 1})
    assert store.set_infra(r.id, StateType.PENDING, ref)
    assert not store.set_infra(r.id, StateType.RUNNING, ref)
    assert store.set_token(r.id, StateType.PENDING, "h2")
    assert store.get_run(r.id).token_hash == "h2"
    done = store.transition(
        r.id,
        StateType.PENDING,
        _to(StateType.CRASHED),
        TransitionEffects(fields={"error": {"exit_code": 137}}, teardown=True, revoke_token=True),
    )
    assert done.error == {"exit_code": 137} and done.token_hash is None
    assert done.infra == ref
    (td,) = store.pending_teardowns(10)
    assert td.run_id == r.id and td.infra == ref and td.work_pool == "p"
    store.finish_teardown(td.id)
    store.finish_teardown(td.id)
    assert store.pending_teardowns(10) == []


def test_claim_resets_infra_for_a_new_attempt(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.claim_due_runs(T0, 1, issue)
    store.set_infra(r.id, StateType.PENDING, InfraRef(type="process", id="a"))
    store.transition(r.id, StateType.PENDING, _to(StateType.CRASHED))
    store.transition(r.id, StateType.CRASHED, _to(StateType.SCHEDULED))
    (again,) = store.claim_due_runs(T0, 1, issue)
    assert again.run_count == 2 and again.infra is None


def test_runs_in_states_and_heartbeat(store: Store, dep: Deployment) -> None:
    late, _ = store.create_run(run(dep, start=T0 - timedelta(hours=1), auto_scheduled=True))
    store.create_run(run(dep, start=T0 - timedelta(hours=1)))
    found = store.runs_in_states(
        [StateType.SCHEDULED], 10, before=T0 - timedelta(minutes=1), auto_scheduled=True
    )
    assert [r.id for r in found] == [late.id]
    store.record_heartbeat(late.id, T0 + timedelta(seconds=5))
    assert store.get_run(late.id).heartbeat_at == T0 + timedelta(seconds=5)
    with pytest.raises(RunNotFound):
        store.record_heartbeat("nope", T0)


def test_next_scheduled_start(store: Store, dep: Deployment) -> None:
    assert store.next_scheduled_start(T0) is None
    store.create_run(run(dep, start=T0 - timedelta(minutes=1)))
    store.create_run(run(dep, start=T0 + timedelta(minutes=5)))
    store.create_run(run(dep, start=T0 + timedelta(minutes=2)))
    assert store.next_scheduled_start(T0) == T0 + timedelta(minutes=2)


# -- logs, keys, meta ----------------------------------------------------------------------
def test_logs_in_order_with_cursor(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.append_logs(
        r.id, [LogLine(run_id=r.id, timestamp=T0, message=f"line {i}") for i in range(5)]
    )
    first = store.read_logs(r.id, limit=3)
    assert [x.message for x in first] == ["line 0", "line 1", "line 2"]
    rest = store.read_logs(r.id, after_id=first[-1].id)
    assert [x.message for x in rest] == ["line 3", "line 4"]
    assert store.read_logs("other") == []


def task_run(ident: str, minute: int, **kw: object) -> TaskRun:
    return TaskRun.model_validate(
        {"id": ident, "task_key": "m.t", "name": ident, "state": "PENDING"}
        | {"created": T0 + timedelta(minutes=minute)}
        | kw
    )


def test_task_runs_latest_snapshot_wins_and_list_in_creation_order(
    store: Store, dep: Deployment
) -> None:
    r, _ = store.create_run(run(dep))
    other, _ = store.create_run(run(dep))
    store.upsert_task_runs(r.id, [task_run("b", 2), task_run("a", 1)])
    store.upsert_task_runs(other.id, [task_run("a", 5, state="FAILED")])
    done = task_run("b", 2, state="COMPLETED", attempts=2, upstream=["a"], error=None)
    store.upsert_task_runs(r.id, [task_run("b", 2, state="RUNNING"), done, task_run("c", 0)])
    listed = store.list_task_runs(r.id)
    assert [tr.id for tr in listed] == ["c", "a", "b"]
    assert listed[2] == done
    assert [tr.state for tr in store.list_task_runs(other.id)] == ["FAILED"]
    assert store.list_task_runs("nope") == []
    store.upsert_task_runs(r.id, [])
    assert len(store.list_task_runs(r.id)) == 3


def test_many_task_runs_in_one_batch(store: Store, dep: Deployment) -> None:
    r, _ = store.create_run(run(dep))
    store.upsert_task_runs(r.id, [task_run(f"t{i:03d}", i) for i in range(120)])
    assert [tr.id for tr in store.list_task_runs(r.id)] == [f"t{i:03d}" for i in range(120)]


def test_cache_records_replace_and_expire(store: Store) -> None:
    later = T0 + timedelta(hours=1)
    store.put_cache_record(CacheRecord(key="k1", result_key="cache/k1", expires_at=later))
    store.put_cache_record(CacheRecord(key="k2", result_key="cache/k2"))
    assert store.get_cache_record("k1", T0) == CacheRecord(
        key="k1", result_key="cache/k1", expires_at=later
    )
    assert store.get_cache_record("k1", later) is None  # expired at its instant
    assert store.get_cache_record("k2", later + timedelta(days=999)) is not None
    store.put_cache_record(CacheRecord(key="k1", result_key="cache/new"))
    record = store.get_cache_record("k1", later)
    assert record is not None and record.result_key == "cache/new" and record.expires_at is None
    assert store.get_cache_record("missing", T0) is None


def test_concurrency_limit_slots_are_leases(store: Store) -> None:
    soon, later = T0 + timedelta(seconds=30), T0 + timedelta(minutes=5)
    store.put_concurrency_limit("db", 1)
    store.put_concurrency_limit("api", 2)
    assert store.acquire_slots(["db", "api", "unlimited"], "r1:a", T0, soon)
    assert not store.acquire_slots(["db"], "r2:b", T0, soon)  # full
    assert store.acquire_slots(["api"], "r2:c", T0, soon)
    assert not store.acquire_slots(["api", "db"], "r3:d", T0, soon)  # all or nothing
    assert store.list_concurrency_limits(T0) == [
        ConcurrencyLimit(tag="api", limit=2, active_slots=2),
        ConcurrencyLimit(tag="db", limit=1, active_slots=1),
    ]
    assert store.acquire_slots(["db"], "r1:a", T0, later)  # a holder renews its own lease
    store.release_slots("r1:a", ["db", "api"])
    store.release_slots("r1:a", ["db"])  # idempotent
    assert store.acquire_slots(["db"], "r2:b", T0, soon)
    # a crashed holder's lease expires: its slot is free again
    assert store.acquire_slots(["db"], "r4:e", soon, later)
    assert store.acquire_slots(["unlimited"], "anyone", T0, soon)


def test_a_flow_runs_slots_are_released_together(store: Store) -> None:
    soon = T0 + timedelta(seconds=30)
    store.put_concurrency_limit("db", 2)
    store.put_concurrency_limit("api", 4)
    assert store.acquire_slots(["db", "api"], "run1:a", T0, soon)
    assert store.acquire_slots(["api"], "run1:b", T0, soon)
    assert store.acquire_slots(["db", "api"], "run10:a", T0, soon)  # another run
    assert store.acquire_slots(["api"], "run_1:a", T0, soon)  # '_' is no wildcard
    assert store.release_holder_slots("run1:") == 3
    assert store.release_holder_slots("run1:") == 0  # idempotent
    assert {lim.tag: lim.active_slots for lim in store.list_concurrency_limits(T0)} == {
        "api": 2,
        "db": 1,
    }
    assert store.acquire_slots(["db"], "run2:a", T0, soon)  # run1's slot is free


def test_concurrency_limits_change_and_delete(store: Store) -> None:
    store.put_concurrency_limit("db", 1)
    store.put_concurrency_limit("db", 3)
    assert store.list_concurrency_limits(T0)[0].limit == 3
    store.delete_concurrency_limit("db")
    assert store.list_concurrency_limits(T0) == []
    with pytest.raises(ConcurrencyLimitNotFound):
        store.delete_concurrency_limit("db")


def test_api_keys(store: Store) -> None:
    key = ApiKey(id="k1", name="ci", key_hash="h" * 64, role=Role.VIEWER, created_at=T0)
    store.create_api_key(key)
    with pytest.raises(AlreadyExists):
        store.create_api_key(key)
    assert store.find_api_key("h" * 64) == key
    assert store.revoke_api_key("k1", T0).revoked_at == T0
    assert store.find_api_key("h" * 64) is None
    assert store.list_api_keys()[0].revoked_at == T0
    with pytest.raises(ApiKeyNotFound):
        store.revoke_api_key("nope", T0)


def test_meta(store: Store) -> None:
    assert store.get_meta("x") is None
    assert store.set_meta_if_absent("x", "1")
    assert not store.set_meta_if_absent("x", "2")
    assert store.get_meta("x") == "1"


def test_runs_in_states_pages_by_expected_start_then_id(store: Store, dep: Deployment) -> None:
    """A cursor ``after=(expected_start, id)`` pages through runs sharing an instant."""
    later = T0 + timedelta(minutes=1)
    tie = [run(dep).model_copy(update={"id": f"tie-{i}"}) for i in (3, 1, 4, 0, 2)]
    early = run(dep, start=T0 - timedelta(minutes=1)).model_copy(update={"id": "z-early"})
    late = run(dep, start=later).model_copy(update={"id": "a-late"})
    for r in [*tie, early, late]:
        store.create_run(r)
    expected = ["z-early", "tie-0", "tie-1", "tie-2", "tie-3", "tie-4", "a-late"]
    everything = store.runs_in_states([StateType.SCHEDULED], 100)
    assert [r.id for r in everything] == expected
    seen: list[str] = []
    after = None
    while page := store.runs_in_states([StateType.SCHEDULED], 2, after=after):
        seen += [r.id for r in page]
        after = (page[-1].expected_start, page[-1].id)
    assert seen == expected
    cut = store.runs_in_states([StateType.SCHEDULED], 10, after=(T0, "tie-2"), before=later)
    assert [r.id for r in cut] == ["tie-3", "tie-4"]


def test_moving_a_deployment_frees_its_old_pool(store: Store, dep: Deployment) -> None:
    store.create_pool(pool("q"))
    with pytest.raises(PoolNotFound):
        store.upsert_deployment(deployment(pool_name="nope"), [])
    assert store.get_deployment(dep.id).work_pool == "p"
    moved, created = store.upsert_deployment(deployment(pool_name="q"), [])
    assert not created and moved.id == dep.id
    store.delete_pool("p")
    with pytest.raises(Conflict, match="1 deployment"):
        store.delete_pool("q")
    store.delete_deployment(dep.id)
    store.delete_pool("q")
    assert store.list_pools() == []


def test_take_turn_is_one_caller_per_period(store: Store) -> None:
    every = timedelta(minutes=10)
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def racer() -> None:
        barrier.wait()
        wins.append(store.take_turn("sweep", T0, every))

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(wins) == [False] * 5 + [True]
    assert not store.take_turn("sweep", T0 + every - timedelta(seconds=1), every)
    assert store.take_turn("other", T0, every)  # each key has its own turns
    assert store.take_turn("sweep", T0 + every, every)
    assert not store.take_turn("sweep", T0 + every, every)


def test_schema_is_current_after_migrate(store: Store) -> None:
    assert store.schema_version() == store.schema_head()
    assert store.schema_history()[-1][0] == store.schema_head()
    store.check_schema()
