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
