"""Dispatch and reconcile with an injected clock: exactly-once submission, adoption after a
dispatcher crash, pending timeouts, stale heartbeats, teardown, orphans."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from support.clock import FakeClock
from support.factories import SOURCE_ROOTS, deployment_body

from provisioners.base import REGISTRY, InfraRef, InfraState, SubmitRequest
from provisioners.errors import CapacityUnavailable
from provisioners.process import ProcessProvisioner
from service.deployments import DeploymentCreate, deploy
from service.models import Deployment, FlowRun
from service.pools import WorkPoolCreate, create_pool
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType, set_state

SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]


@pytest.fixture(autouse=True)
def _job_commands_allowed(services: Services) -> None:
    """These tests run plain commands as "flows": the pool's admin allows that."""
    config = services.store.get_pool("local").config
    services.store.update_pool(
        "local", {"config": {**config, "allow_job_commands": True}}, services.clock()
    )


@pytest.fixture
def sleeper(services: Services) -> Iterator[Deployment]:
    """A deployment whose 'flow' is a plain sleeping process (no runner, no API calls)."""
    body = deployment_body(job_variables={"command": SLEEP})
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    yield dep
    for run in services.store.list_runs(_all(), 1000).items:
        if run.infra is not None:
            services.dispatcher.provisioner(run.work_pool).teardown(run.infra)


def _all() -> Any:
    from service.store.base import RunFilter

    return RunFilter()


def _pool_dirs(services: Services) -> list[Path]:
    root = Path(services.store.get_pool("local").config["working_dir"]) / "local"
    return sorted(p for p in root.iterdir()) if root.exists() else []


def _scheduled(services: Services, dep: Deployment) -> FlowRun:
    """A due run that has not been dispatched (created while the pool was paused)."""
    services.store.update_pool("local", {"paused": True}, services.clock())
    run, _ = create_run(services, dep.id, RunCreate())
    services.store.update_pool("local", {"paused": False}, services.clock())
    assert run.state.type == StateType.SCHEDULED
    return run


def test_ad_hoc_run_is_pushed_in_the_request(services: Services, sleeper: Deployment) -> None:
    run, created = create_run(services, sleeper.id, RunCreate())
    assert created and run.state.type == StateType.PENDING and run.infra is not None
    status = services.dispatcher.provisioner("local").status(run.infra)
    assert status.state == InfraState.RUNNING


def test_racing_dispatchers_submit_once(services: Services, sleeper: Deployment) -> None:
    runs = [_scheduled(services, sleeper) for _ in range(6)]
    barrier = threading.Barrier(4)
    claimed: list[str] = []
    lock = threading.Lock()

    def dispatch() -> None:
        barrier.wait()
        got = services.dispatcher.dispatch_due(10)
        with lock:
            claimed.extend(r.id for r in got)

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(claimed) == sorted(r.id for r in runs)
    assert len(_pool_dirs(services)) == 6  # one process each, none twice


def test_crash_between_claim_and_submit_is_resubmitted(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    run = _scheduled(services, sleeper)
    # A dispatcher claims the run and dies before submitting it.
    services.store.claim_due_runs(clock(), 1, lambda _: "lost-token-hash", run_ids=[run.id])
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).infra is None  # not yet past the submit timeout
    clock.advance(services.settings.submit_timeout_seconds + 1)
    report = services.scheduler.tick(clock())
    assert report.reconcile.resubmitted == 1
    after = services.store.get_run(run.id)
    assert after.state.type == StateType.PENDING and after.infra is not None
    assert after.token_hash != "lost-token-hash"  # a fresh token for the new submission
    assert len(_pool_dirs(services)) == 1


def test_crash_after_submit_adopts_what_was_started(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    run = _scheduled(services, sleeper)
    (claimed,) = services.store.claim_due_runs(clock(), 1, lambda _: "h1", run_ids=[run.id])
    # The dispatcher started the process, then died before recording it.
    provisioner = services.dispatcher.provisioner("local")
    started = provisioner.submit(services.dispatcher._request(claimed, "token"))
    clock.advance(services.settings.submit_timeout_seconds + 1)
    services.scheduler.tick(clock())
    after = services.store.get_run(run.id)
    assert after.infra == started  # adopted, not started again
    assert after.token_hash == "h1"  # the adopted process keeps its token
    assert len(_pool_dirs(services)) == 1


def test_pending_too_long_is_crashed_and_stopped(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    run, _ = create_run(services, sleeper.id, RunCreate())
    assert run.infra is not None
    clock.advance(services.settings.pending_timeout_seconds + 1)
    services.scheduler.tick(clock())
    after = services.store.get_run(run.id)
    assert after.state.type == StateType.CRASHED
    assert "did not start" in (after.state.message or "")
    services.scheduler.tick(clock())  # teardown of the crashed attempt
    assert _pool_dirs(services) == []


def test_stale_heartbeat_crashes_the_run(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    run, _ = create_run(services, sleeper.id, RunCreate())
    set_state(services.store, run.id, StateType.RUNNING, now=clock())
    _ticking(services, clock, services.settings.heartbeat_timeout_seconds - 5)
    services.store.record_heartbeat(run.id, clock())
    _ticking(services, clock, 10)
    assert services.store.get_run(run.id).state.type == StateType.RUNNING
    _ticking(services, clock, services.settings.heartbeat_timeout_seconds + 1)
    after = services.store.get_run(run.id)
    assert after.state.type == StateType.CRASHED
    assert "heartbeat" in (after.state.message or "")


def _ticking(services: Services, clock: FakeClock, seconds: float, every: float = 5) -> None:
    """Let ``seconds`` pass with the server's loop ticking every ``every`` seconds."""
    while seconds > 0:
        step = min(every, seconds)
        clock.advance(step)
        seconds -= step
        services.scheduler.tick(clock())


def test_after_an_outage_runs_get_a_full_heartbeat_window(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    """Heartbeats missed while the control plane was down do not crash a live run."""
    run, _ = create_run(services, sleeper.id, RunCreate())
    set_state(services.store, run.id, StateType.RUNNING, now=clock())
    services.scheduler.tick(clock())
    timeout = services.settings.heartbeat_timeout_seconds
    clock.advance(timeout + 60)  # down: no tick, no heartbeat reached us
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).state.type == StateType.RUNNING
    _ticking(services, clock, timeout - 5)
    assert services.store.get_run(run.id).state.type == StateType.RUNNING
    _ticking(services, clock, 10)  # a whole window since we are back, and still silent
    assert services.store.get_run(run.id).state.type == StateType.CRASHED


def test_cancel_pending_without_infra_and_late_submit_is_undone(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    run = _scheduled(services, sleeper)
    (claimed,) = services.store.claim_due_runs(clock(), 1, lambda _: "h", run_ids=[run.id])
    from service.runs import cancel_run

    assert cancel_run(services, run.id).state.type == StateType.CANCELLED
    # The dispatcher that claimed it now finishes its submit: what it started is undone.
    services.dispatcher._submit(claimed, "token")
    assert services.store.get_run(run.id).infra is None
    assert _pool_dirs(services) == []


def test_orphan_sweep_removes_only_finished_runs(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    live_run, _ = create_run(services, sleeper.id, RunCreate())
    done_run, _ = create_run(services, sleeper.id, RunCreate())
    # Forget the finished run's teardown entry, as if the service lost it.
    set_state(services.store, done_run.id, StateType.CRASHED, now=clock())
    for item in services.store.pending_teardowns(10):
        services.store.finish_teardown(item.id)
    assert len(_pool_dirs(services)) == 2
    assert services.scheduler.reconciler.sweep_orphans() == 1
    remaining = _pool_dirs(services)
    assert [p.name.rsplit("-", 1)[0] for p in remaining] == [live_run.id]


def test_failed_submission_crashes_the_run(services: Services, clock: FakeClock) -> None:
    body = deployment_body(job_variables={"command": ["/nonexistent/binary"]})
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    run, _ = create_run(services, dep.id, RunCreate())
    assert run.state.type == StateType.CRASHED
    assert "cannot start /nonexistent/binary" in (run.state.message or "")


class PruningProcess(ProcessProvisioner):
    """A process pool that also keeps shared resources, recording what it is asked to keep."""

    type = "pruning"
    asked: ClassVar[list[list[dict[str, Any]]]] = []

    def prune(self, job_variables: list[dict[str, Any]]) -> int:
        self.asked.append(job_variables)
        return 1


def test_sweep_prunes_by_what_deployments_need(
    services: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(REGISTRY, "pruning", f"{__name__}:PruningProcess")
    create_pool(services, WorkPoolCreate(name="shared", type="pruning", config=SOURCE_ROOTS))
    body = deployment_body(work_pool="shared", job_variables={"env": {"A": "1"}})
    deploy(services, DeploymentCreate.model_validate(body))
    assert services.scheduler.reconciler.sweep_orphans() == 1
    assert PruningProcess.asked == [[{"env": {"A": "1"}}]]
    # A second tick within the sweep interval does not sweep again.
    services.scheduler.tick(clock())
    services.scheduler.tick(clock.advance(60))
    assert len(PruningProcess.asked) == 2


def _running(services: Services, dep: Deployment, n: int) -> list[FlowRun]:
    """``n`` ad-hoc runs made RUNNING at one instant (one ``expected_start``: a tie)."""
    runs = [create_run(services, dep.id, RunCreate())[0] for _ in range(n)]
    for run in runs:
        set_state(services.store, run.id, StateType.RUNNING, now=services.clock())
    return runs


def test_reconcile_pages_through_more_active_runs_than_its_limit(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    """Only the last run in (expected_start, id) order goes silent; a pass checks two runs,
    so a reconciler that always began at the oldest would never reach it."""
    runs = _running(services, sleeper, 5)
    stale = max(runs, key=lambda r: r.id)
    clock.advance(services.settings.heartbeat_timeout_seconds + 1)
    for run in runs:
        if run.id != stale.id:
            services.store.record_heartbeat(run.id, clock())
    reconciler = services.scheduler.reconciler
    checked = []
    for _ in range(3):
        assert services.store.get_run(stale.id).state.type == StateType.RUNNING
        checked.append(reconciler.run(clock(), limit=2).checked)
    assert checked == [2, 2, 1]
    assert services.store.get_run(stale.id).state.type == StateType.CRASHED
    live = [r.id for r in runs if services.store.get_run(r.id).state.type == StateType.RUNNING]
    assert len(live) == 4
    assert reconciler.run(clock(), limit=2).checked == 2  # round again from the oldest


def test_reconcile_stops_at_the_deadline_and_the_next_pass_goes_on(
    services: Services, clock: FakeClock, sleeper: Deployment
) -> None:
    _running(services, sleeper, 3)
    reconciler = services.scheduler.reconciler
    assert reconciler.run(clock(), deadline=clock()).checked == 0
    assert reconciler.run(clock()).checked == 3


def test_reconcile_asks_each_pool_once_for_a_page_of_statuses(
    services: Services, sleeper: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``status_many`` per pool per pass (on ECS: one DescribeTasks per 100 tasks)."""
    _running(services, sleeper, 3)
    asked: list[int] = []
    real = ProcessProvisioner.status_many

    def spy(self: ProcessProvisioner, refs: Any) -> Any:
        asked.append(len(refs))
        return real(self, refs)

    monkeypatch.setattr(ProcessProvisioner, "status_many", spy)
    assert services.scheduler.reconciler.run(services.clock()).checked == 3
    assert asked == [3]


class FullProcess(ProcessProvisioner):
    """A process pool whose platform says 'no room' for the first ``refusals`` submits."""

    type = "full"
    refusals: ClassVar[list[int]] = [0]

    def submit(self, request: SubmitRequest) -> InfraRef:
        if self.refusals[0] > 0:
            self.refusals[0] -= 1
            raise CapacityUnavailable("quota of 1 group reached", retry_after_seconds=20)
        return super().submit(request)


def test_no_capacity_requeues_the_run_instead_of_failing_it(
    services: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(REGISTRY, "full", f"{__name__}:FullProcess")
    monkeypatch.setattr(FullProcess, "refusals", [2])
    create_pool(
        services,
        WorkPoolCreate(
            name="tight", type="full", config={"allow_job_commands": True, **SOURCE_ROOTS}
        ),
    )
    body = deployment_body(work_pool="tight", job_variables={"command": SLEEP})
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    run, _ = create_run(services, dep.id, RunCreate())
    after = services.store.get_run(run.id)
    assert (after.state.type, after.state.name) == (StateType.SCHEDULED, "AwaitingCapacity")
    assert "quota of 1 group reached" in (after.state.message or "")
    assert after.run_count == 0 and after.token_hash is None and after.infra is None
    services.scheduler.tick(clock.advance(5))  # not due again before retry_after
    assert services.store.get_run(run.id).state.name == "AwaitingCapacity"
    services.scheduler.tick(clock.advance(20))  # refused once more
    assert services.store.get_run(run.id).run_count == 0
    services.scheduler.tick(clock.advance(21))
    started = services.store.get_run(run.id)
    assert started.state.type == StateType.PENDING and started.infra is not None
    assert started.run_count == 1  # refusals are not attempts
    names = [s.name for s in services.store.state_history(run.id)]
    assert names.count("AwaitingCapacity") == 2
    services.dispatcher.provisioner("tight").teardown(started.infra)


def test_pending_to_scheduled_is_legal_only_as_a_requeue() -> None:
    from service.errors import IllegalTransition
    from service.states import check_transition

    with pytest.raises(IllegalTransition):
        check_transition("r", StateType.PENDING, StateType.SCHEDULED)
    check_transition("r", StateType.PENDING, StateType.SCHEDULED, requeue=True)


def test_a_run_past_its_timeout_is_stopped_by_the_reconciler(
    services: Services, clock: FakeClock
) -> None:
    """The runner stops a flow at its deployment's timeout; where it cannot (here the
    'flow' is a bare sleeping process with no runner), the reconciler does, a margin later."""
    body = deployment_body(job_variables={"command": SLEEP}, timeout_seconds=60)
    dep = deploy(services, DeploymentCreate.model_validate(body))[0]
    run, _ = create_run(services, dep.id, RunCreate())
    set_state(services.store, run.id, StateType.RUNNING, now=clock())
    margin = services.settings.cancel_grace_seconds + services.settings.heartbeat_seconds
    clock.advance(60 + margin - 1)
    services.store.record_heartbeat(run.id, clock())
    services.scheduler.tick(clock())
    assert services.store.get_run(run.id).state.type == StateType.RUNNING  # the runner's turn
    clock.advance(2)
    services.store.record_heartbeat(run.id, clock())
    report = services.scheduler.tick(clock())
    assert report.reconcile.failed == 1
    after = services.store.get_run(run.id)
    assert after.state.type == StateType.FAILED and "timed out" in (after.state.message or "")
    assert after.error is not None and after.error["type"] == "TimedOut"
    assert after.infra is not None
    deadline = time.monotonic() + 10
    provisioner = services.dispatcher.provisioner("local")
    while not provisioner.status(after.infra).finished:  # cancelled: the process is stopped
        assert time.monotonic() < deadline
        time.sleep(0.05)
