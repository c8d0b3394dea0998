"""Google API errors as :class:`ProvisionerError`: which ones a later retry may cure."""

from __future__ import annotations

from typing import Any

from provisioners.errors import ProvisionerError

#: HTTP statuses worth a later retry: throttling and Google-side failures.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_QUOTA_WORDS = ("quota", "limit exceeded", "resource_exhausted: jobs", "too many jobs")


class GcpError(ProvisionerError):
    """A Google API call failed: ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int, operation: str, reason: str = "") -> None:
        self.status = status
        self.operation = operation
        self.reason = reason
        super().__init__(message, transient=status == 0 or status in TRANSIENT_STATUSES)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def quota(self) -> bool:
        """A quota answer (jobs or executions per region), not a request-rate one."""
        text = f"{self.reason} {self}".lower()
        return self.status == 429 and any(word in text for word in _QUOTA_WORDS)


def from_api_error(exc: Any, operation: str) -> GcpError:
    """A ``GcpError`` for a ``google.api_core`` ``GoogleAPICallError``: one line, Google's
    own status, reason and message (a permission denial names the permission)."""
    status = int(getattr(exc, "code", 0) or 0)
    grpc_code = getattr(exc, "grpc_status_code", None)
    name = getattr(grpc_code, "name", "") or type(exc).__name__
    reason = str(getattr(exc, "reason", "") or "")
    message = " ".join(str(getattr(exc, "message", "") or exc).split())
    detail = f" ({reason})" if reason else ""
    return GcpError(
        f"Google Cloud {operation} failed: {status} {name}{detail}: {message}",
        status=status,
        operation=operation,
        reason=reason,
    )


def from_transport_error(exc: Exception, operation: str) -> GcpError:
    """No answer from Google (connection, deadline): worth a retry."""
    return GcpError(
        f"Google Cloud {operation} failed: {type(exc).__name__}: {exc}",
        status=0,
        operation=operation,
    )


def no_credentials(exc: Exception) -> ProvisionerError:
    return ProvisionerError(
        "no Google credentials: the control plane uses Application Default Credentials"
        f" (workload identity, the metadata server, or `gcloud auth application-default"
        f" login`): {exc}"
    )
