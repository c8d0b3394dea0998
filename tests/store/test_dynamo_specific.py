"""DynamoDB-only properties: no Scan on hot paths, log TTL, counter-based concurrency limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import dynamo_store
from support.clock import FakeClock
from support.factories import deployment_body, process_pool

from service.deployments import DeploymentCreate, deploy
from service.errors import Conflict, DeploymentNotFound, InvalidInput, PoolNotFound, SchemaError
from service.models import Deployment, FlowRun, LogLine, StateRecord, WorkPool
from service.pools import WorkPoolCreate, create_pool
from service.services import build_services
from service.settings import Settings
from service.states import StateType
from service.store.base import RunFilter
from service.store.dynamo import SCHEMA_VERSION, DynamoStore

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def pool(concurrency_limit: int | None) -> WorkPool:
    return WorkPool(
        name="p", type="process", concurrency_limit=concurrency_limit, created_at=T0, updated_at=T0
    )


def deployment(concurrency_limit: int | None) -> Deployment:
    return Deployment.model_validate(
        {
            "id": "dep-1",
            "name": "d",
            "flow_name": "flow",
            "entrypoint": "f.py:flow",
            "work_pool": "p",
            "source": {"type": "image"},
            "concurrency_limit": concurrency_limit,
            "created_at": T0,
            "updated_at": T0,
        }
    )


def run(dep: Deployment, i: int) -> FlowRun:
    return FlowRun(
        id=f"run-{i}",
        deployment_id=dep.id,
        flow_name=dep.flow_name,
        deployment_name=dep.name,
        work_pool=dep.work_pool,
        state=StateRecord(type=StateType.SCHEDULED, name="Scheduled", timestamp=T0),
        expected_start=T0 - timedelta(seconds=10 - i),
        created_at=T0,
        updated_at=T0,
    )


def issue(run_id: str) -> str:
    return f"hash-{run_id}"


@pytest.fixture
def ddb(tmp_path: Path) -> Iterator[DynamoStore]:
    with dynamo_store(tmp_path) as store:
        assert isinstance(store, DynamoStore)
        yield store


class CallCounter:
    """Counts DynamoDB API calls through the client's own event hooks."""

    def __init__(self, store: DynamoStore) -> None:
        self.calls: Counter[str] = Counter()
        store.client.meta.events.register("before-call.dynamodb.*", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def reset(self) -> Counter[str]:
        seen, self.calls = self.calls, Counter()
        return seen


def test_tick_and_list_endpoints_never_scan(
    ddb: DynamoStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(T0)
    svc = build_services(Settings(home=tmp_path / "home"), store=ddb, clock=clock)
    create_pool(svc, WorkPoolCreate.model_validate(process_pool("hold", paused=True)))
    n = 5
    deps = []
    for i in range(n):
        body = deployment_body(
            work_pool="hold",
            name=f"d{i}",
            schedules=[{"kind": "cron", "cron": "*/15 * * * *", "timezone": "UTC"}],
        )
        deps.append(deploy(svc, DeploymentCreate.model_validate(body))[0])
    counter = CallCounter(ddb)

    first = svc.scheduler.tick(clock.now)
    tick_calls = counter.reset()
    assert first.schedules == n and first.materialised > 0
    clock.advance(3600)
    second = svc.scheduler.tick(clock.now)
    next_calls = counter.reset()
    assert second.schedules == n
    clock.advance(1)
    svc.scheduler.tick(clock.now)  # nothing due: the cheap tick
    idle_calls = counter.reset()

    assert ddb.list_runs(RunFilter(), 10).items
    page = ddb.list_runs(RunFilter(deployment_id=deps[0].id), 2)
    assert page.next_cursor is not None
    assert ddb.list_runs(RunFilter(deployment_id=deps[0].id), 2, page.next_cursor).items
    assert ddb.list_runs(RunFilter(states=[StateType.SCHEDULED], work_pool="hold"), 5).items
    assert ddb.runs_in_states([StateType.SCHEDULED, StateType.PENDING], 5)
    assert ddb.due_schedules(clock.now + timedelta(days=1), 10)
    assert ddb.next_scheduled_start(T0) is not None
    assert ddb.claim_due_runs(clock.now, 10, lambda r: r) == []  # the pool is paused
    list_calls = counter.reset()

    for name, calls in [
        ("first tick", tick_calls),
        ("next tick", next_calls),
        ("idle tick", idle_calls),
        ("lists", list_calls),
    ]:
        assert calls["Scan"] == 0, (name, calls)
    with capsys.disabled():
        print(f"\nDynamoDB calls for {n} deployments with one cron schedule each:")
        print(f"  first tick ({first.materialised} runs created): {dict(tick_calls)}")
        print(f"  tick 1h later ({second.materialised} runs created): {dict(next_calls)}")
        print(f"  tick with nothing due: {dict(idle_calls)}")


def test_log_lines_carry_ttl_and_expired_lines_are_hidden(ddb: DynamoStore) -> None:
    wall = [1_000_000.0]
    ddb._now = lambda: wall[0]
    ddb.log_retention_seconds = 60
    ddb.append_logs("r1", [LogLine(run_id="r1", timestamp=T0, message="old")])
    wall[0] += 30
    ddb.append_logs("r1", [LogLine(run_id="r1", timestamp=T0, message="new")])
    raw = ddb.client.query(
        TableName=ddb.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "LOG#r1"}},
    )["Items"]
    assert [int(i["expires_at"]["N"]) for i in raw] == [1_000_060, 1_000_090]
    ttl = ddb.client.describe_time_to_live(TableName=ddb.table)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert [x.message for x in ddb.read_logs("r1")] == ["old", "new"]
    wall[0] += 45  # "old" expired; DynamoDB TTL deletes lazily (moto never), reads filter it
    assert [x.message for x in ddb.read_logs("r1")] == ["new"]
    ddb.migrate()  # idempotent, TTL already on


def _counter(ddb: DynamoStore, pk: str, sk: str) -> int:
    item = ddb._get(pk, sk)
    return 0 if item is None else int(item.get("active", 0))


@pytest.mark.parametrize("where", ["pool", "deployment"])
def test_limits_follow_counters_through_every_exit(ddb: DynamoStore, where: str) -> None:
    ddb.create_pool(pool(concurrency_limit=2 if where == "pool" else None))
    dep, _ = ddb.upsert_deployment(
        deployment(concurrency_limit=2 if where == "deployment" else None), []
    )
    runs = [ddb.create_run(run(dep, i))[0] for i in range(6)]

    def active() -> tuple[int, int]:
        return _counter(ddb, "POOL", "p"), _counter(ddb, f"CNT#{dep.id}", "CNT")

    a, b = ddb.claim_due_runs(T0, 10, issue)
    assert active() == (2, 2)
    assert ddb.claim_due_runs(T0, 10, issue) == []

    def to(state: StateType) -> StateRecord:
        return StateRecord(type=state, name=state.value.capitalize(), timestamp=T0)

    # Cancelled while PENDING: leaves ACTIVE, frees a slot.
    ddb.transition(a.id, StateType.PENDING, to(StateType.CANCELLED))
    assert active() == (1, 1)
    (c,) = ddb.claim_due_runs(T0, 10, issue)
    # RUNNING -> CANCELLING stays ACTIVE: no slot freed.
    ddb.transition(b.id, StateType.PENDING, to(StateType.RUNNING))
    ddb.transition(b.id, StateType.RUNNING, to(StateType.CANCELLING))
    assert active() == (2, 2)
    assert ddb.claim_due_runs(T0, 10, issue) == []
    ddb.transition(b.id, StateType.CANCELLING, to(StateType.CANCELLED))
    # Crash then retry (back to SCHEDULED, not ACTIVE) frees a slot too.
    ddb.transition(c.id, StateType.PENDING, to(StateType.CRASHED))
    ddb.transition(c.id, StateType.CRASHED, to(StateType.SCHEDULED))
    assert active() == (0, 0)
    # A scheduled run cancelled never counted: nothing to give back.
    ddb.transition(runs[5].id, StateType.SCHEDULED, to(StateType.CANCELLED))
    assert active() == (0, 0)
    again = ddb.claim_due_runs(T0, 10, issue)
    assert len(again) == 2 and active() == (2, 2)
    # A claim that would break the limit leaves no partial write behind.
    assert ddb.claim_due_runs(T0, 10, issue, run_ids=[runs[4].id]) == []
    assert active() == (2, 2)
    assert ddb.get_run(runs[4].id).state.type == StateType.SCHEDULED
    for r in again:
        ddb.transition(r.id, StateType.PENDING, to(StateType.FAILED))
    assert active() == (0, 0)
    # A limit of 0 holds on a fresh counter as well.
    if where == "pool":
        ddb.update_pool("p", {"concurrency_limit": 0}, T0)
    else:
        ddb.upsert_deployment(deployment(concurrency_limit=0), [])
    assert ddb.claim_due_runs(T0, 10, issue) == []


def _env(monkeypatch: pytest.MonkeyPatch, **pushpool: str) -> None:
    """Fake AWS credentials for moto, plus ``PUSHPOOL_<NAME>`` settings."""
    fake = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }
    for name, value in fake.items():
        monkeypatch.setenv(name, value)
    for name, value in pushpool.items():
        monkeypatch.setenv(f"PUSHPOOL_{name.upper()}", value)


def test_settings_select_dynamodb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    from service.store import open_store

    _env(monkeypatch, dynamodb_table="from-env")
    with mock_aws():
        store = open_store(Settings(home=tmp_path / "home"))
        assert isinstance(store, DynamoStore) and store.table == "from-env"
        store.set_meta("k", "v")
        assert open_store(Settings(home=tmp_path / "home")).get_meta("k") == "v"  # idempotent
    monkeypatch.delenv("PUSHPOOL_DYNAMODB_TABLE")
    assert not isinstance(open_store(Settings(home=tmp_path / "home")), DynamoStore)


def test_a_table_the_stack_owns_is_not_checked_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``PUSHPOOL_DYNAMODB_CREATE_TABLE=false`` (the template's setting) opening the
    store neither checks nor creates the table: a cold Lambda goes straight to the
    request's own calls."""
    from moto import mock_aws

    from service.store import open_store

    _env(monkeypatch, dynamodb_table="stack-owned", dynamodb_create_table="false")
    with mock_aws():
        store = open_store(Settings(home=tmp_path / "home"))
        assert isinstance(store, DynamoStore) and store.table == "stack-owned"
        # migrate() would have created the missing table: it was not called.
        with pytest.raises(store.client.exceptions.ResourceNotFoundException):
            store.client.describe_table(TableName="stack-owned")
        monkeypatch.setenv("PUSHPOOL_DYNAMODB_CREATE_TABLE", "true")
        open_store(Settings(home=tmp_path / "home"))
        assert store.client.describe_table(TableName="stack-owned")["Table"]["TableName"]


def test_deleting_a_deployment_is_one_transaction_with_its_schedules(
    ddb: DynamoStore, tmp_path: Path
) -> None:
    svc = build_services(Settings(home=tmp_path / "home"), store=ddb, clock=FakeClock(T0))
    create_pool(svc, WorkPoolCreate.model_validate(process_pool("hold", paused=True)))
    crons = [_cron(f"{m} * * * *") for m in range(20)]  # the most a deployment may have
    dep, _ = deploy(
        svc, DeploymentCreate.model_validate(deployment_body(work_pool="hold", schedules=crons))
    )
    assert len(ddb.get_schedules(dep.id)) == 20
    counter = CallCounter(ddb)
    ddb.delete_deployment(dep.id)
    calls = counter.reset()
    assert calls["TransactWriteItems"] == 1 and "DeleteItem" not in calls
    assert ddb.get_schedules(dep.id) == [] and ddb.list_deployments() == []
    with pytest.raises(DeploymentNotFound):
        ddb.delete_deployment(dep.id)


def test_schedules_orphaned_by_an_old_cut_short_delete_do_not_block_due_ones(
    ddb: DynamoStore, tmp_path: Path
) -> None:
    """Before deletes were one transaction, a delete cut short (a Lambda timeout) could
    leave a deployment's schedules behind; they must not hold the head of the index."""
    svc = build_services(Settings(home=tmp_path / "home"), store=ddb, clock=FakeClock(T0))
    create_pool(svc, WorkPoolCreate.model_validate(process_pool("hold", paused=True)))
    # The orphan fires first (12:05, the live one 12:30), so it heads the index.
    gone, _ = deploy(
        svc,
        DeploymentCreate.model_validate(
            deployment_body(name="gone", work_pool="hold", schedules=[_cron("5 * * * *")])
        ),
    )
    deploy(
        svc,
        DeploymentCreate.model_validate(
            deployment_body(name="live", work_pool="hold", schedules=[_cron("30 * * * *")])
        ),
    )
    ddb.client.delete_item(  # what the old one-by-one delete did first
        TableName=ddb.table, Key={"pk": {"S": f"DEP#{gone.id}"}, "sk": {"S": "DEP"}}
    )
    until = T0 + timedelta(days=1)
    # One tick drops the orphan at the head ...
    assert ddb.due_schedules(until, 1) == []
    assert ddb.get_schedules(gone.id) == []
    # ... and the next one reaches the live schedule behind it.
    assert [dep.name for _, dep in ddb.due_schedules(until, 1)] == ["live"]


def _cron(expr: str) -> dict[str, str]:
    return {"kind": "cron", "cron": expr}


# -- the pools' deployment counters ----------------------------------------------------------
def _pool_named(name: str) -> WorkPool:
    return WorkPool(name=name, type="process", created_at=T0, updated_at=T0)


def _dep_in(pool_name: str, name: str = "d") -> Deployment:
    return deployment(None).model_copy(update={"work_pool": pool_name, "name": name})


def _uses(ddb: DynamoStore, pool_name: str) -> int | None:
    item = ddb._get("POOL", pool_name)
    return None if item is None else int(item.get("deployments", 0))


def _raw_keys(ddb: DynamoStore) -> set[tuple[str, str]]:
    items = ddb.client.scan(TableName=ddb.table)["Items"]
    return {(i["pk"]["S"], i["sk"]["S"]) for i in items}


class OnNextTransaction:
    """Runs ``action`` once, just before the store's next ``TransactWriteItems`` is sent:
    what another writer could do between the store's reads and its transaction."""

    def __init__(self, ddb: DynamoStore, action: Any) -> None:
        self.ddb, self.action, self.fired = ddb, action, False
        ddb.client.meta.events.register("before-call.dynamodb.TransactWriteItems", self._run)

    def _run(self, **_: Any) -> None:
        if not self.fired:
            self.fired = True  # first, so a transaction the action makes passes through
            self.action()

    def __enter__(self) -> OnNextTransaction:
        return self

    def __exit__(self, *_: object) -> None:
        self.ddb.client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", self._run)
        assert self.fired


def test_pool_counts_the_deployments_using_it(ddb: DynamoStore) -> None:
    ddb.create_pool(_pool_named("a"))
    ddb.create_pool(_pool_named("b"))
    one, created = ddb.upsert_deployment(_dep_in("a", "one"), [])
    assert created
    two, _ = ddb.upsert_deployment(_dep_in("a", "two").model_copy(update={"id": "dep-2"}), [])
    assert (_uses(ddb, "a"), _uses(ddb, "b")) == (2, 0)
    with pytest.raises(Conflict, match=r"work pool 'a' is used by 2 deployment\(s\)"):
        ddb.delete_pool("a")

    # Redeploying in place counts nothing twice; moving moves the count.
    ddb.upsert_deployment(_dep_in("a", "two"), [])
    assert (_uses(ddb, "a"), _uses(ddb, "b")) == (2, 0)
    moved, created = ddb.upsert_deployment(_dep_in("b", "two"), [])
    assert not created and moved.id == two.id and ddb.get_deployment(two.id).work_pool == "b"
    assert (_uses(ddb, "a"), _uses(ddb, "b")) == (1, 1)

    # The counter is the store's: never shown, never reset or set by update_pool.
    ddb.update_pool("b", {"paused": True, "concurrency_limit": 3}, T0)
    assert _uses(ddb, "b") == 1
    with pytest.raises(InvalidInput):
        ddb.update_pool("b", {"deployments": 0}, T0)
    assert "deployments" not in ddb.get_pool("b").model_dump()
    assert [p.name for p in ddb.list_pools()] == ["a", "b"]

    ddb.delete_deployment(one.id)
    ddb.delete_pool("a")  # the old pool is free once its last deployment is gone
    with pytest.raises(PoolNotFound):
        ddb.get_pool("a")
    with pytest.raises(Conflict, match=r"'b' is used by 1 deployment\(s\)"):
        ddb.delete_pool("b")
    ddb.delete_deployment(two.id)
    assert _uses(ddb, "b") == 0
    ddb.delete_pool("b")
    with pytest.raises(PoolNotFound):
        ddb.delete_pool("b")
    assert ddb.list_pools() == []


def test_delete_pool_is_one_conditional_delete(ddb: DynamoStore) -> None:
    ddb.create_pool(pool(None))
    dep, _ = ddb.upsert_deployment(deployment(None), [])
    counter = CallCounter(ddb)
    with pytest.raises(Conflict, match="used by 1 deployment"):
        ddb.delete_pool("p")
    refused = counter.reset()
    ddb.delete_deployment(dep.id)
    r, _ = ddb.create_run(run(dep, 0))
    ddb.claim_due_runs(T0, 1, issue)
    counter.reset()
    with pytest.raises(Conflict, match=r"has 1 run\(s\) in progress"):
        ddb.delete_pool("p")
    busy = counter.reset()
    ddb.transition(
        r.id, StateType.PENDING, StateRecord(type=StateType.CRASHED, name="Crashed", timestamp=T0)
    )
    counter.reset()
    ddb.delete_pool("p")
    deleted = counter.reset()
    with pytest.raises(PoolNotFound):
        ddb.delete_pool("p")
    missing = counter.reset()
    for calls in (refused, busy, deleted, missing):
        assert calls == {"DeleteItem": 1}, calls


def test_a_pool_deleted_before_the_transaction_is_not_used(ddb: DynamoStore) -> None:
    """The pool goes between whatever the upsert reads and its transaction: the
    transaction's own condition on the pool refuses, and nothing is left behind."""
    ddb.create_pool(pool(None))
    before = _raw_keys(ddb)

    def drop_pool() -> None:
        ddb.client.delete_item(TableName=ddb.table, Key={"pk": {"S": "POOL"}, "sk": {"S": "p"}})

    with OnNextTransaction(ddb, drop_pool), pytest.raises(PoolNotFound) as info:
        ddb.upsert_deployment(deployment(None), [])
    assert info.value.ident == "p"
    assert _raw_keys(ddb) == before - {("POOL", "p")}  # no DEP, name, counter or bare pool
    assert ddb.list_deployments() == []


def test_moving_onto_a_pool_deleted_meanwhile_leaves_the_deployment_where_it_was(
    ddb: DynamoStore,
) -> None:
    ddb.create_pool(_pool_named("a"))
    ddb.create_pool(_pool_named("b"))
    dep, _ = ddb.upsert_deployment(_dep_in("a"), [])

    def drop_b() -> None:
        ddb.delete_pool("b")

    with OnNextTransaction(ddb, drop_b), pytest.raises(PoolNotFound):
        ddb.upsert_deployment(_dep_in("b"), [])
    assert ddb.get_deployment(dep.id).work_pool == "a"
    assert (_uses(ddb, "a"), _uses(ddb, "b")) == (1, None)


def test_concurrent_moves_and_deletes_keep_the_counts(ddb: DynamoStore) -> None:
    for name in "abc":
        ddb.create_pool(_pool_named(name))
    dep, _ = ddb.upsert_deployment(_dep_in("a"), [])

    # Moved a -> c by another writer after this move a -> b read the deployment.
    with OnNextTransaction(ddb, lambda: ddb.upsert_deployment(_dep_in("c"), [])):
        ddb.upsert_deployment(_dep_in("b"), [])
    assert ddb.get_deployment(dep.id).work_pool == "b"
    assert [_uses(ddb, n) for n in "abc"] == [0, 1, 0]

    # Moved b -> c after the delete read it: the delete gives back c's count, not b's.
    with OnNextTransaction(ddb, lambda: ddb.upsert_deployment(_dep_in("c"), [])):
        ddb.delete_deployment(dep.id)
    assert [_uses(ddb, n) for n in "abc"] == [0, 0, 0]
    for name in "abc":
        ddb.delete_pool(name)

    # Deleted by another writer after this delete read it.
    ddb.create_pool(_pool_named("a"))
    dep, _ = ddb.upsert_deployment(_dep_in("a"), [])
    gone = OnNextTransaction(ddb, lambda: ddb.delete_deployment(dep.id))
    with gone, pytest.raises(DeploymentNotFound):
        ddb.delete_deployment(dep.id)
    assert _uses(ddb, "a") == 0

    # Deleted after this replace read it: created again, counted once.
    ddb.upsert_deployment(_dep_in("a"), [])
    with OnNextTransaction(ddb, lambda: ddb.delete_deployment(ddb.find_deployment("flow", "d").id)):
        _, created = ddb.upsert_deployment(_dep_in("a"), [])
    assert created and _uses(ddb, "a") == 1 and len(ddb.list_deployments()) == 1


def test_items_written_before_the_counter(ddb: DynamoStore) -> None:
    """A pool without ``deployments`` counts 0, a deployment without ``counted_in`` is
    counted nowhere: deleting it gives nothing back; deploying it again counts it."""
    ddb.create_pool(pool(None))
    dep, _ = ddb.upsert_deployment(deployment(None), [])
    other, _ = ddb.upsert_deployment(
        deployment(None).model_copy(update={"id": "dep-2", "name": "e"}), []
    )

    def strip(pk: str, sk: str, attr: str) -> None:
        ddb.client.update_item(
            TableName=ddb.table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression=f"REMOVE {attr}",
        )

    strip("POOL", "p", "deployments")
    strip(f"DEP#{dep.id}", "DEP", "counted_in")
    strip(f"DEP#{other.id}", "DEP", "counted_in")
    ddb.delete_deployment(other.id)
    assert _uses(ddb, "p") == 0 and "deployments" not in (ddb._get("POOL", "p") or {})
    ddb.upsert_deployment(deployment(None), [])  # deployed again: now counted
    assert _uses(ddb, "p") == 1
    with pytest.raises(Conflict):
        ddb.delete_pool("p")
    ddb.delete_deployment(dep.id)
    ddb.delete_pool("p")


def test_deleting_a_deployment_whose_pool_item_is_gone(ddb: DynamoStore) -> None:
    """Only a hand-edited table gets here (a counted deployment holds its pool), but the
    deployment can still be deleted, and no bare pool item appears."""
    ddb.create_pool(pool(None))
    dep, _ = ddb.upsert_deployment(deployment(None), [])
    ddb.client.delete_item(TableName=ddb.table, Key={"pk": {"S": "POOL"}, "sk": {"S": "p"}})
    ddb.delete_deployment(dep.id)
    assert ddb._get("POOL", "p") is None and ddb.list_deployments() == []


def test_an_idempotency_key_left_by_a_cut_short_delete_is_taken_over(
    ddb: DynamoStore,
) -> None:
    ddb.create_pool(pool(None))
    dep = deployment(None)
    ddb.upsert_deployment(dep, [])
    first = run(dep, 0).model_copy(update={"idempotency_key": "nightly-2026-06-01"})
    assert ddb.create_run(first) == (first, True)
    ddb.client.delete_item(  # the run went, its key stayed (the old one-by-one delete)
        TableName=ddb.table, Key={"pk": {"S": f"RUN#{first.id}"}, "sk": {"S": "RUN"}}
    )
    again = run(dep, 1).model_copy(update={"idempotency_key": "nightly-2026-06-01"})
    assert ddb.create_run(again) == (again, True)
    assert ddb.create_run(
        run(dep, 2).model_copy(update={"idempotency_key": "nightly-2026-06-01"})
    ) == (again, False)


def test_deleting_a_scheduled_run_frees_its_idempotency_key_in_the_same_write(
    ddb: DynamoStore,
) -> None:
    ddb.create_pool(pool(None))
    dep = deployment(None)
    ddb.upsert_deployment(dep, [])
    keyed = run(dep, 0).model_copy(update={"idempotency_key": "k", "auto_scheduled": True})
    ddb.create_run(keyed)
    counter = CallCounter(ddb)
    ddb.delete_deployment(dep.id)  # deletes its SCHEDULED runs
    calls = counter.reset()
    assert calls["TransactWriteItems"] == 2  # the deployment; the run with its key
    ddb.upsert_deployment(dep, [])
    fresh = run(dep, 1).model_copy(update={"idempotency_key": "k"})
    assert ddb.create_run(fresh) == (fresh, True)


def test_deploying_writes_the_deployment_and_its_schedules_in_one_transaction(
    ddb: DynamoStore, tmp_path: Path
) -> None:
    """Even replacing 20 schedules with 20 others (the most a deployment may have): one
    TransactWriteItems, so a cut-short deploy never leaves half a schedule set."""
    svc = build_services(Settings(home=tmp_path / "home"), store=ddb, clock=FakeClock(T0))
    create_pool(svc, WorkPoolCreate.model_validate(process_pool("hold", paused=True)))
    counter = CallCounter(ddb)
    for hour in (3, 4):
        crons = [_cron(f"{m} {hour} * * *") for m in range(20)]
        body = deployment_body(work_pool="hold", schedules=crons)
        dep, _ = deploy(svc, DeploymentCreate.model_validate(body))
        calls = counter.reset()
        assert calls["TransactWriteItems"] == 1, calls
        assert "PutItem" not in calls and "DeleteItem" not in calls, calls
        assert sorted(s.schedule.cron for s in ddb.get_schedules(dep.id)) == sorted(
            c["cron"] for c in crons
        )


def test_schema_version_is_recorded_and_a_newer_table_refused(tmp_path: Path) -> None:
    with dynamo_store(tmp_path) as store:
        assert store.get_meta("schema.version") == str(SCHEMA_VERSION)
        store.migrate()  # idempotent
        store.set_meta("schema.version", str(SCHEMA_VERSION + 1))  # written by a newer release
        with pytest.raises(SchemaError, match=f"needs {SCHEMA_VERSION}"):
            store.migrate()
        with pytest.raises(SchemaError):
            store.check_schema()


class Unprocessed:
    """Makes DynamoDB answer ``BatchWriteItem`` with an item left unprocessed (as a
    throttled table does), through the client's own event hooks, ``times`` times."""

    def __init__(self, store: DynamoStore, times: int) -> None:
        self.table, self.left = store.table, times
        store.client.meta.events.register("after-call.dynamodb.BatchWriteItem", self._answer)

    def _answer(self, parsed: dict[str, Any], **_: Any) -> None:
        if self.left > 0:
            self.left -= 1
            item = {"pk": {"S": "THROTTLED"}, "sk": {"S": "x"}}
            parsed["UnprocessedItems"] = {self.table: [{"PutRequest": {"Item": item}}]}


def test_batch_writes_retry_unprocessed_items_then_raise_a_store_error(
    ddb: DynamoStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.errors import StoreUnavailable
    from service.event_records import EventFilter, Resource, new_event
    from service.store.dynamo import _table

    monkeypatch.setattr(_table, "_sleep", lambda _: None)
    event = new_event("x.one", Resource(id="r"), occurred=T0)
    Unprocessed(ddb, times=3)  # a passing throttle: retried, then written
    ddb.append_events([event])
    assert [e.id for e in ddb.list_events(EventFilter(), 10).items] == [event.id]
    Unprocessed(ddb, times=1000)  # throttled past every retry: an error, not a silent loss
    with pytest.raises(StoreUnavailable, match="unwritten"):
        ddb.append_events([new_event("x.two", Resource(id="r"), occurred=T0)])
    line = LogLine(run_id="run-1", timestamp=T0, message="m")
    with pytest.raises(StoreUnavailable):
        ddb.append_logs("run-1", [line])


def _events_over_days(ddb: DynamoStore, days: int) -> list[Any]:
    """One event an hour for ``days`` days; every 50th on deployment "rare"."""
    from service.event_records import Resource, new_event

    out = []
    for i in range(days * 24):
        dep = "rare" if i % 50 == 0 else f"dep-{i % 7}"
        labels = {"deployment": dep, "flow": "etl" if dep == "rare" else "other"}
        res = Resource(id=f"pushpool.flow-run.r{i}", labels=labels)
        name = "x.rare" if dep == "rare" else "x.common"
        out.append(new_event(name, res, occurred=T0 - timedelta(hours=i)))
    ddb.append_events(out)
    return out


@pytest.mark.parametrize(
    "flt",
    [
        {"labels": {"deployment": "rare"}},
        {"labels": {"flow": "etl"}},
        {"names": ("x.rare",)},
    ],
)
def test_sparse_event_filters_read_one_index_partition_not_every_hour(
    ddb: DynamoStore, flt: dict[str, Any]
) -> None:
    from service.event_records import EventFilter

    stored = _events_over_days(ddb, 10)  # 240 events in 240 hour partitions
    expected = [e.id for e in stored if e.resource.labels["deployment"] == "rare"]
    counter = CallCounter(ddb)
    listed = ddb.list_events(EventFilter(**flt), 50)
    calls = counter.reset()
    assert [e.id for e in listed.items] == expected
    assert calls["Query"] == 1, calls  # before: one per hour holding events (241)


def test_a_version_2_table_is_upgraded_with_its_events_indexed(ddb: DynamoStore) -> None:
    from service.event_records import EventFilter

    stored = _events_over_days(ddb, 2)
    for raw in ddb.client.scan(TableName=ddb.table)["Items"]:  # as version 2 wrote them
        if raw["pk"]["S"].startswith("EVT#"):
            ddb.client.update_item(
                TableName=ddb.table,
                Key={"pk": raw["pk"], "sk": raw["sk"]},
                UpdateExpression="REMOVE gsi1pk, gsi1sk, gsi2pk, gsi2sk, gsi4pk, gsi4sk",
            )
    ddb.set_meta("schema.version", "2")
    rare = EventFilter(labels={"deployment": "rare"})
    assert ddb.list_events(rare, 50).items == []  # not findable by the index yet
    ddb.migrate()
    assert ddb.schema_version() == str(SCHEMA_VERSION) == "3"
    expected = [e for e in stored if e.resource.labels["deployment"] == "rare"]
    assert ddb.list_events(rare, 50).items == expected
    assert len(ddb.list_events(EventFilter(), 100).items) == len(stored)
    ddb.migrate()  # again: nothing to do
    assert ddb.list_events(rare, 50).items == expected


def test_a_deploy_changing_more_block_uses_than_a_transaction_takes_is_refused(
    ddb: DynamoStore,
) -> None:
    """Each block a deploy starts or stops using is one write of its transaction (at most
    100): beyond that, a 422 on ``blocks`` and nothing written."""
    from service.blocks.models import BlockDocument

    ddb.create_pool(pool(None))
    for i in range(100):
        ddb.put_block(BlockDocument(type="secret", name=f"s{i}", created_at=T0, updated_at=T0))
    first = [f"secret/s{i}" for i in range(50)]
    dep = deployment(None).model_copy(update={"blocks": first})
    stored, _ = ddb.upsert_deployment(dep, [])
    swapped = stored.model_copy(update={"blocks": [f"secret/s{i}" for i in range(50, 100)]})
    with pytest.raises(InvalidInput) as caught:
        ddb.upsert_deployment(swapped, [])
    assert caught.value.field == "blocks" and "two steps" in str(caught.value)
    assert ddb.get_deployment(stored.id).blocks == first
