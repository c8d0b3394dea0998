"""Stopping a flow that runs past its deployment's ``timeout_seconds``.

A timer thread fires the :class:`~runner_image.interrupts.Interrupter` with
``Reason.TIMED_OUT`` when the limit passes; the flow is interrupted exactly as a
cancellation would interrupt it (also out of ``time.sleep`` and other blocking calls), and
the run is reported ``FAILED`` with a ``TimedOut`` error rather than ``CANCELLED``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from runner_image.interrupts import Reason
from runner_image.outcome import Outcome

logger = logging.getLogger("pushpool.runner")
EXIT_TIMED_OUT = 1


class FlowTimeout:
    """``with FlowTimeout(seconds, interrupter.trigger):`` around the flow call; ``None``
    seconds is no limit."""

    def __init__(self, seconds: float | None, trigger: Callable[[Reason], None]) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None
        self._trigger = trigger

    def __enter__(self) -> FlowTimeout:
        if self.seconds is not None:
            self._timer = threading.Timer(self.seconds, self._trigger, (Reason.TIMED_OUT,))
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()


def timeout_seconds(value: object) -> float | None:
    """The spec's ``timeout_seconds``: a positive number, else no limit."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def timed_out(seconds: float | None) -> Outcome:
    limit = "its timeout" if seconds is None else f"its timeout of {seconds:g}s"
    message = f"Flow run failed: TimedOut: the flow ran past {limit} and was stopped"
    logger.error("%s", message)
    error = {"type": "TimedOut", "message": f"the flow ran past {limit} and was stopped"}
    return Outcome("FAILED", EXIT_TIMED_OUT, message=message, error=error)
