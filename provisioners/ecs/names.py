"""Names of a pool's AWS resources, all derived from the pool name."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

PREFIX = "pushpool"
#: The tag every resource a pool creates carries, valued with the pool name.
POOL_TAG = "pushpool:pool"
RUN_TAG = "pushpool:run-id"
ATTEMPT_TAG = "pushpool:attempt"
#: Hex digits of the content hash in a task definition family.
DIGEST_LENGTH = 12
_SLUG_MAX = 24


def slug(pool: str) -> str:
    """A short lowercase ``[a-z0-9-]`` form of ``pool``, distinct per pool name.

    Pool names that are already short and lowercase are used as they are; others are
    shortened and suffixed with a hash of the original so two pools never collide.
    """
    clean = re.sub(r"[^a-z0-9-]+", "-", pool.lower()).strip("-") or "pool"
    if clean == pool and len(clean) <= _SLUG_MAX:
        return clean
    digest = hashlib.sha256(pool.encode()).hexdigest()[:8]
    return f"{clean[: _SLUG_MAX - 9].rstrip('-')}-{digest}"


@dataclass(frozen=True)
class Names:
    pool: str
    slug: str

    @classmethod
    def for_pool(cls, pool: str) -> Names:
        return cls(pool=pool, slug=slug(pool))

    @property
    def base(self) -> str:
        return f"{PREFIX}-{self.slug}"

    @property
    def cluster(self) -> str:
        return self.base

    @property
    def execution_role(self) -> str:
        return f"{self.base}-execution"

    @property
    def task_role(self) -> str:
        return f"{self.base}-task"

    @property
    def result_bucket(self) -> str:
        """The base of the result bucket's name (the account and region are appended)."""
        return f"{self.base}-results"

    @property
    def log_group(self) -> str:
        return f"/{PREFIX}/{self.slug}"

    @property
    def repository(self) -> str:
        return f"{PREFIX}/{self.slug}"

    @property
    def network(self) -> str:
        """The Name tag of the VPC, internet gateway, route table and security group."""
        return self.base

    def subnet(self, index: int) -> str:
        return f"{self.base}-{'abcdefgh'[index]}"

    @property
    def secret_prefix(self) -> str:
        """Every Secrets Manager secret the pool makes is named under this."""
        return f"{PREFIX}/{self.slug}/"

    def secret(self, source: str) -> str:
        """The secret holding a block value (``SecretValue.source``) for this pool."""
        return f"{self.secret_prefix}{source}"

    @property
    def family_prefix(self) -> str:
        return f"{self.base}-"

    def family(self, digest: str) -> str:
        return f"{self.family_prefix}{digest[:DIGEST_LENGTH]}"

    def owns_family(self, family: str) -> bool:
        pattern = rf"{re.escape(self.family_prefix)}[0-9a-f]{{{DIGEST_LENGTH}}}"
        return re.fullmatch(pattern, family) is not None
