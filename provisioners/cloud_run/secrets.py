"""A cloud-run pool's block secrets in Secret Manager.

Each resolved block value (``SubmitRequest.secret_env``) is kept in a secret whose id is
``pushpool-<pool slug>_<source>-<digest>`` (:func:`names.secret_id`), created on first use
(label ``pushpool-pool``, ``roles/secretmanager.secretAccessor`` for the job's service
account on that secret only) and given a new version when the value changes. The job's
env references the exact version (``secretKeyRef``), so a run gets the value resolved at
its dispatch and a rotated block reaches the next run. A secret no deployment of the pool
references any more is deleted by the tick's housekeeping (:meth:`PoolSecrets.prune`);
all go when the pool is deprovisioned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set

from provisioners.base import SecretValue
from provisioners.cloud_run.errors import GcpError
from provisioners.cloud_run.gcp import Gcp
from provisioners.cloud_run.names import pool_labels, secret_id, secret_prefix
from provisioners.secretcache import WrittenSecrets

log = logging.getLogger("pushpool.cloud_run")

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"


class PoolSecrets:
    """Creates, updates and removes one pool's secrets."""

    def __init__(self, gcp: Gcp, pool: str) -> None:
        self.gcp, self.pool = gcp, pool
        self.written = WrittenSecrets()  # secret id + reader -> version name

    def ensure(self, secret_env: Mapping[str, SecretValue], reader: str) -> dict[str, str]:
        """``variable -> secret version name``, each version holding the current value
        and readable by ``reader`` (``serviceAccount:EMAIL``)."""
        return {key: self._ensure(secret, reader) for key, secret in sorted(secret_env.items())}

    def _ensure(self, secret: SecretValue, reader: str) -> str:
        sid = secret_id(self.pool, secret.source)
        version = self.written.reference(f"{sid} {reader}", secret.value)
        if version is None:
            version = self._write(sid, secret.value)
            self.gcp.grant_secret_access(sid, reader, ACCESSOR_ROLE)
            self.written.remember(f"{sid} {reader}", secret.value, version)
        return version

    def _write(self, sid: str, value: str) -> str:
        try:
            return self.gcp.add_secret_version(sid, value)
        except GcpError as exc:
            if not exc.not_found:
                raise
        try:
            self.gcp.create_secret(sid, pool_labels(self.pool))
        except GcpError as exc:
            if not exc.conflict:  # another dispatcher created it meanwhile
                raise
        else:
            log.info("created secret %s", sid)
        return self.gcp.add_secret_version(sid, value)

    def prune(self, keep: Set[str]) -> list[str]:
        """Delete the pool's secrets whose source is not in ``keep``; the names removed.
        One that fails to go is logged and left for the next pass."""
        wanted = {self.gcp.secret_name(secret_id(self.pool, source)) for source in keep}
        removed = []
        for name in sorted(self.gcp.list_secret_names(secret_prefix(self.pool))):
            if name in wanted:
                continue
            self.written.forget(name.rpartition("/")[2])
            try:
                self.gcp.delete_secret(name)
            except GcpError as exc:
                log.warning("secret %s not removed, will retry: %s", name, exc)
                continue
            removed.append(name)
        if removed:
            log.info("removed %d secret(s) no deployment references", len(removed))
        return removed

    def remove_all(self) -> list[str]:
        """Delete every secret of the pool; the names removed."""
        names = self.gcp.list_secret_names(secret_prefix(self.pool))
        for name in names:
            self.gcp.delete_secret(name)
        self.written.clear()
        return names
