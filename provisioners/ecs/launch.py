"""Starting a task: ``RunTask`` through the rate limiter, retrying what may yet succeed.

Transient: throttling and AWS-side errors, a role ECS cannot assume yet (IAM
propagation), and the placement failures ``RESOURCE:*`` (no capacity), ``AGENT`` and
Fargate Spot's "capacity is unavailable". Anything else fails at once with AWS's reason.
Before each retry the caller's ``started`` check runs: an attempt whose answer was lost
(a timeout, a 5xx) may have started the task after all, and then that task is the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from provisioners.ecs.aws import AwsClient, EcsFailure, EcsTask
from provisioners.ecs.errors import AwsError
from provisioners.ecs.ratelimit import TokenBucket
from provisioners.errors import ProvisionerError
from provisioners.ratelimit import Backoff

log = logging.getLogger("pushpool.ecs")

_TRANSIENT_PREFIXES = ("RESOURCE:", "AGENT")
_TRANSIENT_PHRASES = ("capacity is unavailable", "capacity unavailable", "throttl")


def failure_is_transient(failure: EcsFailure) -> bool:
    reason = failure.get("reason", "")
    text = f"{reason} {failure.get('detail', '')}".lower()
    return reason.startswith(_TRANSIENT_PREFIXES) or any(p in text for p in _TRANSIENT_PHRASES)


def failure_error(failures: list[EcsFailure]) -> ProvisionerError:
    if not failures:
        return ProvisionerError("RunTask started no task and reported no failure", transient=True)
    first = failures[0]
    reason = first.get("reason", "unknown reason")
    detail = first.get("detail")
    message = f"RunTask failed: {reason}" + (f" ({detail})" if detail else "")
    return ProvisionerError(message, transient=failure_is_transient(first))


class Launcher:
    """Runs one task per call, within the rate limit, with backoff on transient failures."""

    def __init__(
        self,
        aws: AwsClient,
        limiter: TokenBucket,
        sleep: Callable[[float], None],
        backoff: Backoff | None = None,
    ) -> None:
        self.aws, self.limiter, self.sleep = aws, limiter, sleep
        self.backoff = backoff or Backoff()

    def run(
        self, params: dict[str, Any], started: Callable[[], EcsTask | None] | None = None
    ) -> EcsTask:
        """Start the task ``params`` describe; ``started`` finds one a lost attempt began."""
        attempts = self.backoff.attempts
        for attempt in range(attempts):
            outcome = self._try(params)
            if isinstance(outcome, dict):
                return outcome
            if not outcome.transient or attempt == attempts - 1:
                raise outcome
            # The code or ECS's failure reason only: an AWS message may echo the request.
            cause = outcome.code if isinstance(outcome, AwsError) else str(outcome)
            log.warning("RunTask attempt %d failed (%s); retrying", attempt + 1, cause)
            self.sleep(self.backoff.delay(attempt))
            already = started() if started is not None else None
            if already is not None:
                return already
        raise AssertionError("unreachable")

    def _try(self, params: dict[str, Any]) -> EcsTask | ProvisionerError:
        """One ``RunTask``: the task started, or the error that stopped it."""
        self.limiter.acquire()
        try:
            page = self.aws.run_task(params)
        except AwsError as exc:
            return exc
        if page["tasks"]:
            return page["tasks"][0]
        return failure_error(page["failures"])
