"""What every pool resource is: found, created, or deleted, through one shared context."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from provisioners.base import PlanStep
from provisioners.ecs.aws import AwsClient
from provisioners.ecs.errors import AwsError
from provisioners.ecs.names import POOL_TAG, Names

T = TypeVar("T")


@dataclass(frozen=True)
class Found:
    """A resource that exists: its id, and whether it carries this pool's tag."""

    id: str
    owned: bool


@dataclass
class Context:
    """Shared by the resources of one plan, apply or removal: the client and what is known."""

    aws: AwsClient
    names: Names
    sleep: Callable[[float], None]
    retention_days: int = 30
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


class Resource(ABC):
    """One resource of a pool's infrastructure, identified by kind and name."""

    kind: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @abstractmethod
    def find(self, ctx: Context) -> Found | None:
        """Look it up by name (read only)."""

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        """Look up the recorded ``resource_id`` (read only); by name unless overridden."""
        return self.find(ctx)

    @abstractmethod
    def create(self, ctx: Context) -> str:
        """Create it (tagged with the pool); return its id."""

    @abstractmethod
    def delete(self, ctx: Context, resource_id: str) -> None:
        """Remove it, and what hangs off it; a resource already gone is fine."""

    def detail(self, ctx: Context, found: Found | None) -> str:
        """A note for the plan table."""
        if found is None:
            return ""
        return found.id if found.owned else f"{found.id} (not pushpool's: used, never removed)"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        """Config values this resource contributes to the pool."""
        return {}

    def step(self, ctx: Context, found: Found | None) -> PlanStep:
        return PlanStep(self.kind, self.name, found is not None, self.detail(ctx, found))
