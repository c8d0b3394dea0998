"""The ``aci`` pool type: every flow run is one Azure container group, pushed with a PUT.

Idempotency: the group's name is derived from (run id, attempt), and ``submit`` looks
for it (GET) before it creates it, so a retried or crashed dispatch adopts the group the
first one made. ``submit`` returns once ARM accepted the PUT (two calls): provisioning
failures are read later by ``status``. The quota limiter (:mod:`.quota`) and ARM's quota
answers raise :class:`CapacityUnavailable`: the run waits, it never fails for a quota.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

from provisioners.aci import links
from provisioners.aci.arm import ArmClient
from provisioners.aci.errors import ArmError
from provisioners.aci.graph import GraphRow, RunningMemo, pool_states
from provisioners.aci.groups import ContainerGroups, resource_group_id
from provisioners.aci.models import AciJobVariables, AciPoolConfig
from provisioners.aci.names import ATTEMPT_TAG, POOL_TAG, RUN_TAG, group_name
from provisioners.aci.quota import QuotaLimiter, limiter_for
from provisioners.aci.spec import group_spec, job_variables
from provisioners.aci.status import group_status, listed_status
from provisioners.base import (
    InfraRef,
    InfraState,
    InfraStatus,
    Progress,
    Provisioner,
    ProvisionPlan,
    SubmitRequest,
)
from provisioners.errors import CapacityUnavailable, ProvisionerError, scrubbed

log = logging.getLogger("pushpool.aci")

TYPE = "aci"
#: Parallel GETs of a status pass (groups Resource Graph shows ended or lacks).
STATUS_WORKERS = 8


def _cores(group: Any) -> float:
    total = 0.0
    for c in group.containers or []:
        requests = getattr(getattr(c, "resources", None), "requests", None)
        total += float(getattr(requests, "cpu", 0) or 0)
    return total


def _name(ref: InfraRef) -> str:
    """The group's name as Resource Graph rows are keyed (lowercased)."""
    return str(ref.data["name"]).lower()


def _tag(group: Any, key: str) -> str | None:
    return (group.tags or {}).get(key)


class AciProvisioner(Provisioner):
    type = TYPE
    config_model = AciPoolConfig
    job_variables_model = AciJobVariables
    config: AciPoolConfig

    def __init__(
        self,
        pool_name: str,
        config: dict[str, Any],
        *,
        arm: ArmClient | None = None,
        limiter: QuotaLimiter | None = None,
    ) -> None:
        super().__init__(pool_name, config)
        self.arm = arm or ArmClient(self.config.subscription_id)
        self._limiter = limiter
        self._running_memo = RunningMemo()

    @cached_property
    def limiter(self) -> QuotaLimiter:
        return self._limiter or limiter_for(
            self.config.subscription_id, self.config.location, self.shared
        )

    @cached_property
    def groups(self) -> ContainerGroups:
        return ContainerGroups(self.arm, self.config.resource_group)

    # -- submission ------------------------------------------------------------------------
    def _ref(self, group: Any, run_id: str, attempt: int) -> InfraRef:
        return InfraRef(
            type=self.type,
            id=self.groups.id(group.name),
            data={
                "run_id": run_id,
                "attempt": attempt,
                "name": group.name,
                "resource_group": self.config.resource_group,
                "subscription_id": self.config.subscription_id,
                "location": self.config.location,
            },
        )

    def _ours(self, group: Any, request: SubmitRequest) -> bool:
        expected = {
            POOL_TAG: self.pool_name,
            RUN_TAG: request.run_id,
            ATTEMPT_TAG: str(request.attempt),
        }
        return all(_tag(group, k) == v for k, v in expected.items())

    def _existing(self, request: SubmitRequest) -> InfraRef | None:
        group = self.groups.get(group_name(request.run_id, request.attempt))
        if group is None:
            return None
        if not self._ours(group, request):
            raise ProvisionerError(
                f"container group {group.name} exists but is not this run's (its tags differ)"
            )
        return self._ref(group, request.run_id, request.attempt)

    def find(self, request: SubmitRequest) -> InfraRef | None:
        return self._existing(request)

    def submit(self, request: SubmitRequest) -> InfraRef:
        try:
            return self._submit(request)
        except ProvisionerError as exc:
            clean = scrubbed(exc, request.secret_texts())
            if clean is not None:
                raise clean from None
            raise

    def _admit(self, name: str, cores: float, *, count: bool) -> None:
        refusal = self.limiter.try_create(
            self.groups.id(name), cores, self.config.quota, count=count
        )
        if refusal is not None:
            raise CapacityUnavailable(
                refusal.reason, retry_after_seconds=refusal.retry_after_seconds
            )

    def _submit(self, request: SubmitRequest) -> InfraRef:
        job = job_variables(self.config, request.job_variables)
        name = group_name(request.run_id, request.attempt)
        spec = group_spec(self.config, self.pool_name, name, request, job)
        self._admit(name, spec.cores, count=False)  # no room: not even a GET
        existing = self._existing(request)
        if existing is not None:
            log.info("run %s attempt %d: adopting %s", request.run_id, request.attempt, name)
            return existing
        self._admit(name, spec.cores, count=True)
        try:
            group = self.groups.create(name, spec.body)
        except ArmError as exc:
            return self._create_failed(exc, request)
        log.info("run %s attempt %d: created %s", request.run_id, request.attempt, name)
        return self._ref(group, request.run_id, request.attempt)

    def _create_failed(self, exc: ArmError, request: SubmitRequest) -> InfraRef:
        name = group_name(request.run_id, request.attempt)
        if exc.status == 412:  # If-None-Match: another dispatcher created it meanwhile
            existing = self._existing(request)
            if existing is not None:
                return existing
        if exc.quota:
            self.limiter.gone(self.groups.id(name))
            raise CapacityUnavailable(
                f"ACI has no room: {exc}", retry_after_seconds=exc.retry_after or 60.0
            ) from exc
        if not exc.transient:
            self.limiter.gone(self.groups.id(name))
        raise exc

    # -- watching ----------------------------------------------------------------------------
    def status(self, ref: InfraRef) -> InfraStatus:
        return group_status(self.groups.get(str(ref.data["name"])), ref.id)

    def status_many(self, refs: Sequence[InfraRef]) -> dict[str, InfraStatus]:
        """One ARM list of the resource group (existence, provisioning, cores for the
        limiter) and one Resource Graph query per 1,000 groups (instance states; ARM's
        list has none), then a GET only for a group the graph says has ended (for its
        exit code and events) or has no state for (:mod:`.graph` on freshness)."""
        if not refs:
            return {}
        try:
            listed = {g.name.lower(): g for g in self.groups.list()}
        except ArmError as exc:
            log.warning("status of %d container group(s): %s", len(refs), exc)
            return {}
        self._observe(listed.values())
        statuses: dict[str, InfraStatus] = {}
        unsettled: list[InfraRef] = []
        for ref in refs:
            group = listed.get(str(ref.data["name"]).lower())
            known = group_status(None, ref.id) if group is None else listed_status(group)
            if known is None:
                unsettled.append(ref)
            else:
                statuses[ref.id] = known
        rows = self._graph_rows(len(unsettled)) if unsettled else None
        memo = self._running_memo
        to_get = [r for r in unsettled if rows is None or not memo.believed_running(rows, _name(r))]
        asked = {r.id for r in to_get}
        statuses |= {r.id: InfraStatus(InfraState.RUNNING) for r in unsettled if r.id not in asked}
        with ThreadPoolExecutor(max_workers=STATUS_WORKERS) as pool:
            for ref, got in zip(to_get, pool.map(self._try_status, to_get), strict=True):
                if got is None:
                    continue
                statuses[ref.id] = got
                if rows is not None and got.state == InfraState.RUNNING:
                    memo.confirm(rows, _name(ref))
        return statuses

    def _graph_rows(self, wanted: int) -> dict[str, GraphRow] | None:
        """Resource Graph's rows of this pool's groups (``None`` if it fails: GETs then)."""
        try:
            return pool_states(self.arm, self.config.resource_group, self.pool_name)
        except ArmError as exc:
            log.warning("Resource Graph: %s; reading %d group(s) one by one", exc, wanted)
            return None

    def _try_status(self, ref: InfraRef) -> InfraStatus | None:
        try:
            return self.status(ref)
        except ProvisionerError as exc:
            log.warning("status of %s: %s", ref.id, exc)
            return None

    def _observe(self, groups: Any) -> None:
        scope = resource_group_id(self.config.subscription_id, self.config.resource_group)
        self.limiter.observe(scope, [(self.groups.id(g.name), _cores(g)) for g in groups])

    def log_tail(self, ref: InfraRef, max_lines: int = 200) -> list[str]:
        content = self.groups.logs(str(ref.data["name"]), max_lines)
        return content.splitlines()[-max_lines:] if content else []

    def infra_links(self, ref: InfraRef) -> dict[str, str]:
        return {"container_group": links.portal_url(ref.id)}

    # -- stopping ----------------------------------------------------------------------------
    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        """Stop the group's containers (ACI ends billing at once; it sends no SIGTERM
        grace). Teardown deletes the group once the run is final. A group ARM will not
        stop yet (409: still being created) is deleted instead, which ends it too."""
        try:
            self.groups.stop(str(ref.data["name"]))
        except ArmError as exc:
            if exc.status != 409:
                raise
            log.info("%s cannot be stopped now (%s): deleting it", ref.data["name"], exc.code)
            self.teardown(ref)

    def teardown(self, ref: InfraRef) -> None:
        """Delete the group (idempotent). Inside the delete quota, else a transient error
        the reconciler retries on its next pass."""
        refusal = self.limiter.try_delete(ref.id, self.config.quota)
        if refusal is not None:
            raise ProvisionerError(
                f"not deleting {ref.data['name']} yet: {refusal.reason}", transient=True
            )
        self.groups.delete(str(ref.data["name"]))
        self.limiter.gone(ref.id)

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        groups = self.groups.list()
        self._observe(groups)
        orphans = []
        for group in groups:
            run_id, attempt = _tag(group, RUN_TAG), _tag(group, ATTEMPT_TAG)
            if _tag(group, POOL_TAG) != self.pool_name or not run_id or run_id in live_run_ids:
                continue
            orphans.append(self._ref(group, run_id, int(attempt or 0)))
        return sorted(orphans, key=lambda r: r.id)

    # -- pool infrastructure -----------------------------------------------------------------
    def plan(self) -> ProvisionPlan:
        from provisioners.aci.infra import Infrastructure

        return Infrastructure.for_pool(self).plan()

    def provision(self, plan: ProvisionPlan, progress: Progress | None = None) -> dict[str, Any]:
        from provisioners.aci.infra import Infrastructure

        return Infrastructure.for_pool(self).apply(plan, list(self.config.provisioned), progress)

    def deprovision(self, progress: Progress | None = None) -> None:
        from provisioners.aci.infra import Infrastructure

        for ref in self.list_orphans(set()) if self._resource_group_exists() else []:
            self.teardown(ref)
        Infrastructure.for_pool(self).remove(list(self.config.provisioned), progress)

    def _resource_group_exists(self) -> bool:
        ops = self.arm.client("resources").resource_groups
        found = self.arm.maybe("resourceGroups/read", lambda: ops.get(self.config.resource_group))
        return found is not None

    def setup_notes(self) -> dict[str, str]:
        from provisioners.aci.infra import setup_notes

        return setup_notes(self)
