"""Keeps container-group creates and deletes inside ACI's quotas.

ACI allows, per subscription and region, 300 creates per hour and 100 per 5 minutes
(deletes alike) and, by default, 100 container groups and 100 cores. :func:`limiter_for`
hands out one :class:`QuotaLimiter` per (subscription, region), shared by every pool of
this process; each pool checks it against its own :class:`QuotaLimits`.

The create and delete windows (the last hour's timestamps) live in :class:`Windows`:
in this process's memory (:class:`MemoryWindows`), or, when the control plane passes its
store (every replica, every Lambda invocation), in the store (:class:`StoreWindows`: one
meta value per window, written back with compare-and-set), so replicas together stay
inside the quota. Live groups and cores are re-read from ARM by every status pass
(:meth:`QuotaLimiter.observe`). ARM's own answer (``ContainerGroupQuotaReached``, 429)
remains the backstop that requeues the run as ``AwaitingCapacity``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from provisioners.aci.models import QuotaLimits
from provisioners.base import SharedState

HOUR, FIVE_MINUTES = 3600.0, 300.0
#: Compare-and-set attempts on a shared window before giving up for this turn.
CAS_ATTEMPTS = 50
#: How long a run waits when the shared window was too contended to update.
CONTENDED_RETRY_SECONDS = 1.0
Kind = Literal["creates", "deletes"]
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


def _wait(times: list[float], now: float, per_hour: int, per_five: int) -> float:
    """Seconds until one more operation fits both windows (0 if it fits now); ``times``
    are the last hour's, oldest first."""
    waits = [0.0]
    if len(times) >= per_hour:
        waits.append(times[-per_hour] + HOUR - now)
    recent = [t for t in times if t > now - FIVE_MINUTES]
    if len(recent) >= per_five:
        waits.append(recent[-per_five] + FIVE_MINUTES - now)
    return max(waits)


def _recent(times: Iterable[float], now: float) -> list[float]:
    return sorted(t for t in times if t > now - HOUR)


class Windows(Protocol):
    def admit(self, kind: Kind, now: float, per_hour: int, per_five: int, record: bool) -> float:
        """0 if one more ``kind`` fits both windows at ``now`` (recorded if ``record``),
        else the seconds to wait (nothing recorded)."""
        ...


class MemoryWindows:
    """This process's windows."""

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {"creates": [], "deletes": []}
        self._lock = threading.Lock()

    def admit(self, kind: Kind, now: float, per_hour: int, per_five: int, record: bool) -> float:
        with self._lock:
            times = self._times[kind] = _recent(self._times[kind], now)
            wait = _wait(times, now, per_hour, per_five)
            if wait <= 0 and record:
                times.append(now)
            return wait


class StoreWindows:
    """Windows in the control plane's store, shared by every process: a JSON list of the
    last hour's timestamps (wall-clock seconds) per meta key, updated by compare-and-set."""

    def __init__(self, shared: SharedState, prefix: str) -> None:
        self.shared, self.prefix = shared, prefix

    def admit(self, kind: Kind, now: float, per_hour: int, per_five: int, record: bool) -> float:
        key = f"{self.prefix}/{kind}"
        for _ in range(CAS_ATTEMPTS):
            raw = self.shared.get_meta(key)
            times = _recent(json.loads(raw) if raw else [], now)
            wait = _wait(times, now, per_hour, per_five)
            if wait > 0 or not record:
                return wait
            if self.shared.compare_and_set_meta(key, raw, json.dumps([*times, now])):
                return 0.0
        return CONTENDED_RETRY_SECONDS


class QuotaLimiter:
    """Admits creates and deletes of container groups within the quotas; thread-safe.

    ``clock`` gives seconds (monotonic by default; tests inject a fake one).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, windows: Windows | None = None
    ) -> None:
        self._clock = clock
        self._windows: Windows = windows or MemoryWindows()
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
            per_hour, per_five = limits.creates_per_hour, limits.creates_per_5_minutes
            wait = self._windows.admit("creates", now, per_hour, per_five, count)
            if wait > 0:
                return Refusal(
                    "ACI create quota (per 5 minutes / per hour) reached",
                    wait + _spread(key, FIVE_MINUTES),
                )
            if count:
                self._live[key] = cores
            return None

    def try_delete(self, group_id: str, limits: QuotaLimits) -> Refusal | None:
        """Count a delete and return ``None``, or say how long to wait."""
        with self._lock:
            per_hour, per_five = limits.deletes_per_hour, limits.deletes_per_5_minutes
            wait = self._windows.admit("deletes", self._clock(), per_hour, per_five, True)
            if wait > 0:
                return Refusal("ACI delete quota (per 5 minutes / per hour) reached", wait)
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


def limiter_for(
    subscription_id: str, location: str, shared: SharedState | None = None
) -> QuotaLimiter:
    """The process-wide limiter of one subscription and region; its windows are in
    ``shared`` when given (wall-clock time then: the timestamps cross processes)."""
    key = (subscription_id.lower(), location.lower())
    with _limiters_lock:
        if key not in _limiters:
            if shared is None:
                _limiters[key] = QuotaLimiter()
            else:
                windows = StoreWindows(shared, window_key(subscription_id, location))
                _limiters[key] = QuotaLimiter(time.time, windows)
        return _limiters[key]


def window_key(subscription_id: str, location: str) -> str:
    """The store's meta key prefix of one subscription and region's windows."""
    return f"aci-quota/{subscription_id.lower()}/{location.lower()}"
