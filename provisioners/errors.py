"""The root of pushpool's exceptions, and the provisioners' own.

The root lives here, in the lowest layer, so that every package can raise into one
tree: ``service`` builds on it (see :mod:`service.errors`), ``provisioners`` never
imports ``service``.
"""

from __future__ import annotations


class PushpoolError(Exception):
    """Root of every error pushpool raises on purpose."""


class ProvisionerError(PushpoolError):
    """A provisioner could not do what was asked. ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)


class CapacityUnavailable(ProvisionerError):
    """The platform (or the pool's own limiter) has no room for another run right now.

    Not a failure: the dispatcher puts the run back to ``SCHEDULED`` with the state name
    ``AwaitingCapacity`` and tries again after ``retry_after_seconds``. Raise it for a
    quota answer (ACI ``ContainerGroupQuotaReached``, Cloud Run's jobs-per-region limit)
    or when a pool-side limiter says the next create would exceed a documented quota.
    """

    def __init__(self, message: str, *, retry_after_seconds: float = 30.0) -> None:
        self.retry_after_seconds = max(0.0, float(retry_after_seconds))
        super().__init__(message, transient=True)


def scrubbed(exc: ProvisionerError, secrets: list[str]) -> ProvisionerError | None:
    """``exc`` with every secret in ``secrets`` masked (``***``), keeping its class and
    whether it is transient; ``None`` if its message contains none of them. Values under
    4 characters are never secrets here and are left alone."""
    message = str(exc)
    found = [s for s in secrets if s and len(s) >= 4 and s in message]
    if not found:
        return None
    for secret in sorted(found, key=len, reverse=True):
        message = message.replace(secret, "***")
    if isinstance(exc, CapacityUnavailable):
        return CapacityUnavailable(message, retry_after_seconds=exc.retry_after_seconds)
    return ProvisionerError(message, transient=exc.transient)


class UnknownPoolType(PushpoolError, ValueError):
    def __init__(self, pool_type: str, known: list[str]) -> None:
        self.field = "type"
        self.message = f"unknown work pool type {pool_type!r}; known: {', '.join(known)}"
        super().__init__(self.message)


class NotAllowed(PushpoolError, ValueError):
    """A job variable the pool's config (set by an admin) does not allow; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")
