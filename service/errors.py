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
    "Forbidden",
    "IllegalTransition",
    "InvalidInput",
    "LastAdminKey",
    "NotFound",
    "PoolNotFound",
    "ProvisionerError",
    "PushpoolError",
    "RunNotFound",
    "SchemaError",
    "StoreUnavailable",
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


class LastAdminKey(Conflict):
    """Revoking this key would leave no admin key (``pushpool admin recover-key`` mints one
    on the server's machine, but nobody could manage keys or pools over the API)."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(
            f"api key {key_id!r} is the last admin key: create another admin key before revoking it"
        )


class Forbidden(PushpoolError):
    """The caller is known but its API key's role (or pool list) does not allow this."""


class InvalidInput(PushpoolError, ValueError):
    """Input that passed the schema but not a semantic check; ``field`` names where, and
    ``where`` what carries it (``body``, ``query``, ``path``)."""

    def __init__(self, field: str, message: str, *, where: str = "body") -> None:
        self.field, self.message, self.where = field, message, where
        super().__init__(f"{field}: {message}")


class SchemaError(PushpoolError):
    """The database's schema is not the one this code needs (and was not migrated)."""

    def __init__(self, found: str | None, needed: str) -> None:
        self.found, self.needed = found, needed
        at = "empty (no schema)" if found is None else f"at schema version {found}"
        super().__init__(
            f"the database is {at}; this pushpool needs {needed}: run `pushpool db upgrade` "
            "(or start the server without --no-migrate)"
        )


class StoreUnavailable(PushpoolError):
    """The store did not take a write after its retries (throttled); nothing is lost by
    trying again later, but the write did not happen."""


class CacheRecordNotFound(NotFound):
    kind = "cache record"


class ConcurrencyLimitNotFound(NotFound):
    kind = "concurrency limit"


class BlockTypeNotFound(NotFound):
    kind = "block type"


class BlockNotFound(NotFound):
    kind = "block"


class BlockInUse(Conflict):
    """A block (or a block type's documents) that deployments still declare."""

    def __init__(self, ref: str, deployments: list[str]) -> None:
        self.ref, self.deployments = ref, deployments
        super().__init__(
            f"block {ref!r} is used by deployment(s) {', '.join(deployments)}: remove it "
            "from their 'blocks' (and job variables) first"
        )


class BlockKeyError(PushpoolError):
    """The blocks encryption keys are missing, malformed or do not open a secret. The
    message never carries a key or a value."""


class WebhookNotFound(NotFound):
    kind = "webhook"


class AutomationNotFound(NotFound):
    kind = "automation"


class BadSignature(PushpoolError):
    """A webhook call's signature header is missing or does not match its secret."""


class TaskRunNotFound(NotFound):
    kind = "task run"
