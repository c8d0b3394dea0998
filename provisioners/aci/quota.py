"""Keeps this process's container-group creates and deletes inside ACI's quotas.

ACI allows, per subscription and region, 300 creates per hour and 100 per 5 minutes
(deletes alike) and, by default, 100 container groups and 100 cores. :func:`limiter_for`
hands out one :class:`QuotaLimiter` per (subscription, region), shared by every pool of
this process; each pool checks it against its own :class:`QuotaLimits`.

The state is in memory, per process: it is what this control plane did in the last hour.
Live groups and cores are re-read from ARM by every status pass (:meth:`observe`), so
they hold across processes; the create/delete rates of *other* processes are not seen
here, and ARM's own answer (``ContainerGroupQuotaReached``, 429) is the backstop that
requeues the run as ``AwaitingCapacity``. Run several dispatching processes against one
region with proportionally lower limits.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from provisioners.aci.models import QuotaLimits

HOUR, FIVE_MINUTES = 3600.0, 300.0
#: How long to wait for a group or cores to free up (runs end, groups are deleted).
CAPACITY_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class Refusal:
    reason: str
    retry_after_seconds: float


def _spread(group_id: str, span: float) -> float:
    """A stable per-group offset in ``[0, span)``: runs refused together come back spread
    over the window instead of all at the moment it opens (no thundering herd)."""
    return int(hashlib.sha256(group_id.encode()).hexdigest()[:8], 16) % int(span)


class _Window:
    """Timestamps of the last hour's operations of one kind."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def prune(self, now: float) -> None:
        while self.times and self.times[0] <= now - HOUR:
            self.times.popleft()

    def wait(self, now: float, per_hour: int, per_five: int) -> float:
        """Seconds until one more fits both windows (0 if it fits now)."""
        self.prune(now)
        waits = [0.0]
        if len(self.times) >= per_hour:
            waits.append(self.times[-per_hour] + HOUR - now)
        recent = [t for t in self.times if t > now - FIVE_MINUTES]
        if len(recent) >= per_five:
            waits.append(recent[-per_five] + FIVE_MINUTES - now)
        return max(waits)


class QuotaLimiter:
    """Admits creates and deletes of container groups within the quotas; thread-safe.

    ``clock`` gives seconds (monotonic by default; tests inject a fake one).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._creates, self._deletes = _Window(), _Window()
        #: Live groups (ARM id, lowercased) -> cores.
        self._live: dict[str, float] = {}
        self._lock = threading.Lock()

    def try_create(
        self, group_id: str, cores: float, limits: QuotaLimits, *, count: bool = True
    ) -> Refusal | None:
        """Count a create of ``group_id`` and return ``None``, or say why not and how long
        to wait (counting nothing). ``count=False`` only asks."""
        key = group_id.lower()
        with self._lock:
            now = self._clock()
            wait = self._creates.wait(now, limits.creates_per_hour, limits.creates_per_5_minutes)
            if wait > 0:
                return Refusal(
                    "ACI create quota (per 5 minutes / per hour) reached",
                    wait + _spread(key, FIVE_MINUTES),
                )
            live = {k: v for k, v in self._live.items() if k != key}
            if len(live) >= limits.max_groups:
                return Refusal(
                    f"{len(live)} container groups of {limits.max_groups} allowed in the region",
                    CAPACITY_RETRY_SECONDS + _spread(key, CAPACITY_RETRY_SECONDS),
                )
            if sum(live.values()) + cores > limits.max_cores:
                return Refusal(
                    f"{sum(live.values()):g}+{cores:g} cores exceed {limits.max_cores:g}",
                    CAPACITY_RETRY_SECONDS + _spread(key, CAPACITY_RETRY_SECONDS),
                )
            if count:
                self._creates.times.append(now)
                self._live[key] = cores
            return None

    def try_delete(self, group_id: str, limits: QuotaLimits) -> Refusal | None:
        """Count a delete and return ``None``, or say how long to wait."""
        with self._lock:
            now = self._clock()
            wait = self._deletes.wait(now, limits.deletes_per_hour, limits.deletes_per_5_minutes)
            if wait > 0:
                return Refusal("ACI delete quota (per 5 minutes / per hour) reached", wait)
            self._deletes.times.append(now)
            return None

    def gone(self, group_id: str) -> None:
        """``group_id`` no longer exists (deleted, or never created)."""
        with self._lock:
            self._live.pop(group_id.lower(), None)

    def observe(self, scope: str, groups: Iterable[tuple[str, float]]) -> None:
        """What ARM listed under ``scope`` (a resource group's id): the live groups there,
        with their cores, replace what this limiter believed of that scope."""
        prefix = scope.lower().rstrip("/") + "/"
        with self._lock:
            self._live = {k: v for k, v in self._live.items() if not k.startswith(prefix)}
            self._live.update({gid.lower(): cores for gid, cores in groups})

    def live(self) -> tuple[int, float]:
        """(groups, cores) believed live."""
        with self._lock:
            return len(self._live), sum(self._live.values())


_limiters: dict[tuple[str, str], QuotaLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(subscription_id: str, location: str) -> QuotaLimiter:
    """The process-wide limiter of one subscription and region."""
    key = (subscription_id.lower(), location.lower())
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = QuotaLimiter()
        return _limiters[key]
