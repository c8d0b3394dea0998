"""API keys and run tokens: random, shown once, stored only as SHA-256 hashes.

Both are 256-bit random values, so a plain SHA-256 is a safe one-way store (no
salt or slow hash is needed for non-guessable secrets).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime

from service.errors import Forbidden
from service.models import ApiKey, Role
from service.store.base import Store

API_KEY_PREFIX = "pp_"
RUN_TOKEN_PREFIX = "ppr_"
#: The single-use credential a run's infrastructure carries in its environment.
BOOTSTRAP_PREFIX = "ppb_"
#: Anything shaped like one of our secrets (API key, run token, bootstrap credential).
_SECRET_SHAPE = re.compile(r"pp[rb]?_[A-Za-z0-9_-]{43}")
REDACTED = "[REDACTED]"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_run_token() -> tuple[str, str]:
    """``(token, hash)`` for one attempt of one run."""
    token = RUN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_secret(token)


def new_bootstrap_credential() -> tuple[str, str]:
    """``(credential, hash)``: what a run's environment carries; exchanged once, at the
    runner's start, for the run token (see ``service.runs.exchange_token``)."""
    credential = BOOTSTRAP_PREFIX + secrets.token_urlsafe(32)
    return credential, hash_secret(credential)


def is_run_token(secret: str) -> bool:
    """Shaped like a run token the runner made (``ppr_`` + 43 URL-safe characters)."""
    return secret.startswith(RUN_TOKEN_PREFIX) and _SECRET_SHAPE.fullmatch(secret) is not None


def redact_secrets(text: str) -> str:
    """``text`` with every API key, run token and bootstrap credential replaced."""
    return _SECRET_SHAPE.sub(REDACTED, text) if "pp" in text else text


def matches(secret: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and secrets.compare_digest(hash_secret(secret), stored_hash)


def create_api_key(
    store: Store,
    name: str,
    now: datetime,
    role: Role = Role.ADMIN,
    pools: list[str] | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the record and the key (shown to the caller once)."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return register_api_key(store, name, secret, now, role, pools), secret


def register_api_key(
    store: Store,
    name: str,
    secret: str,
    now: datetime,
    role: Role = Role.ADMIN,
    pools: list[str] | None = None,
) -> ApiKey:
    """Store the hash of a key made elsewhere (e.g. a deployment's Secrets Manager secret)."""
    record = ApiKey(
        id=uuid.uuid4().hex[:12],
        name=name,
        key_hash=hash_secret(secret),
        role=role,
        pools=pools if role == Role.DEPLOYER else None,
        created_at=now,
    )
    store.create_api_key(record)
    return record


def require_role(key: ApiKey, needed: Role) -> None:
    """Raise ``Forbidden`` naming ``needed`` unless ``key``'s role includes it."""
    if not key.role.includes(needed):
        raise Forbidden(
            f"this needs an API key with the {needed.value!r} role (this key is {key.role.value!r})"
        )


def require_pool(key: ApiKey, pool: str) -> None:
    """Raise ``Forbidden`` unless ``key`` may deploy to and run in ``pool``."""
    if not key.may_use_pool(pool):
        allowed = ", ".join(key.pools or []) or "none"
        raise Forbidden(f"this API key may not use work pool {pool!r} (its pools: {allowed})")


def check_grant(creator: ApiKey, role: Role, pools: list[str] | None) -> None:
    """A key never creates a key stronger than itself: no higher role, and a deployer
    limited to some pools creates keys limited to (some of) those pools."""
    require_role(creator, role)
    if creator.pools is None or creator.role == Role.ADMIN or role == Role.VIEWER:
        return
    extra = sorted(set(pools or ["(every pool)"]) - set(creator.pools))
    if pools is None or extra:
        raise Forbidden(
            f"this API key is limited to the pools {', '.join(creator.pools)}; "
            f"a key it creates cannot use {', '.join(extra)}"
        )
