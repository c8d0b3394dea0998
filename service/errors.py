"""The project's exceptions: one root, lookups are ``LookupError`` and carry the id.

HTTP status codes for these live in :mod:`service.api.errors`, nowhere else.
"""

from __future__ import annotations

from provisioners.errors import ProvisionerError, PushpoolError, UnknownPoolType

__all__ = [
    "AlreadyExists",
    "ApiKeyNotFound",
    "Conflict",
    "DeploymentNotFound",
    "IllegalTransition",
    "InvalidInput",
    "NotFound",
    "PoolNotFound",
    "ProvisionerError",
    "PushpoolError",
    "RunNotFound",
    "UnknownPoolType",
]


class NotFound(PushpoolError, LookupError):
    kind = "object"

    def __init__(self, ident: str) -> None:
        self.ident = ident
        super().__init__(f"{self.kind} {ident!r} not found")


class PoolNotFound(NotFound):
    kind = "work pool"


class DeploymentNotFound(NotFound):
    kind = "deployment"


class RunNotFound(NotFound):
    kind = "flow run"


class ApiKeyNotFound(NotFound):
    kind = "api key"


class AlreadyExists(PushpoolError):
    def __init__(self, kind: str, ident: str) -> None:
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} {ident!r} already exists")


class Conflict(PushpoolError):
    """The request is well-formed but conflicts with the current state of things."""


class IllegalTransition(Conflict):
    def __init__(self, run_id: str, current: str, target: str) -> None:
        self.run_id, self.current, self.target = run_id, current, target
        super().__init__(f"flow run {run_id} is {current}; it cannot move to {target}")


class InvalidInput(PushpoolError, ValueError):
    """Input that passed the schema but not a semantic check; ``field`` names where."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


class CacheRecordNotFound(NotFound):
    kind = "cache record"


class ConcurrencyLimitNotFound(NotFound):
    kind = "concurrency limit"
