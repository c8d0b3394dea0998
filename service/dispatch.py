"""Dispatch: claim due runs exactly once and push each to its pool's provisioner."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from provisioners.base import (
    InfraRef,
    Provisioner,
    SharedState,
    SubmitRequest,
    get_provisioner,
)
from provisioners.errors import CapacityUnavailable
from service import events
from service.clock import Clock
from service.errors import (
    BlockKeyError,
    DeploymentNotFound,
    IllegalTransition,
    ProvisionerError,
    PushpoolError,
)
from service.models import Deployment, FlowRun, WorkPool
from service.security import new_bootstrap_credential
from service.states import StateType, requeue_for_capacity, set_state
from service.store.base import Store

if TYPE_CHECKING:
    from service.blocks.crypto import Keyring
    from service.settings import Settings

log = logging.getLogger("pushpool.dispatch")

#: Submitted runs whose infrastructure is recorded in one store write, at most...
RECORD_BATCH = 50
#: ...and no later than this many seconds after the first of them was submitted (a slow
#: provider records each run on its own, as before).
RECORD_WITHIN_SECONDS = 0.05


#: The runner's environment: where the service is, which run, the single-use credential.
API_URL_ENV = "PUSHPOOL_API_URL"
RUN_ID_ENV = "PUSHPOOL_FLOW_RUN_ID"
BOOTSTRAP_ENV = "PUSHPOOL_BOOTSTRAP_TOKEN"
WINDOW_ENV = "PUSHPOOL_DELIVERY_WINDOW_SECONDS"
#: The pool's ``result_storage`` (same name as ``pushpool.results.RESULT_STORAGE_ENV``).
RESULT_STORAGE_ENV = "PUSHPOOL_RESULT_STORAGE"


@dataclass(frozen=True)
class Claim:
    run: FlowRun
    #: The attempt's single-use bootstrap credential, in the clear: it goes to the
    #: infrastructure only, and the runner exchanges it for its run token at start.
    token: str = field(repr=False)


class Provisioners:
    """Provisioner instances per pool, rebuilt when the pool's type or config changes.

    ``defaults`` gives per pool type config values a pool's own config may override
    (the process pool's run root under ``PUSHPOOL_HOME``, say); ``shared`` (the store)
    holds what provisioners share across processes (ACI's quota windows)."""

    def __init__(
        self, defaults: dict[str, dict[str, Any]] | None = None, shared: SharedState | None = None
    ) -> None:
        self._cache: dict[str, tuple[str, Provisioner]] = {}
        self._lock = threading.Lock()
        self._defaults = defaults or {}
        self._shared = shared

    def for_pool(self, pool: WorkPool) -> Provisioner:
        config = {**self._defaults.get(pool.type, {}), **pool.config}
        fingerprint = hashlib.sha256(
            json.dumps([pool.type, config], sort_keys=True, default=str).encode()
        ).hexdigest()
        with self._lock:
            cached = self._cache.get(pool.name)
            if cached is None or cached[0] != fingerprint:
                provisioner = get_provisioner(pool.type, pool.name, config)
                if self._shared is not None:
                    provisioner.use_shared_state(self._shared)
                cached = (fingerprint, provisioner)
                self._cache[pool.name] = cached
            return cached[1]


class Lookups:
    """Pools (as provisioners) and deployments, each read once per batch of work."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._provisioners: dict[str, Provisioner] = {}
        self._deployments: dict[str, Deployment | None] = {}

    def provisioner(self, pool_name: str) -> Provisioner:
        if pool_name not in self._provisioners:
            self._provisioners[pool_name] = self._dispatcher.provisioner(pool_name)
        return self._provisioners[pool_name]

    def prefetch(self, deployment_ids: Iterable[str | None]) -> None:
        """Read the deployments of a batch at once (one store call, not one per run)."""
        wanted = {i for i in deployment_ids if i is not None and i not in self._deployments}
        if wanted:
            found = self._dispatcher.store.get_deployments(wanted)
            self._deployments |= {i: found.get(i) for i in wanted}

    def deployment(self, deployment_id: str | None) -> Deployment | None:
        if deployment_id is None:
            return None
        if deployment_id not in self._deployments:
            try:
                found: Deployment | None = self._dispatcher.store.get_deployment(deployment_id)
            except DeploymentNotFound:
                found = None
            self._deployments[deployment_id] = found
        return self._deployments[deployment_id]


class Dispatcher:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        provisioners: Provisioners,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.provisioners = provisioners
        self.monotonic = monotonic
        self._keyring: Keyring | None = None

    def blocks_keyring(self) -> Keyring:
        """The keyring of block secrets, built on first use from the settings."""
        if self._keyring is None:
            from service.blocks.crypto import Keyring, key_source

            self._keyring = Keyring(key_source(self.settings))
        return self._keyring

    def provisioner(self, pool_name: str) -> Provisioner:
        return self.provisioners.for_pool(self.store.get_pool(pool_name))

    def lookups(self) -> Lookups:
        """A memo of pools and deployments for one batch of work."""
        return Lookups(self)

    def dispatch_due(self, limit: int, run_ids: Iterable[str] | None = None) -> list[FlowRun]:
        """Claim up to ``limit`` due runs and submit each. Returns the claimed runs."""
        claims = self.claim(limit, run_ids)
        self.submit_claimed(claims)
        return [claim.run for claim in claims]

    def claim(self, limit: int, run_ids: Iterable[str] | None = None) -> list[Claim]:
        """The store half of dispatch (fast, local): claim due runs, issue their tokens."""
        tokens: dict[str, str] = {}

        def issue(run_id: str) -> str:
            tokens[run_id], digest = new_bootstrap_credential()
            return digest

        claimed = self.store.claim_due_runs(self.clock(), limit, issue, run_ids=run_ids)
        events.append(self.store, [events.run_state_event(run) for run in claimed])
        return [Claim(run, tokens[run.id]) for run in claimed]

    def submit_claimed(self, claims: Iterable[Claim]) -> None:
        """The provider half of dispatch (may be slow: a network call, a process start).

        Infrastructure is recorded in batches (:data:`RECORD_BATCH` runs, or what was
        submitted within :data:`RECORD_WITHIN_SECONDS` of the first: a slow provider
        records each run on its own, as before), one store write each. A runner that
        starts before its batch is written does not lose it (``set_infra_many`` takes
        ``RUNNING`` on the same attempt too). Crash
        safety is as with one write per run: a run submitted but not yet recorded is
        ``PENDING`` without infrastructure, which the reconciler resubmits, adopting what
        was started (``Provisioner.find``, by the attempt's idempotency key)."""
        claims = list(claims)
        lookups = self.lookups()
        lookups.prefetch(claim.run.deployment_id for claim in claims)
        started: list[tuple[FlowRun, Provisioner, InfraRef]] = []
        since = 0.0
        for claim in claims:
            before = self.monotonic()
            submitted = self._start(claim.run, claim.token, lookups)
            if submitted is None:
                continue
            since = since if started else before
            started.append((claim.run, *submitted))
            # A slow submission (> the window on its own) says the next one will be slow
            # too: record at once rather than keep these runs waiting for it.
            if len(started) >= RECORD_BATCH or self.monotonic() - since >= RECORD_WITHIN_SECONDS:
                self._record_many(started)
                started = []
        self._record_many(started)

    def _request(self, run: FlowRun, token: str, lookups: Lookups | None = None) -> SubmitRequest:
        lookups = lookups or self.lookups()
        job_variables = dict(run.job_variables)
        deployment = lookups.deployment(run.deployment_id)
        if deployment is not None:
            job_variables = {**deployment.job_variables, **run.job_variables}
        env = {
            API_URL_ENV: self.settings.resolved_public_api_url(),
            RUN_ID_ENV: run.id,
            BOOTSTRAP_ENV: token,
            WINDOW_ENV: f"{self.settings.delivery_window_seconds:g}",
        }
        storage = _result_storage(lookups, run.work_pool)
        if storage is not None:
            env[RESULT_STORAGE_ENV] = storage
        return SubmitRequest(
            run_id=run.id,
            attempt=run.run_count,
            flow_name=run.flow_name,
            deployment_name=run.deployment_name,
            env=env,
            job_variables=job_variables,
            tags=list(run.tags),
        )

    def _submit(self, run: FlowRun, token: str, lookups: Lookups | None = None) -> None:
        submitted = self._start(run, token, lookups)
        if submitted is not None:
            self._record(run, *submitted)

    def _start(
        self, run: FlowRun, token: str, lookups: Lookups | None = None
    ) -> tuple[Provisioner, InfraRef] | None:
        """Submit the run to its pool's provisioner: what was started, or ``None`` when
        nothing was (the run is requeued, crashed, or left for a retry)."""
        lookups = lookups or self.lookups()
        request = self._request(run, token, lookups)
        try:
            request = self._with_blocks(request)
        except (LookupError, BlockKeyError) as exc:  # names the block, never a value
            self._crash(run, f"block references not resolved: {exc}")
            return None
        try:
            provisioner = lookups.provisioner(run.work_pool)
            ref = provisioner.submit(request)
        except CapacityUnavailable as exc:
            self._requeue(run, exc)
            return None
        except ProvisionerError as exc:
            if exc.transient:
                log.warning("submit of %s failed, will retry: %s", run.id, exc)
                return None
            self._crash(run, f"submission failed: {exc}")
            return None
        except Exception as exc:  # a provisioner bug must not strand the run in PENDING
            log.exception("submit of %s raised", run.id)
            self._crash(run, f"submission failed: {type(exc).__name__}: {exc}")
            return None
        return provisioner, ref

    def _with_blocks(self, request: SubmitRequest) -> SubmitRequest:
        """Resolve ``{{ block:... }}`` in the job variables' ``env`` (blocks: read now)."""
        if "{{" not in json.dumps(request.job_variables.get("env") or {}):
            return request
        from service.blocks.resolve import with_blocks

        return with_blocks(request, self.store, self.blocks_keyring())

    def _record(self, run: FlowRun, provisioner: Provisioner, ref: InfraRef) -> None:
        self._record_many([(run, provisioner, ref)])

    def _record_many(self, started: list[tuple[FlowRun, Provisioner, InfraRef]]) -> None:
        """Record what was started; undo it for runs that left ``PENDING`` meanwhile."""
        if not started:
            return
        recorded = self.store.set_infra_many([(run, ref) for run, _, ref in started])
        for run, provisioner, ref in started:
            if run.id not in recorded:
                # Cancelled (or otherwise moved on) while we were submitting: undo.
                log.info("run %s left PENDING during submit; stopping what was started", run.id)
                provisioner.teardown(ref)

    def _requeue(self, run: FlowRun, exc: CapacityUnavailable) -> None:
        log.info("no capacity for %s, requeued: %s", run.id, exc)
        with contextlib.suppress(IllegalTransition):
            requeue_for_capacity(
                self.store,
                run,
                now=self.clock(),
                reason=f"waiting for capacity: {exc}",
                retry_after_seconds=exc.retry_after_seconds,
            )

    def _crash(self, run: FlowRun, message: str) -> None:
        with contextlib.suppress(IllegalTransition):
            set_state(
                self.store,
                run.id,
                StateType.CRASHED,
                now=self.clock(),
                message=message,
                expected=StateType.PENDING,
            )

    def resubmit(self, run: FlowRun) -> None:
        """Finish the submission of a run left ``PENDING`` with no infrastructure.

        Adopt what an earlier dispatcher started for this attempt if there is one (its
        runner holds the credential already stored); otherwise issue a fresh bootstrap
        credential and submit again with the same idempotency key.
        """
        provisioner = self.provisioner(run.work_pool)
        probe = self._request(run, token="")
        existing = provisioner.find(probe)
        if existing is not None:
            self._record(run, provisioner, existing)
            return
        token, digest = new_bootstrap_credential()
        if self.store.set_token(run.id, StateType.PENDING, digest):
            self._submit(run, token)

    def now(self) -> datetime:
        return self.clock()


def _result_storage(lookups: Lookups, pool: str) -> str | None:
    """The pool's ``result_storage``, if it has one (a pool that cannot be looked up fails
    its submit with the reason, right after)."""
    try:
        storage = getattr(lookups.provisioner(pool).config, "result_storage", None)
    except PushpoolError:
        return None
    return storage if isinstance(storage, str) else None
