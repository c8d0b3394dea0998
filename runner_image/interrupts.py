"""Stopping the flow: SIGTERM/SIGINT, or a cancellation noticed by another thread.

The signal handler raises :class:`FlowInterrupted` (a ``BaseException``, so flows'
``except Exception`` blocks do not swallow it) in the main thread -- but only while
the runner is *armed*, i.e. while setup code or the flow itself is running. A
signal that arrives while the runner talks to the service is remembered and
raised as soon as the runner arms again. Every further signal raises again, so a
flow that swallows the first one can still be stopped.

Other threads (heartbeat, log shipping) stop the flow by sending SIGTERM to the
main thread with :func:`signal.pthread_kill`, so the interruption also breaks out
of blocking calls such as ``time.sleep`` exactly as an external SIGTERM would.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from types import FrameType
from typing import Any


class Reason(Enum):
    SIGTERM = "SIGTERM"
    SIGINT = "SIGINT"
    CANCELLING = "CANCELLING"  # the heartbeat said the run is being cancelled
    UNAUTHORIZED = "UNAUTHORIZED"  # the service revoked the run token
    TIMED_OUT = "TIMED_OUT"  # the deployment's timeout_seconds passed (runner_image.timeout)

    @property
    def exit_code(self) -> int:
        return 128 + signal.SIGINT if self is Reason.SIGINT else 128 + signal.SIGTERM


class FlowInterrupted(BaseException):
    """Raised in the main thread to stop the flow; not an error but a control signal."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"flow run interrupted ({reason.value})")
        self.reason = reason


_SIGNAL_REASONS: dict[int, Reason] = {signal.SIGTERM: Reason.SIGTERM, signal.SIGINT: Reason.SIGINT}


class Interrupter:
    def __init__(self) -> None:
        self.reason: Reason | None = None
        #: True once FlowInterrupted has been raised into the flow at least once.
        self.delivered = False
        self._armed = False
        self._installed = False
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self._main_ident = threading.main_thread().ident

    def install(self) -> None:
        """Install the handlers; must be called from the main thread."""
        for signum in _SIGNAL_REASONS:
            self._previous[signum] = signal.signal(signum, self._handle)
        with self._lock:
            self._installed = True

    def uninstall(self) -> None:
        with self._lock:
            self._installed = False
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Allow interruption inside the block; raise now if one is pending."""
        self._armed = True
        try:
            self._raise_if_pending()
            yield
        finally:
            self._armed = False

    def trigger(self, reason: Reason) -> None:
        """Request an interruption from any thread."""
        with self._lock:
            if self.reason is None:
                self.reason = reason
            if self._installed and self._main_ident is not None:
                signal.pthread_kill(self._main_ident, signal.SIGTERM)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is None:
            self.reason = _SIGNAL_REASONS.get(signum, Reason.SIGTERM)
        self._raise_if_pending()

    def _raise_if_pending(self) -> None:
        if self._armed and self.reason is not None:
            self.delivered = True
            raise FlowInterrupted(self.reason)
