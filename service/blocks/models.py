"""The store's block records: types (user-registered; built-ins come from the SDK) and
documents, whose secret fields the store only ever holds encrypted."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from service.models import BoundedDict, Name, Strict

#: A block type's slug (the SDK's ``pushpool.blocks.SLUG_PATTERN``; a test keeps them equal).
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, examples=["secret"])]
#: ``type/name``: how deployments and the CLI name a block document.
REF_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
BlockRef = Annotated[str, Field(pattern=REF_PATTERN, examples=["secret/db-password"])]
_REF = re.compile(REF_PATTERN)


def split_ref(ref: str) -> tuple[str, str]:
    """``"secret/db-password"`` -> ``("secret", "db-password")`` (``ValueError`` if not
    a block reference)."""
    if not _REF.match(ref):
        raise ValueError(f"{ref!r} is not a block reference of the form type/name")
    slug, _, name = ref.partition("/")
    return slug, name


class BlockType(Strict):
    """A block type: its JSON Schema and the top-level fields that are secret
    (``writeOnly``)."""

    slug: Slug
    description: str = ""
    json_schema: BoundedDict
    secret_fields: list[str] = Field(default_factory=list)
    builtin: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class BlockDocument(Strict):
    """A block document as stored: plain values, and each secret field as a Fernet token
    (``secrets``, never serialised into a response). ``version`` counts writes (1 on
    create): every write is conditional on the version it replaces."""

    type: Slug
    name: Name
    values: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    version: int = Field(default=1, ge=1)
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.type}/{self.name}"

    def stored(self) -> dict[str, Any]:
        """Everything, the encrypted secrets included (for the store's own columns)."""
        return {**self.model_dump(mode="json"), "secrets": dict(self.secrets)}
