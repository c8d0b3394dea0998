"""Blocks: typed, shared configuration that flow code loads by name.

    from pushpool.blocks import Secret, SlackWebhook

    password = Secret.load("db-password").get()
    hook = SlackWebhook.load("ops").url.get_secret_value()

A block type is a pydantic model (a :class:`Block` subclass); its secret fields are
``SecretStr`` (JSON Schema ``writeOnly``), encrypted at rest by the service and never
returned by its API. ``load`` asks the control plane through the run's own credentials
and succeeds only for blocks the run's deployment declares (``blocks:
[secret/db-password]``); anything else is refused naming the block.

This module is the one definition of the built-in types: the service registers their
schemas from here (:data:`BUILTIN_BLOCKS`), so the SDK and the server cannot disagree.
It imports pydantic, so ``import pushpool`` does not import it (only flow code that
uses blocks pays for it).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pushpool.errors import BlockError

__all__ = [
    "BUILTIN_BLOCKS",
    "JSON",
    "MASK",
    "SMTP",
    "AzureBlobContainer",
    "Block",
    "BlockError",
    "DatabaseURL",
    "GCSBucket",
    "S3Bucket",
    "Secret",
    "SlackWebhook",
]

B = TypeVar("B", bound="Block")

#: A block type's slug: lower-case words joined by hyphens.
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: What a masked secret field reads as, everywhere outside the flow that declared it.
MASK = "********"


def _kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class Block(BaseModel):
    """The base of every block type. Subclass it with pydantic fields (``SecretStr``
    for secrets) and, optionally, ``block_type = "my-slug"`` (default: the class name
    in kebab case); register it with ``pushpool block type register file.py:Class``."""

    model_config = ConfigDict(extra="forbid")
    block_type: ClassVar[str] = ""

    @classmethod
    def type_slug(cls) -> str:
        """This type's slug (``block_type``, or the class name in kebab case)."""
        return cls.__dict__.get("block_type") or _kebab(cls.__name__)

    @classmethod
    def type_schema(cls) -> dict[str, Any]:
        """The JSON Schema the service validates this type's documents with."""
        return cls.model_json_schema()

    @classmethod
    def load(cls: type[B], name: str) -> B:
        """The block document ``<slug>/<name>`` with its secrets, read through the
        current run's credentials. Raises :class:`BlockError` naming the block when the
        run may not read it (not declared by its deployment), it does not exist, or no
        run is executing."""
        from pushpool.context import get_environment

        ref = f"{cls.type_slug()}/{name}"
        env = get_environment()
        if env is None or env.blocks is None:
            raise BlockError(f"block {ref!r}: blocks are loaded inside a flow run only")
        values = env.blocks(cls.type_slug(), name)
        return cls.model_validate(values)


class Secret(Block):
    """One secret value."""

    block_type: ClassVar[str] = "secret"
    value: SecretStr = Field(description="The secret")

    def get(self) -> str:
        """The secret in clear."""
        return self.value.get_secret_value()


class JSON(Block):
    """Any JSON value (not secret)."""

    block_type: ClassVar[str] = "json"
    value: Any = Field(description="Any JSON value")


class SlackWebhook(Block):
    """A Slack incoming webhook (its URL is the credential)."""

    block_type: ClassVar[str] = "slack-webhook"
    url: SecretStr = Field(description="The webhook URL")


class SMTP(Block):
    """An SMTP server to send mail through."""

    block_type: ClassVar[str] = "smtp"
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    use_tls: bool = True
    from_address: str | None = None


class S3Bucket(Block):
    """An S3 bucket (credentials optional: the task role is used without them)."""

    block_type: ClassVar[str] = "s3-bucket"
    bucket_name: str = Field(min_length=3, max_length=63)
    region: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None


class GCSBucket(Block):
    """A Google Cloud Storage bucket (service account key optional)."""

    block_type: ClassVar[str] = "gcs-bucket"
    bucket: str = Field(min_length=3, max_length=222)
    project: str | None = None
    service_account_info: SecretStr | None = Field(
        default=None, description="A service account key, as JSON text"
    )


class AzureBlobContainer(Block):
    """An Azure Blob Storage container (connection string optional)."""

    block_type: ClassVar[str] = "azure-blob-container"
    container_name: str = Field(min_length=3, max_length=63)
    account_url: str | None = None
    connection_string: SecretStr | None = None


class DatabaseURL(Block):
    """A database connection URL (secret: it usually holds a password)."""

    block_type: ClassVar[str] = "database-url"
    url: SecretStr = Field(description="e.g. postgresql://user:password@host/db")


#: The built-in block types, by slug.
BUILTIN_BLOCKS: dict[str, type[Block]] = {
    cls.type_slug(): cls
    for cls in (
        Secret,
        JSON,
        SlackWebhook,
        SMTP,
        S3Bucket,
        GCSBucket,
        AzureBlobContainer,
        DatabaseURL,
    )
}
