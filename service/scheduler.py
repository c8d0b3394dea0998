"""The tick: materialise scheduled runs, apply the missed-run policy, dispatch, reconcile.

Cost follows due work, not the number of deployments: schedules are found through
their ``next_fire_at`` cursor, runs through ``(state, expected_start)``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service import events
from service.automation_records import FIRING_KEPT
from service.dispatch import Dispatcher
from service.errors import DeploymentNotFound, IllegalTransition
from service.event_records import Event
from service.models import CatchupPolicy, Deployment, FlowRun, ScheduleRecord, StateRecord
from service.reconcile import Reconciler, ReconcileReport
from service.schedules import Schedule, fire_times, latest_fire_time, schedule_key
from service.states import SKIPPED, StateType, set_state
from service.store.base import Materialisation

log = logging.getLogger("pushpool.scheduler")

_RUN_NAMESPACE = uuid.UUID("5b0c6a2e-4a8e-4d53-9a43-0f5f1d2c7e11")
_EPSILON = timedelta(microseconds=1)
_LATE_MARK = "scheduler.late_cut"
_SWEEP_MARK = "scheduler.orphan_sweep"
#: Expired automation firing keys deleted per housekeeping pass (the rest: next pass).
_FIRINGS_PURGED_PER_PASS = 1000


def schedule_id(deployment_id: str, schedule: Schedule) -> str:
    """Stable for an unchanged schedule, so redeploying keeps its cursor and runs."""
    return f"{deployment_id}:{schedule_key(schedule)}"


def scheduled_run_id(deployment_id: str, sched_id: str, at: datetime) -> str:
    """Deterministic: two ticks materialising the same slot create one run."""
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{deployment_id}|{sched_id}|{at.isoformat()}"))


def _state_event(run: FlowRun) -> Event:
    """The run's first state event (``Scheduled``, or ``Cancelled`` for a skipped slot),
    as an API-created run records. Its id follows from the run's, so two ticks that
    materialise one slot record one event (appending is idempotent by id)."""
    event = events.run_state_event(run)
    ns = int(run.created_at.timestamp() * 1_000_000) * 1000
    digest = uuid.uuid5(_RUN_NAMESPACE, f"first-state|{run.id}").hex[:16]
    return event.model_copy(update={"id": f"{ns:016x}-{digest}"})


def first_cursor(schedule: Schedule, now: datetime) -> datetime | None:
    nxt = fire_times(schedule, now, limit=1)
    return nxt[0] if nxt else None


def schedule_records(deployment: Deployment, now: datetime) -> list[ScheduleRecord]:
    return [
        ScheduleRecord(
            id=schedule_id(deployment.id, s),
            deployment_id=deployment.id,
            schedule=s,
            next_fire_at=first_cursor(s, now),
            active=s.active,
        )
        for s in deployment.schedules
    ]


@dataclass
class TickReport:
    schedules: int = 0
    materialised: int = 0
    skipped: int = 0
    actions: int = 0
    missed: int = 0
    dispatched: int = 0
    reconcile: ReconcileReport = field(default_factory=ReconcileReport)


class Scheduler:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.settings = dispatcher.settings
        self.reconciler = Reconciler(dispatcher)

    def tick(self, now: datetime, *, deadline: datetime | None = None) -> TickReport:
        """One full tick. Stops starting new work once ``deadline`` (if given) passes."""
        report = TickReport()

        def in_time() -> bool:
            return deadline is None or self.dispatcher.now() < deadline

        while in_time():
            n_sched, n_runs = self.materialise(now)
            report.schedules += n_sched
            report.materialised += n_runs
            if n_sched < self.settings.dispatch_batch_size:
                break
        report.skipped = self.skip_missed(now)
        batch = self.settings.dispatch_batch_size
        while in_time():
            claimed = self.dispatcher.dispatch_due(batch)
            report.dispatched += len(claimed)
            if len(claimed) < batch:
                break
        if in_time():
            report.reconcile = self.reconciler.run(now, deadline=deadline)
        if in_time():
            report.missed = self._fire_missed(now)
            report.actions = self._work_actions(now)
        if in_time() and self._sweep_due(now):
            report.reconcile.orphans = self.reconciler.sweep_orphans()
            self._expire_logs(now)
            self.store.expire_events(now)
            self.store.purge_automation_firings(now - FIRING_KEPT, _FIRINGS_PURGED_PER_PASS)
        return report

    def _fire_missed(self, now: datetime) -> int:
        """Fire the proactive triggers whose expected event is overdue (never raises)."""
        from service.automation_triggers import fire_due

        try:
            return fire_due(self.store, now)
        except Exception:  # a failing automation must not stop the tick
            log.exception("could not check proactive automations")
            return 0

    def _work_actions(self, now: datetime) -> int:
        """Try the automations' due action jobs (:mod:`service.automation_actions`)."""
        from service.automation_actions import work
        from service.services import Services

        d = self.dispatcher
        return work(Services(self.settings, self.store, d.clock, d.provisioners, d, self), now)

    def _expire_logs(self, now: datetime) -> None:
        """Delete log lines older than ``log_retention_days`` (0 keeps them)."""
        days = self.settings.log_retention_days
        if days > 0 and not self.store.expires_logs:
            deleted = self.store.delete_logs(before=now - timedelta(days=days))
            if deleted:
                log.info("deleted %d log line(s) older than %g day(s)", deleted, days)

    def _sweep_due(self, now: datetime) -> bool:
        """Whether this tick sweeps orphans (and prunes shared resources): one tick per
        ``orphan_sweep_seconds`` across every replica sharing the store."""
        every = timedelta(seconds=self.settings.orphan_sweep_seconds)
        return self.store.take_turn(_SWEEP_MARK, now, every)

    # -- materialisation -----------------------------------------------------------
    def materialise(self, now: datetime) -> tuple[int, int]:
        horizon = now + timedelta(seconds=self.settings.schedule_horizon_seconds)
        due = self.store.due_schedules(horizon, self.settings.dispatch_batch_size)
        batch = [self._plan(rec, dep, now, horizon) for rec, dep in due]
        created = self.store.materialise(batch) if batch else 0
        if created:
            events.append(self.store, [_state_event(run) for m in batch for run in m.runs])
        return len(due), created

    def _plan(
        self, rec: ScheduleRecord, dep: Deployment, now: datetime, horizon: datetime
    ) -> Materialisation:
        assert rec.next_fire_at is not None
        s, cap = rec.schedule, self.settings.schedule_max_runs_per_tick
        late_cut = now - timedelta(seconds=self.settings.misfire_grace_seconds)
        start = rec.next_fire_at - _EPSILON
        slots: list[tuple[datetime, bool]] = []  # (time, skipped)
        if rec.next_fire_at < late_cut:
            missed = fire_times(s, start, until=late_cut - _EPSILON, limit=cap)
            if dep.catchup == CatchupPolicy.ALL:
                slots += [(at, False) for at in missed]
                if len(missed) == cap:  # more to catch up: continue on the next tick
                    return self._materialisation(rec, dep, now, slots)
                start = missed[-1] if missed else start
            else:
                latest = latest_fire_time(s, late_cut, not_before=rec.next_fire_at)
                keep = latest if dep.catchup == CatchupPolicy.LATEST else None
                slots += [(at, True) for at in missed if at != keep]
                if latest is not None:
                    if keep is not None:
                        slots.append((keep, False))
                    elif latest not in missed:
                        slots.append((latest, True))
                    start = latest
        upcoming = fire_times(s, start, until=horizon, limit=cap)
        if len(upcoming) < self.settings.schedule_min_runs:
            upcoming = fire_times(s, start, limit=self.settings.schedule_min_runs)
        slots += [(at, False) for at in upcoming]
        return self._materialisation(rec, dep, now, slots)

    def _materialisation(
        self,
        rec: ScheduleRecord,
        dep: Deployment,
        now: datetime,
        slots: list[tuple[datetime, bool]],
    ) -> Materialisation:
        runs = [self._run(rec, dep, now, at, skipped) for at, skipped in slots]
        last = max((at for at, _ in slots), default=None)
        cursor = fire_times(rec.schedule, last, limit=1)[0] if last else rec.next_fire_at
        return Materialisation(rec.id, runs, cursor)

    @staticmethod
    def _run(
        rec: ScheduleRecord, dep: Deployment, now: datetime, at: datetime, skipped: bool
    ) -> FlowRun:
        if skipped:
            state = StateRecord(
                type=StateType.CANCELLED,
                name=SKIPPED,
                message=f"missed while the scheduler was not running (catchup={dep.catchup})",
                timestamp=now,
            )
        else:
            state = StateRecord(type=StateType.SCHEDULED, name="Scheduled", timestamp=now)
        return FlowRun(
            id=scheduled_run_id(dep.id, rec.id, at),
            deployment_id=dep.id,
            flow_name=dep.flow_name,
            deployment_name=dep.name,
            work_pool=dep.work_pool,
            state=state,
            parameters=dict(dep.parameters),
            schedule_id=rec.id,
            auto_scheduled=True,
            expected_start=at,
            end_time=now if skipped else None,
            tags=list(dep.tags),
            created_at=now,
            updated_at=now,
        )

    # -- missed runs that were materialised before the scheduler stopped ---------------
    def skip_missed(self, now: datetime) -> int:
        """Apply each deployment's catch-up policy to runs that went late since last time.

        A run is judged once, in the tick where it first counts as late: the window
        ``[previous cut, this cut)`` moves on with every tick, so a backlog (a paused
        pool, say) is not read again and again.
        """
        late_cut = now - timedelta(seconds=self.settings.misfire_grace_seconds)
        stored = self.store.get_meta(_LATE_MARK)
        since = datetime.fromisoformat(stored) if stored else None
        if since is not None and since >= late_cut:
            return 0
        newly_late = self.store.runs_in_states(
            [StateType.SCHEDULED], 10_000, before=late_cut, since=since, auto_scheduled=True
        )
        newest: dict[str, datetime] = {}
        for run in newly_late:
            if run.deployment_id is not None:
                newest[run.deployment_id] = run.expected_start  # ascending: last is newest
        skipped = sum(self._skip(d, at, late_cut, now) for d, at in newest.items())
        if len(newly_late) < 10_000:
            self.store.set_meta(_LATE_MARK, late_cut.isoformat())
        return skipped

    def _skip(self, deployment_id: str, newest: datetime, late_cut: datetime, now: datetime) -> int:
        try:
            policy = self.store.get_deployment(deployment_id).catchup
        except DeploymentNotFound:
            return 0
        if policy == CatchupPolicy.ALL:
            return 0
        cut = newest if policy == CatchupPolicy.LATEST else late_cut
        doomed = self.store.runs_in_states(
            [StateType.SCHEDULED],
            10_000,
            before=cut,
            auto_scheduled=True,
            deployment_id=deployment_id,
        )
        skipped = 0
        for run in doomed:
            try:
                set_state(
                    self.store,
                    run.id,
                    StateType.CANCELLED,
                    now=now,
                    name=SKIPPED,
                    message=f"missed its start by more than "
                    f"{self.settings.misfire_grace_seconds}s (catchup={policy})",
                    expected=StateType.SCHEDULED,
                )
                skipped += 1
            except IllegalTransition:
                continue
        return skipped
