"""Dispatch records the infrastructure of runs submitted together in one store write."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from provisioners.base import (
    REGISTRY,
    InfraRef,
    InfraState,
    InfraStatus,
    Provisioner,
    SubmitRequest,
)
from service.dispatch import RECORD_BATCH
from service.models import FlowRun, StateRecord, WorkPool
from service.services import Services
from service.states import StateType


class Instant(Provisioner):
    """Starts nothing, at once; remembers what it was asked to stop."""

    type = "instant"
    torn_down: ClassVar[list[str]] = []
    #: Called during each submit (a test's hook: cancel a run meanwhile, say).
    during: ClassVar[list[Any]] = []

    def submit(self, request: SubmitRequest) -> InfraRef:
        for hook in self.during:
            hook(request)
        return InfraRef(type=self.type, id=f"infra-{request.run_id}")

    def find(self, request: SubmitRequest) -> InfraRef | None:
        return None

    def status(self, ref: InfraRef) -> InfraStatus:
        return InfraStatus(InfraState.RUNNING)

    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        return None

    def teardown(self, ref: InfraRef) -> None:
        self.torn_down.append(ref.id)

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        return []


@pytest.fixture
def writes(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each ``set_infra_many`` call's run ids; an ``instant`` pool with due runs."""
    monkeypatch.setitem(REGISTRY, "instant", f"{__name__}:Instant")
    monkeypatch.setattr(Instant, "torn_down", [])
    monkeypatch.setattr(Instant, "during", [])
    now = services.clock()
    services.store.create_pool(
        WorkPool(name="fast", type="instant", created_at=now, updated_at=now)
    )
    calls: list[list[str]] = []
    real = services.store.set_infra_many

    def spy(started: Sequence[tuple[FlowRun, InfraRef]]) -> set[str]:
        calls.append([run.id for run, _ in started])
        return real(started)

    monkeypatch.setattr(services.store, "set_infra_many", spy)
    return calls


def _due(services: Services, n: int) -> list[str]:
    now = services.clock()
    ids = []
    for _ in range(n):
        run = FlowRun(
            id=str(uuid.uuid4()),
            flow_name="f",
            deployment_id=None,
            deployment_name="ad-hoc",
            work_pool="fast",
            state=StateRecord(type=StateType.SCHEDULED, name="Scheduled", timestamp=now),
            expected_start=now,
            created_at=now,
            updated_at=now,
        )
        ids.append(services.store.create_run(run)[0].id)
    return ids


def test_fast_submissions_are_recorded_in_one_write(
    services: Services, writes: list[list[str]]
) -> None:
    ids = _due(services, 5)
    services.dispatcher.monotonic = lambda: 100.0  # every submit takes no time
    services.dispatcher.dispatch_due(10)
    assert len(writes) == 1 and sorted(writes[0]) == sorted(ids)
    for run_id in ids:
        assert services.store.get_run(run_id).infra == InfraRef(
            type="instant", id=f"infra-{run_id}"
        )


def test_a_batch_is_at_most_record_batch_runs(services: Services, writes: list[list[str]]) -> None:
    _due(services, RECORD_BATCH + 3)
    services.dispatcher.monotonic = lambda: 100.0
    services.dispatcher.dispatch_due(RECORD_BATCH + 3)
    assert [len(w) for w in writes] == [RECORD_BATCH, 3]


def test_slow_submissions_are_each_recorded_at_once(
    services: Services, writes: list[list[str]]
) -> None:
    _due(services, 3)
    ticks = iter(range(0, 1000, 1))  # each submit takes a second
    services.dispatcher.monotonic = lambda: float(next(ticks))
    services.dispatcher.dispatch_due(10)
    assert [len(w) for w in writes] == [1, 1, 1]


def test_a_run_cancelled_while_its_batch_was_submitted_is_stopped(
    services: Services, writes: list[list[str]]
) -> None:
    ids = _due(services, 3)
    services.dispatcher.monotonic = lambda: 100.0
    from service.runs import cancel_run

    def cancel_the_first(request: SubmitRequest) -> None:
        if request.run_id != ids[0] and services.store.get_run(ids[0]).state.type == (
            StateType.PENDING
        ):
            cancel_run(services, ids[0])

    Instant.during.append(cancel_the_first)
    services.dispatcher.dispatch_due(10)
    assert len(writes) == 1
    assert services.store.get_run(ids[0]).infra is None
    assert Instant.torn_down == [f"infra-{ids[0]}"]
    assert services.store.get_run(ids[1]).infra is not None


def test_a_reconcile_pass_reads_the_deployments_of_its_runs_in_one_call(
    services: Services, writes: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.factories import deployment_body

    from service.deployments import DeploymentCreate, deploy
    from service.runs import RunCreate, create_run
    from service.states import set_state

    run_ids = []
    for i in range(4):
        body = deployment_body(
            name=f"d{i}", work_pool="fast", source={"type": "image"}, timeout_seconds=3600
        )
        dep = deploy(services, DeploymentCreate.model_validate(body))[0]
        for _ in range(3):
            run_ids.append(create_run(services, dep.id, RunCreate())[0].id)
    services.dispatcher.dispatch_due(20)
    for run_id in run_ids:
        set_state(services.store, run_id, StateType.RUNNING, now=services.clock())
    one, many = [], []
    real_one, real_many = services.store.get_deployment, services.store.get_deployments
    monkeypatch.setattr(services.store, "get_deployment", lambda i: one.append(i) or real_one(i))
    monkeypatch.setattr(
        services.store, "get_deployments", lambda ids: many.append(ids) or real_many(ids)
    )
    report = services.scheduler.tick(services.clock())
    assert report.reconcile.checked == len(run_ids)
    assert one == [] and len(many) == 1 and len(set(many[0])) == 4
