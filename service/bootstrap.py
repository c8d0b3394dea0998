"""First start: an admin API key (printed once, saved for the local CLI) and the `local` pool."""

from __future__ import annotations

import json
import os
from pathlib import Path

from service.security import create_api_key
from service.services import Services

DEFAULT_POOL = "local"


def credentials_path(home: Path) -> Path:
    return home / "credentials"


def write_credentials(home: Path, api_url: str, api_key: str) -> Path:
    """Write the key where the CLI on this machine finds it, readable by the owner only."""
    home.mkdir(parents=True, exist_ok=True)
    path = credentials_path(home)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_url": api_url, "api_key": api_key}, fh)
    os.chmod(path, 0o600)
    return path


def ensure_admin_key(svc: Services) -> str | None:
    """Create the admin key on first start; return it (once) or ``None`` if it exists."""
    if not svc.store.set_meta_if_absent("bootstrap.admin_key", "created"):
        return None
    _, secret = create_api_key(svc.store, "admin", svc.clock())
    write_credentials(svc.settings.home, svc.settings.resolved_public_api_url(), secret)
    return secret


def ensure_key_from_secret(svc: Services, secret_arn: str) -> bool:
    """Make the admin key kept in Secrets Manager (the serverless bootstrap) a valid key.

    Returns True if this call registered it. Safe under concurrent cold starts.
    """
    from service.errors import AlreadyExists
    from service.security import hash_secret, register_api_key

    key = _secret_value(secret_arn)
    if svc.store.find_api_key(hash_secret(key)) is not None:
        return False
    try:
        register_api_key(svc.store, "admin", key, svc.clock())
    except AlreadyExists:
        return False  # another cold start registered it first
    return True


def _secret_value(secret_arn: str) -> str:
    import boto3  # only the serverless deployment reaches this

    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    if not isinstance(value, str) or len(value) < 16:
        raise ValueError("the admin API key secret must be a string of at least 16 characters")
    return value


def ensure_default_pool(svc: Services) -> bool:
    """Create the ``local`` process pool on first start only (a user may delete it)."""
    from service.pools import WorkPoolCreate, create_pool

    if not svc.store.set_meta_if_absent("bootstrap.default_pool", "created"):
        return False
    from service.errors import AlreadyExists

    working_dir = str(svc.settings.home / "runs")
    try:
        create_pool(
            svc,
            WorkPoolCreate(name=DEFAULT_POOL, type="process", config={"working_dir": working_dir}),
        )
    except AlreadyExists:
        return False
    return True
