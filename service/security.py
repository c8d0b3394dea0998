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

from service.models import ApiKey
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


def create_api_key(store: Store, name: str, now: datetime) -> tuple[ApiKey, str]:
    """Store a new key's hash; return the record and the key (shown to the caller once)."""
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return register_api_key(store, name, secret, now), secret


def register_api_key(store: Store, name: str, secret: str, now: datetime) -> ApiKey:
    """Store the hash of a key made elsewhere (e.g. a deployment's Secrets Manager secret)."""
    record = ApiKey(
        id=uuid.uuid4().hex[:12], name=name, key_hash=hash_secret(secret), created_at=now
    )
    store.create_api_key(record)
    return record
