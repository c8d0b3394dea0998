"""The one boundary between the ACI pool type and the Azure SDKs.

:class:`ArmClient` makes each ``azure-mgmt-*`` client lazily, once, with one credential
per process (``DefaultAzureCredential``: environment, workload identity, managed
identity, Azure CLI login, ...). Every call goes through :meth:`ArmClient.call`, which
turns ``azure-core`` exceptions into :class:`~provisioners.aci.errors.ArmError`. No Azure
module is imported at import of this module: only when a pool of type ``aci`` is used.

On AWS Lambda there is no Azure secret to store: with ``PUSHPOOL_AZURE_FEDERATION=aws``
(and ``AZURE_TENANT_ID``, ``AZURE_CLIENT_ID`` of the Entra application or user-assigned
identity that trusts the function's role), the credential is a client assertion signed
by AWS: STS ``GetWebIdentityToken`` for the audience ``api://AzureADTokenExchange``
(AWS outbound identity federation), exchanged by ``azure-identity`` for ARM tokens.

Test/emulator only: when ``PUSHPOOL_AZURE_EMULATOR_URL`` is set, every client talks to
that URL instead of ``https://management.azure.com`` and authenticates with a fixed
placeholder token (the ARM emulator under ``tests/emulators/azure`` accepts any). No
production setting reads it; never set it outside tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from provisioners.aci.errors import ArmError, from_http_error, from_transport_error

EMULATOR_ENV = "PUSHPOOL_AZURE_EMULATOR_URL"
FEDERATION_ENV = "PUSHPOOL_AZURE_FEDERATION"
#: The audience Entra ID expects in a federated credential's token.
AZURE_AUDIENCE = "api://AzureADTokenExchange"
ARM_URL = "https://management.azure.com"
#: Retries the SDK makes itself (honouring ``Retry-After``) before an error reaches us.
RETRY_TOTAL = 2
Api = Literal["containers", "resources", "msi", "registry", "authorization", "graph", "storage"]
T = TypeVar("T")

_credential: Any = None
_credential_lock = threading.Lock()


def aws_web_identity_token(sts: Any = None) -> str:
    """A short-lived JWT for the Lambda's own AWS role, for Entra ID to trust (no secret)."""
    if sts is None:
        import boto3

        sts = boto3.client("sts")
    answer = sts.get_web_identity_token(
        Audience=[AZURE_AUDIENCE], SigningAlgorithm="RS256", DurationSeconds=300
    )
    return str(answer["WebIdentityToken"])


def make_credential(environ: Any = os.environ) -> Any:
    """``DefaultAzureCredential``, or with ``PUSHPOOL_AZURE_FEDERATION=aws`` a client
    assertion credential fed by :func:`aws_web_identity_token`."""
    mode = environ.get(FEDERATION_ENV, "").strip().lower()
    if not mode:
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    if mode != "aws":
        raise ArmError(
            f"{FEDERATION_ENV}={mode!r}: the only federation known is 'aws'",
            code="InvalidConfiguration",
            status=0,
            operation="credential",
            transient=False,
        )
    missing = [k for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID") if not environ.get(k)]
    if missing:
        raise ArmError(
            f"{FEDERATION_ENV}=aws needs {' and '.join(missing)}",
            code="InvalidConfiguration",
            status=0,
            operation="credential",
            transient=False,
        )
    from azure.identity import ClientAssertionCredential

    return ClientAssertionCredential(
        environ["AZURE_TENANT_ID"], environ["AZURE_CLIENT_ID"], aws_web_identity_token
    )


def _shared_credential() -> Any:
    """One credential per process: tokens are cached and refreshed by it."""
    global _credential
    with _credential_lock:
        if _credential is None:
            _credential = make_credential()
        return _credential


class _EmulatorToken:
    """A credential for the test emulator only: a fixed token that never expires."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("emulator", 2**31 - 1)


def _emulator_policy() -> Any:
    """Sets the placeholder bearer token; the emulator is plain HTTP on loopback, where
    the SDK's own bearer policy refuses to send a token."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class EmulatorAuth(SansIOHTTPPolicy):
        def on_request(self, request: Any) -> None:
            request.http_request.headers["Authorization"] = "Bearer emulator"

    return EmulatorAuth()


def _client_class(api: Api) -> Any:
    if api == "containers":
        from azure.mgmt.containerinstance import ContainerInstanceManagementClient

        return ContainerInstanceManagementClient
    if api == "resources":
        from azure.mgmt.resource.resources import ResourceManagementClient

        return ResourceManagementClient
    if api == "msi":
        from azure.mgmt.msi import ManagedServiceIdentityClient

        return ManagedServiceIdentityClient
    if api == "registry":
        from azure.mgmt.containerregistry import ContainerRegistryManagementClient

        return ContainerRegistryManagementClient
    if api == "graph":
        from azure.mgmt.resourcegraph import ResourceGraphClient

        return ResourceGraphClient
    if api == "storage":
        from azure.mgmt.storage import StorageManagementClient

        return StorageManagementClient
    from azure.mgmt.authorization import AuthorizationManagementClient

    return AuthorizationManagementClient


class ArmClient:
    """Azure management clients for one subscription, made on first use."""

    def __init__(self, subscription_id: str, *, retry_total: int = RETRY_TOTAL) -> None:
        self.subscription_id = subscription_id
        self.retry_total = retry_total
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def emulated(self) -> bool:
        return bool(os.environ.get(EMULATOR_ENV))

    def _options(self) -> dict[str, Any]:
        url = os.environ.get(EMULATOR_ENV)
        options: dict[str, Any] = {"retry_total": self.retry_total}
        if url:
            options |= {
                "credential": _EmulatorToken(),
                "base_url": url.rstrip("/"),
                "authentication_policy": _emulator_policy(),
                "polling_interval": 0,
            }
        else:
            options |= {"credential": _shared_credential(), "base_url": ARM_URL}
        return options

    def client(self, api: Api) -> Any:
        with self._lock:
            if api not in self._clients:
                cls = _client_class(api)
                # Resource Graph is tenant-wide: its queries name their subscriptions.
                scoped = {} if api == "graph" else {"subscription_id": self.subscription_id}
                self._clients[api] = cls(**scoped, **self._options())
            return self._clients[api]

    def call(self, operation: str, fn: Callable[[], T]) -> T:
        """``fn()`` (an SDK call); its errors become :class:`ArmError` named ``operation``."""
        from azure.core.exceptions import HttpResponseError, ServiceRequestError
        from azure.core.exceptions import ServiceResponseError as NoAnswer

        try:
            return fn()
        except HttpResponseError as exc:
            raise from_http_error(exc, operation) from exc
        except (ServiceRequestError, NoAnswer) as exc:
            raise from_transport_error(exc, operation) from exc

    def maybe(self, operation: str, fn: Callable[[], T]) -> T | None:
        """``call``, with ``None`` for a 404 (the resource does not exist)."""
        try:
            return self.call(operation, fn)
        except ArmError as exc:
            if exc.not_found:
                return None
            raise


__all__ = ["EMULATOR_ENV", "ArmClient", "ArmError"]
