"""Calling a function in a helper thread with a time limit."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any


def call_with_timeout(
    fn: Callable[[], Any], timeout: float, on_timeout: Callable[[], BaseException]
) -> Any:
    """``fn()`` in a daemon thread (in a copy of the caller's context); raise
    ``on_timeout()`` if it runs longer than ``timeout`` seconds.

    Python cannot stop a thread: a timed-out call is abandoned and may run on in the
    background; the caller fails (or retries) without waiting for it.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target,), daemon=True, name="pushpool-timed"
    )
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise on_timeout()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
