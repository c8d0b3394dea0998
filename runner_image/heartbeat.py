"""The heartbeat thread: tells the service the runner is alive, learns of cancellation."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from runner_image.client import ApiError, Unauthorized
from runner_image.interrupts import Reason

CANCELLING = "CANCELLING"
MIN_INTERVAL = 0.1
DEFAULT_INTERVAL = 30.0


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds until stopped.

    ``on_stop_request`` is called (once, from the heartbeat thread) with
    :attr:`Reason.CANCELLING` when the service answers ``CANCELLING``, or with
    :attr:`Reason.UNAUTHORIZED` on a 401; the heartbeat then ends.
    """

    def __init__(
        self,
        beat: Callable[[], str | None],
        interval: float,
        on_stop_request: Callable[[Reason], None],
    ) -> None:
        self._beat = beat
        self._interval = max(interval, MIN_INTERVAL)
        self._on_stop_request = on_stop_request
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pushpool-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            reason = self._beat_once()
            if reason is not None and not self._stopped.is_set():
                self._on_stop_request(reason)
                return

    def _beat_once(self) -> Reason | None:
        try:
            state = self._beat()
        except Unauthorized:
            return Reason.UNAUTHORIZED
        except ApiError as exc:
            print(f"pushpool-runner: heartbeat failed: {exc}", file=sys.__stderr__, flush=True)
            return None
        return Reason.CANCELLING if state == CANCELLING else None


def heartbeat_interval(value: object) -> float:
    """The spec's ``heartbeat_seconds``, defaulting to 30 s when absent or invalid."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_INTERVAL
