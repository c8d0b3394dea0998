"""What every pool resource is: found, created, or deleted, through one shared context."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from provisioners import infra
from provisioners.ecs.aws import AwsClient
from provisioners.ecs.errors import AwsError
from provisioners.ecs.names import POOL_TAG, Names
from provisioners.infra import Found

__all__ = ["Context", "Found", "Resource", "ignore"]

T = TypeVar("T")


@dataclass
class Context:
    """Shared by the resources of one plan, apply or removal: the client and what is known."""

    aws: AwsClient
    names: Names
    sleep: Callable[[float], None]
    retention_days: int = 30
    #: Days a persisted result is kept in the pool's result bucket (lifecycle rule).
    result_retention_days: int = 30
    #: Resource key -> id, of everything found or created so far (dependency order).
    ids: dict[str, str] = field(default_factory=dict)
    #: How often to retry a call AWS refuses for a dependency still going away.
    attempts: int = 8

    @property
    def pool(self) -> str:
        return self.names.pool

    def ids_of(self, kind: str) -> list[str]:
        return [v for k, v in self.ids.items() if k.split("/", 1)[0] == kind]

    def id_of(self, kind: str) -> str | None:
        found = self.ids_of(kind)
        return found[0] if found else None

    def owned(self, tags: Iterable[dict[str, Any]] | dict[str, str] | None) -> bool:
        """Whether AWS tags (any of the shapes AWS APIs use) mark this pool's resource."""
        if isinstance(tags, dict):
            return tags.get(POOL_TAG) == self.pool
        for tag in tags or []:
            key = tag.get("Key", tag.get("key"))
            if key == POOL_TAG and tag.get("Value", tag.get("value")) == self.pool:
                return True
        return False

    def retry(self, call: Callable[[], T], codes: frozenset[str]) -> T:
        """``call()``, retried with backoff while AWS answers one of ``codes``."""
        for attempt in range(self.attempts):
            try:
                return call()
            except AwsError as exc:
                if exc.code not in codes or attempt == self.attempts - 1:
                    raise
                self.sleep(min(30.0, 2.0 * 2**attempt))
        raise AssertionError("unreachable")


def ignore(codes: frozenset[str], call: Callable[[], object]) -> None:
    """``call()``, treating the AWS errors ``codes`` (it is gone already) as success."""
    try:
        call()
    except AwsError as exc:
        if exc.code not in codes:
            raise


class Resource(infra.Resource[Context]):
    """One resource of an ECS pool's infrastructure (see :class:`provisioners.infra.Resource`)."""
