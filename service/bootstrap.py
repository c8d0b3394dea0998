"""First start: an admin API key (printed once, saved for the local CLI) and the `local` pool."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from service.models import Role
from service.security import create_api_key
from service.services import Services

if TYPE_CHECKING:
    from service.settings import Settings

log = logging.getLogger("pushpool.bootstrap")

DEFAULT_POOL = "local"


def credentials_path(home: Path) -> Path:
    return home / "credentials"


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file the settings name, if they name one."""
    from sqlalchemy.engine import make_url  # only SQL setups come here

    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def secure_home(settings: Settings) -> None:
    """``PUSHPOOL_HOME`` 0700 and the SQLite database (and its WAL files) 0600, whatever
    their modes were: they hold the key hashes, run tokens' hashes and the credentials.

    A missing database file is created 0600 before SQLite opens it, so it never exists
    with looser permissions (SQLite gives its -wal/-shm files the database's mode)."""
    home = settings.home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    database = sqlite_file(settings)
    if database is None:
        return
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_CREAT | os.O_RDWR, 0o600))
    for path in (database, *(Path(f"{database}{suffix}") for suffix in ("-wal", "-shm"))):
        if path.exists():
            os.chmod(path, 0o600)


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
    """Create the admin key on first start and save it to the credentials file; return it
    (once, for the caller to use, never to print) or ``None`` if it exists."""
    if not svc.store.set_meta_if_absent("bootstrap.admin_key", "created"):
        return None
    record, secret = create_api_key(svc.store, "admin", svc.clock())
    path = write_credentials(svc.settings.home, svc.settings.resolved_public_api_url(), secret)
    log.info("created admin API key %s; saved to %s (mode 0600)", record.id, path)
    return secret


def recover_admin_key(svc: Services, name: str = "recovered-admin") -> tuple[str, Path]:
    """Mint a new admin key straight in the store (no API, no other key needed: for the
    server's own machine when every admin key is lost) and save it to the credentials
    file. Returns the new key's id and where the key was saved."""
    record, secret = create_api_key(svc.store, name, svc.clock(), Role.ADMIN)
    path = write_credentials(svc.settings.home, svc.settings.resolved_public_api_url(), secret)
    log.info("recovered: admin API key %s saved to %s (mode 0600)", record.id, path)
    return record.id, path


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


def ensure_default_pool(svc: Services, source_roots: Sequence[Path] | None = None) -> bool:
    """Create the ``local`` process pool on first start only (a user may delete it).

    Its ``allowed_source_roots`` are ``source_roots`` (default: the current directory,
    where ``pushpool server start`` runs): the Quickstart deploys ``examples/`` from the
    checkout it starts in, and no other local directory is deployable until an admin adds
    it to the pool's config."""
    from service.pools import WorkPoolCreate, create_pool

    if not svc.store.set_meta_if_absent("bootstrap.default_pool", "created"):
        return False
    from service.errors import AlreadyExists

    config = {
        "working_dir": str(svc.settings.home / "runs"),
        "allowed_source_roots": [str(root.resolve()) for root in source_roots or [Path.cwd()]],
    }
    try:
        create_pool(svc, WorkPoolCreate(name=DEFAULT_POOL, type="process", config=config))
    except AlreadyExists:
        return False
    return True


def default_pool_warning(svc: Services) -> str | None:
    """What an admin must set when the ``local`` pool (made before pools had source roots)
    allows no ``local`` source; ``None`` when it allows some or is not a process pool."""
    try:
        pool = svc.store.get_pool(DEFAULT_POOL)
    except LookupError:
        return None
    if pool.type != "process" or pool.config.get("allowed_source_roots"):
        return None
    return (
        f"work pool {DEFAULT_POOL!r} allows no local source (its config has no "
        "allowed_source_roots): deploys of local code to it are refused until an admin sets "
        f"them, e.g. pushpool work-pool update {DEFAULT_POOL} --set "
        f"'allowed_source_roots={json.dumps([str(Path.cwd().resolve())])}' (or PATCH "
        f"/api/work-pools/{DEFAULT_POOL} with that key in its config)"
    )
