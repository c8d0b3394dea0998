"""Finding a run by what a user types, and saying why a scheduled run has not started."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import datetime

from service.errors import InvalidInput, RunNotFound
from service.models import FlowRun
from service.services import Services
from service.states import ACTIVE, AWAITING_CAPACITY, AWAITING_RETRY, StateType
from service.store.base import RunFilter, Store

#: Shortest id prefix looked up (a shorter one matches too much to be useful).
MIN_PREFIX = 4


def resolve_run(store: Store, ref: str) -> FlowRun:
    """The run whose id is ``ref``, whose id starts with ``ref``, or whose name is ``ref``.

    Raises ``RunNotFound`` when nothing matches and ``InvalidInput`` (naming the matches)
    when more than one does.
    """
    try:
        return store.get_run(ref)
    except RunNotFound:
        pass
    found: dict[str, FlowRun] = {}
    if len(ref) >= MIN_PREFIX:
        found |= {r.id: r for r in store.list_runs(RunFilter(id_prefix=ref), 5).items}
    found |= {r.id: r for r in store.list_runs(RunFilter(name=ref), 5).items}
    if not found:
        raise RunNotFound(ref)
    if len(found) > 1:
        matches = ", ".join(f"{r.id} ({r.name})" for r in list(found.values())[:5])
        raise InvalidInput(
            "run_id",
            f"{ref!r} matches more than one run: {matches}; give more of the id",
            where="path",
        )
    return next(iter(found.values()))


def infra_links(svc: Services, run: FlowRun) -> dict[str, str]:
    """Console and log links for the run's infrastructure ({} before it has any, or when
    its pool is gone)."""
    if run.infra is None:
        return {}
    try:
        return svc.dispatcher.provisioner(run.work_pool).infra_links(run.infra)
    except LookupError:
        return {}


def waiting_reasons(svc: Services, run: FlowRun, now: datetime) -> list[str]:
    """Why a ``SCHEDULED`` run is not running yet, most decisive first ([] otherwise)."""
    if run.state.type != StateType.SCHEDULED:
        return []
    reasons: list[str] = []
    if run.expected_start > now:
        reasons.append(f"not due until {run.expected_start.isoformat()}")
    if run.state.name == AWAITING_CAPACITY:
        reasons.append(f"the platform has no capacity: {run.state.message or 'no reason given'}")
    elif run.state.name == AWAITING_RETRY:
        reasons.append("waiting to retry after a failed attempt")
    reasons += _paused(svc, run)
    reasons += _limits(svc, run)
    return reasons


def _paused(svc: Services, run: FlowRun) -> list[str]:
    out = []
    try:
        if svc.store.get_pool(run.work_pool).paused:
            out.append(f"work pool {run.work_pool!r} is paused")
    except LookupError:
        out.append(f"work pool {run.work_pool!r} no longer exists")
    if run.deployment_id is not None:
        try:
            if svc.store.get_deployment(run.deployment_id).paused:
                out.append(f"deployment {run.flow_name}/{run.deployment_name} is paused")
        except LookupError:
            pass
    return out


def _limit_scopes(svc: Services, run: FlowRun) -> list[tuple[str, int | None, RunFilter]]:
    """(label, concurrency limit, the runs it counts) for the run's pool and deployment."""
    scopes: list[tuple[str, int | None, RunFilter]] = []
    with contextlib.suppress(LookupError):
        pool = svc.store.get_pool(run.work_pool)
        scopes.append(
            (f"work pool {pool.name!r}", pool.concurrency_limit, RunFilter(work_pool=pool.name))
        )
    if run.deployment_id is not None:
        with contextlib.suppress(LookupError):
            dep = svc.store.get_deployment(run.deployment_id)
            label = f"deployment {dep.flow_name}/{dep.name}"
            scopes.append((label, dep.concurrency_limit, RunFilter(deployment_id=dep.id)))
    return scopes


def _limits(svc: Services, run: FlowRun) -> list[str]:
    """A concurrency limit that is full, and how many due runs queue ahead of this one."""
    out = []
    for label, limit, scope in _limit_scopes(svc, run):
        if limit is None:
            continue
        running = svc.store.count_runs(replace(scope, states=sorted(ACTIVE)))
        if running < limit:
            continue
        queued = replace(scope, states=[StateType.SCHEDULED], before=run.expected_start)
        out.append(
            f"{label} is at its concurrency limit ({running} of {limit} running); "
            f"{svc.store.count_runs(queued)} due run(s) ahead of this one"
        )
    return out
