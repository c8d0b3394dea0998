"""Names and tags of a pool's Azure resources, derived from the pool and the run."""

from __future__ import annotations

import hashlib
import re

PREFIX = "pushpool"
#: Tags every container group carries; ``POOL_TAG`` marks every provisioned resource.
POOL_TAG = "pushpool-pool"
RUN_TAG = "pushpool-run-id"
ATTEMPT_TAG = "pushpool-attempt"
#: The flow's container inside each group.
CONTAINER = "flow"
MAX_GROUP_NAME = 63
_VALID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def _clean(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")


def _digest(text: str, length: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def group_name(run_id: str, attempt: int) -> str:
    """The container group of one attempt: deterministic, and valid for ACI (1-63
    lowercase letters, digits and single hyphens, no hyphen at either end).

    A run id that is already clean is kept readable (``pp-<run id>-<attempt>``); any
    other is shortened and suffixed with a hash of the original, so two runs never share
    a name."""
    suffix = f"-{attempt}"
    clean = _clean(run_id)
    name = f"pp-{clean}{suffix}"
    if clean == run_id and len(name) <= MAX_GROUP_NAME:
        return name
    room = MAX_GROUP_NAME - len(suffix) - 11 - 3
    head = clean[:room].rstrip("-")
    return "-".join(p for p in ("pp", head, _digest(run_id)) if p) + suffix


def is_valid_group_name(name: str) -> bool:
    return 1 <= len(name) <= MAX_GROUP_NAME and bool(_VALID.match(name))


def slug(pool: str, length: int = 24) -> str:
    """A short lowercase ``[a-z0-9-]`` form of ``pool``, distinct per pool name."""
    clean = _clean(pool) or "pool"
    if clean == pool and len(clean) <= length:
        return clean
    return f"{clean[: length - 9].rstrip('-')}-{_digest(pool, 8)}"


def identity_name(pool: str) -> str:
    return f"{PREFIX}-{slug(pool)}"


def registry_name(pool: str, subscription_id: str) -> str:
    """ACR names are 5-50 alphanumerics, globally unique: pool slug + a hash of both."""
    alnum = re.sub(r"[^a-z0-9]", "", slug(pool))[:30]
    return f"{PREFIX}{alnum}{_digest(subscription_id + '/' + pool, 8)}"


def storage_account_name(pool: str, subscription_id: str) -> str:
    """Storage account names are 3-24 lowercase alphanumerics, globally unique: ``pp`` +
    the pool slug (at most 14) + a hash of subscription and pool."""
    alnum = re.sub(r"[^a-z0-9]", "", slug(pool))[:14]
    return f"pp{alnum}{_digest(subscription_id + '/' + pool, 8)}"


def role_name(pool: str) -> str:
    return f"{PREFIX}-{slug(pool)}-control-plane"
