"""The reconciler: every run reaches a final state and nothing is left behind.

Runs as part of each tick. It judges runs whose infrastructure stopped without a final
report by the infrastructure's evidence (:func:`judge_exit`: the runner's exit code says
what the flow did), resolves runs stuck in ``PENDING``, crashes runs whose heartbeat went
stale, tears down the infrastructure of finished attempts and sweeps orphans.

Nothing is judged in haste: a run whose infrastructure just exited gets
``report_grace_seconds`` for a report in flight; after the control plane itself was
down (a gap of ``outage_gap_seconds`` between passes) every run gets a full heartbeat
window from the first pass after it. A run ended ``CRASHED`` or ``FAILED`` here gets the
tail of the platform's own log of the attempt appended to its logs ("last words").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from provisioners.base import InfraRef, InfraStatus, Provisioner
from service.dispatch import Dispatcher, Lookups
from service.errors import IllegalTransition, NotFound, PushpoolError
from service.models import FlowRun, LogLine, WorkPool
from service.security import redact_secrets
from service.states import ACTIVE, StateType, set_state

log = logging.getLogger("pushpool.reconcile")

#: The runner's exit codes (``runner_image/runner.py``; the runner imports nothing of ours).
EXIT_COMPLETED = 0
EXIT_FAILED = 1
CANCELLED_EXIT_CODES = frozenset({130, 143})
LAST_WORDS_LINES = 200
_LAST_PASS = "reconcile.last_pass"
_RESUMED = "reconcile.resumed_at"


@dataclass(frozen=True)
class Verdict:
    state: StateType
    message: str
    error: dict[str, object] | None = None


def judge_exit(run_state: StateType, status: InfraStatus) -> Verdict:
    """What a run whose infrastructure stopped without a final report ended as.

    Exit 0: the flow completed (its result was not delivered) - ``COMPLETED``, never
    retried. Exit 1: the flow failed - ``FAILED`` (retries apply). A cancelled run stays
    cancelled; anything else (a runner fault, a signal, no exit code) is ``CRASHED``.
    """
    code = status.exit_code
    reason = status.reason or f"infrastructure is {status.state.value.lower()}"
    if run_state == StateType.CANCELLING:
        return Verdict(StateType.CANCELLED, "infrastructure stopped")
    if code == EXIT_COMPLETED and run_state != StateType.PENDING:
        return Verdict(
            StateType.COMPLETED,
            f"the flow completed ({reason}) but its result was not delivered",
        )
    error: dict[str, object] = {
        "type": "InfrastructureExited",
        "message": reason,
        "exit_code": code,
    }
    if code == EXIT_FAILED and run_state != StateType.PENDING:
        return Verdict(
            StateType.FAILED, f"the flow failed ({reason}); its error was not delivered", error
        )
    return Verdict(StateType.CRASHED, f"{reason} without reporting a final state", error)


@dataclass
class ReconcileReport:
    checked: int = 0
    crashed: int = 0
    cancelled: int = 0
    #: Judged from the infrastructure's evidence (exit 0 / exit 1) when no report came.
    completed: int = 0
    failed: int = 0
    resubmitted: int = 0
    torn_down: int = 0
    orphans: int = 0


class Reconciler:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.store = dispatcher.store
        self.settings = dispatcher.settings
        #: Where the next pass goes on: ``(expected_start, id)`` of the last run checked,
        #: or ``None`` to start again from the oldest.
        self._resume_after: tuple[datetime, str] | None = None
        #: When this reconciler first saw an attempt's infrastructure finished, by infra id.
        self._seen_exited: dict[str, datetime] = {}
        #: Heartbeats are judged from no earlier than this (the end of an outage).
        self._resumed_at: datetime | None = None

    def _note_pass(self, now: datetime) -> None:
        """Record this pass; after a gap longer than ``outage_gap_seconds`` (the control
        plane was down), runs get a fresh heartbeat window from now."""
        last = self.store.get_meta(_LAST_PASS)
        gap = timedelta(seconds=self.settings.outage_gap_seconds)
        if last is not None and now - datetime.fromisoformat(last) > gap:
            self.store.set_meta(_RESUMED, now.isoformat())
            log.warning("the control plane was down since %s: heartbeats judged from now", last)
        self.store.set_meta(_LAST_PASS, now.isoformat())
        resumed = self.store.get_meta(_RESUMED)
        self._resumed_at = datetime.fromisoformat(resumed) if resumed else None

    def run(
        self, now: datetime, limit: int = 1000, *, deadline: datetime | None = None
    ) -> ReconcileReport:
        """Check up to ``limit`` active runs, then work the teardown queue.

        With more active runs than ``limit`` (or a ``deadline`` that stops a pass early),
        each pass goes on where the previous one stopped and wraps round to the oldest,
        so every active run is checked within a few ticks, however many there are."""
        report = ReconcileReport()
        self._note_pass(now)
        lookups = self.dispatcher.lookups()
        page = self.store.runs_in_states(sorted(ACTIVE), limit, after=self._resume_after)
        if not page and self._resume_after is not None:  # the last pass ended the list
            self._resume_after = None
            page = self.store.runs_in_states(sorted(ACTIVE), limit)
        statuses = self._statuses(page, lookups)
        # Only a RUNNING run's deployment is read (its timeout): all of them in one call.
        lookups.prefetch(r.deployment_id for r in page if r.state.type == StateType.RUNNING)
        for run in page:
            if deadline is not None and self.dispatcher.now() >= deadline:
                return report  # the next pass goes on from here
            report.checked += 1
            self._resume_after = (run.expected_start, run.id)
            if run.infra is not None and run.id not in statuses:
                continue  # its platform could not say: asked again next pass
            try:
                self._check(run, now, report, lookups, statuses.get(run.id))
            except (IllegalTransition, NotFound):
                continue  # the run moved on meanwhile, or its pool is gone
            except PushpoolError as exc:
                log.warning("reconciling %s: %s", run.id, exc)
        if len(page) < limit:
            self._resume_after = None  # seen them all: the next pass starts at the oldest
        self._teardown(report, deadline)
        return report

    def reconcile_run(self, run_id: str, infra_id: str, now: datetime) -> str:
        """Reconcile one run now (its infrastructure said it stopped); then work the
        teardown queue. Returns what happened, for the caller's log."""
        report = ReconcileReport()
        try:
            run = self.store.get_run(run_id)
        except NotFound:
            return "unknown run"
        outcome = "unchanged"
        if run.infra is None or run.infra.id != infra_id:
            outcome = "not the current attempt"
        elif run.state.type not in ACTIVE:
            outcome = "already final"
        else:
            try:
                # The platform's stop event comes after its own stop delay: that is the grace.
                self._check(run, now, report, self.dispatcher.lookups(), grace=False)
            except (IllegalTransition, NotFound):
                outcome = "moved on"
        self._teardown(report)
        for name in ("crashed", "cancelled", "completed", "failed"):
            if getattr(report, name):
                return name
        return outcome

    def _finish(
        self, run: FlowRun, now: datetime, target: StateType, message: str, **fields: object
    ) -> None:
        set_state(
            self.store,
            run.id,
            target,
            now=now,
            message=message,
            expected=run.state.type,
            fields=dict(fields),
        )

    def _statuses(self, runs: list[FlowRun], lookups: Lookups) -> dict[str, InfraStatus]:
        """The infrastructure status of every run that has some, keyed by run id: one
        ``status_many`` per pool (ECS: one DescribeTasks per 100 tasks, not one each)."""
        by_pool: dict[str, list[tuple[str, InfraRef]]] = {}
        for run in runs:
            if run.infra is not None:
                by_pool.setdefault(run.work_pool, []).append((run.id, run.infra))
        statuses: dict[str, InfraStatus] = {}
        for pool, pairs in by_pool.items():
            try:
                found = lookups.provisioner(pool).status_many([ref for _, ref in pairs])
            except PushpoolError as exc:  # its pool is gone, or its platform failed
                log.warning("status of %d run(s) in pool %s: %s", len(pairs), pool, exc)
                continue
            statuses |= {run_id: found[ref.id] for run_id, ref in pairs if ref.id in found}
        return statuses

    def _check(
        self,
        run: FlowRun,
        now: datetime,
        report: ReconcileReport,
        lookups: Lookups,
        status: InfraStatus | None = None,
        *,
        grace: bool = True,
    ) -> None:
        """``status`` is the run's infrastructure status if the caller has it already;
        ``grace=False`` judges an exited attempt without waiting for a report in flight."""
        age = now - run.state.timestamp
        if run.infra is None:
            if run.state.type == StateType.CANCELLING:
                self._finish(run, now, StateType.CANCELLED, "cancelled before it started")
                report.cancelled += 1
            elif age > timedelta(seconds=self.settings.submit_timeout_seconds):
                self.dispatcher.resubmit(run)
                report.resubmitted += 1
            return
        provisioner = lookups.provisioner(run.work_pool)
        if status is None:
            status = provisioner.status(run.infra)
        if status.finished:
            if grace and self._in_grace(run.infra, now):
                return  # a report may be on its way
            self._stopped(run, now, status, report, provisioner)
            return
        if self._timed_out(run, now, lookups):
            limit = self._timeout_of(run, lookups)
            self._last_words(run, provisioner, now)
            message = f"timed out: still running {limit}s after it started; stopped"
            error = {"type": "TimedOut", "message": message}
            self._finish(run, now, StateType.FAILED, message, error=error)
            provisioner.cancel(run.infra, self.settings.cancel_grace_seconds)
            report.failed += 1
            return
        reason = self._gave_up(run, now, age)
        if reason is not None:
            self._last_words(run, provisioner, now)
            self._finish(run, now, StateType.CRASHED, reason)
            provisioner.cancel(run.infra, self.settings.cancel_grace_seconds)
            report.crashed += 1

    def _in_grace(self, ref: InfraRef, now: datetime) -> bool:
        """Whether the attempt's end was first seen less than ``report_grace_seconds`` ago."""
        grace = timedelta(seconds=self.settings.report_grace_seconds)
        if not grace:
            return False
        if len(self._seen_exited) > 10_000:
            self._seen_exited.clear()  # only ever a delay, never a wrong verdict
        first = self._seen_exited.setdefault(ref.id, now)
        return now - first < grace

    def _last_words(self, run: FlowRun, provisioner: Provisioner, now: datetime) -> None:
        """Append the tail of the platform's own log of the attempt, marked as such."""
        if run.infra is None:
            return
        try:
            tail = provisioner.log_tail(run.infra, LAST_WORDS_LINES)
        except PushpoolError as exc:
            log.warning("last words of %s: %s", run.id, exc)
            return
        if not tail:
            return
        source = f"{provisioner.type} platform log"
        header = f"--- the last {len(tail)} line(s) of the {source} of attempt {run.run_count} ---"
        lines = [
            LogLine(
                run_id=run.id,
                timestamp=now,
                level="INFO",
                message=redact_secrets(text),
                stream="platform",
                logger=source,
            )
            for text in [header, *tail]
        ]
        self.store.append_logs(run.id, lines)

    @staticmethod
    def _timeout_of(run: FlowRun, lookups: Lookups) -> int | None:
        deployment = lookups.deployment(run.deployment_id)
        return None if deployment is None else deployment.timeout_seconds

    def _timed_out(self, run: FlowRun, now: datetime, lookups: Lookups) -> bool:
        """The backstop of the runner's own timeout: a ``RUNNING`` run still alive well past
        its deployment's ``timeout_seconds`` (the runner could not stop it: a flow stuck in
        C code, a runner killed mid-stop). The margin leaves the runner time to stop the
        flow and report ``TimedOut`` itself."""
        if run.state.type != StateType.RUNNING or run.start_time is None:
            return False
        limit = self._timeout_of(run, lookups)
        if limit is None:
            return False
        margin = self.settings.cancel_grace_seconds + self.settings.heartbeat_seconds
        return now - run.start_time > timedelta(seconds=limit + margin)

    def _gave_up(self, run: FlowRun, now: datetime, age: timedelta) -> str | None:
        """Why a run whose infrastructure still lives should be crashed, if it should."""
        s = self.settings
        if run.state.type == StateType.PENDING and age.total_seconds() > s.pending_timeout_seconds:
            return f"did not start within {s.pending_timeout_seconds}s"
        if run.state.type == StateType.RUNNING and self._stale(run, now):
            return f"no heartbeat for {s.heartbeat_timeout_seconds}s"
        return None

    def _stale(self, run: FlowRun, now: datetime) -> bool:
        last = run.heartbeat_at or run.state.timestamp
        if self._resumed_at is not None:
            last = max(last, self._resumed_at)
        return now - last > timedelta(seconds=self.settings.heartbeat_timeout_seconds)

    def _stopped(
        self,
        run: FlowRun,
        now: datetime,
        status: InfraStatus,
        report: ReconcileReport,
        provisioner: Provisioner,
    ) -> None:
        verdict = judge_exit(run.state.type, status)
        if verdict.state in (StateType.CRASHED, StateType.FAILED):
            self._last_words(run, provisioner, now)
        fields = {} if verdict.error is None else {"error": verdict.error}
        self._finish(run, now, verdict.state, verdict.message, **fields)
        counter = verdict.state.value.lower()
        setattr(report, counter, getattr(report, counter) + 1)

    def _teardown(self, report: ReconcileReport, deadline: datetime | None = None) -> None:
        for item in self.store.pending_teardowns(100):
            if deadline is not None and self.dispatcher.now() >= deadline:
                return
            try:
                self.dispatcher.provisioner(item.work_pool).teardown(item.infra)
            except NotFound:
                pass  # the pool is gone; nothing left to call
            except PushpoolError as exc:
                log.warning("teardown of %s failed, will retry: %s", item.run_id, exc)
                continue
            self.store.finish_teardown(item.id)
            report.torn_down += 1

    def _still_live(self, run_id: object) -> bool:
        if not isinstance(run_id, str):
            return False
        try:
            return self.store.get_run(run_id).state.type in ACTIVE
        except NotFound:
            return False

    def sweep_orphans(self) -> int:
        """Tear down infrastructure whose run is finished and no longer queued, and delete
        platform secrets no deployment references any more."""
        active = self.store.runs_in_states(sorted(ACTIVE), 10_000)
        live = {r.id for r in active}
        live |= {t.run_id for t in self.store.pending_teardowns(10_000)}
        swept = 0
        for pool in self.store.list_pools():
            try:
                swept += self._sweep_pool(pool, live)
            except PushpoolError as exc:
                log.warning("sweeping pool %s: %s", pool.name, exc)
            swept += self._prune_secrets(pool, [r for r in active if r.work_pool == pool.name])
        return swept

    def _prune_secrets(self, pool: WorkPool, active: list[FlowRun]) -> int:
        """Delete the pool's platform secrets that neither its deployments nor its active
        runs reference (block values resolved at dispatch: ``service.blocks.resolve``). Not
        while one of its runs is ``PENDING``: the platform reads a run's secrets when it
        starts it. A failure is logged; the next pass tries again."""
        if any(r.state.type == StateType.PENDING for r in active):
            return 0
        try:
            provisioner = self.dispatcher.provisioners.for_pool(pool)
            if type(provisioner).prune_secrets is Provisioner.prune_secrets:
                return 0  # a type without platform secrets
            from service.blocks.resolve import referenced_sources

            jobs = [d.job_variables for d in self.store.list_deployments(work_pool=pool.name)]
            jobs += [r.job_variables for r in active]
            return provisioner.prune_secrets(referenced_sources(jobs))
        except PushpoolError as exc:
            log.warning("pruning the secrets of pool %s, will retry: %s", pool.name, exc)
            return 0

    def _sweep_pool(self, pool: WorkPool, live: set[str]) -> int:
        provisioner = self.dispatcher.provisioners.for_pool(pool)
        swept = 0
        if type(provisioner).prune is not Provisioner.prune:  # only types with shared resources
            needed = [d.job_variables for d in self.store.list_deployments(work_pool=pool.name)]
            swept += provisioner.prune(needed)
        for ref in provisioner.list_orphans(live):
            if self._still_live(ref.data.get("run_id")):
                continue  # started after ``live`` was read
            provisioner.teardown(ref)
            swept += 1
        return swept
