"""ARM errors as :class:`ProvisionerError`: ARM's code and message, and whether to retry."""

from __future__ import annotations

from typing import Any

from provisioners.errors import ProvisionerError

#: ARM error codes that say "no room now" for a container group: requeue, never fail.
QUOTA_CODES = frozenset(
    {
        "ContainerGroupQuotaReached",
        "StandardCoresQuotaReached",
        "ContainerGroupCreationRateLimitExceeded",
        "QuotaExceeded",
        "ServiceUnavailable",
    }
)
#: ARM error codes a later retry may cure, whatever the HTTP status.
TRANSIENT_CODES = frozenset(
    {"Conflict", "AnotherOperationInProgress", "OperationNotAllowed", "TooManyRequests"}
)


class ArmError(ProvisionerError):
    """An Azure Resource Manager call failed.

    ``code`` is ARM's error code (or the exception's name when no answer came), ``status``
    the HTTP status (0 without an answer), ``retry_after`` the seconds ARM asked to wait.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        operation: str,
        transient: bool,
        retry_after: float | None = None,
    ) -> None:
        self.code, self.status, self.operation = code, status, operation
        self.retry_after = retry_after
        super().__init__(message, transient=transient)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def quota(self) -> bool:
        """ARM refused for a quota or a rate: the platform has no room right now."""
        return self.status == 429 or self.code in QUOTA_CODES


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def from_http_error(exc: Any, operation: str) -> ArmError:
    """An ``ArmError`` for an ``azure.core.exceptions.HttpResponseError``: one line,
    ``ARM <operation> failed: <code>: <message>``."""
    status = int(getattr(exc, "status_code", None) or 0)
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", None) or getattr(exc, "reason", None) or status)
    message = str(getattr(error, "message", None) or "").strip() or str(exc).split("\n")[0]
    response = getattr(exc, "response", None)
    return ArmError(
        f"ARM {operation} failed: {code}: {message}",
        code=code,
        status=status,
        operation=operation,
        transient=status == 429 or status >= 500 or code in TRANSIENT_CODES,
        retry_after=_retry_after(getattr(response, "headers", None)),
    )


def from_transport_error(exc: Exception, operation: str) -> ArmError:
    """An ``ArmError`` for a request that got no answer (network, timeout): transient."""
    return ArmError(
        f"ARM {operation} failed: {type(exc).__name__}: {exc}",
        code=type(exc).__name__,
        status=0,
        operation=operation,
        transient=True,
    )
