"""A pool's block secrets in Secrets Manager.

Each resolved block value (``SubmitRequest.secret_env``) is kept in a secret named
``pushpool/<pool slug>/<source>`` (:meth:`Names.secret`), created on first use and given a
new version when the value changes, so a rotated block reaches the next run. Task
definitions reference the secret's ARN (``secrets[].valueFrom``), never its value; ECS
reads it with the pool's execution role, whose policy allows ``GetSecretValue`` on that
prefix only. A secret no deployment of the pool references any more is deleted by the
tick's housekeeping (:meth:`PoolSecrets.prune`); all go when the pool is deprovisioned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Set

from provisioners.base import SecretValue
from provisioners.ecs.aws import AwsClient
from provisioners.ecs.errors import AwsError
from provisioners.ecs.names import POOL_TAG, Names
from provisioners.secretcache import WrittenSecrets

log = logging.getLogger("pushpool.ecs")

_MISSING = "ResourceNotFoundException"
_EXISTS = "ResourceExistsException"


class PoolSecrets:
    """Creates, updates and removes one pool's secrets; remembers what it last wrote."""

    def __init__(self, aws: AwsClient, names: Names) -> None:
        self.aws = aws
        self.names = names
        self.written = WrittenSecrets()  # secret name -> ARN, when the value is unchanged

    def ensure(self, secret_env: Mapping[str, SecretValue]) -> dict[str, str]:
        """``variable -> secret ARN`` with each secret holding its current value."""
        return {key: self._ensure(secret) for key, secret in sorted(secret_env.items())}

    def _ensure(self, secret: SecretValue) -> str:
        name = self.names.secret(secret.source)
        arn = self.written.reference(name, secret.value)
        if arn is None:
            arn = self._write(name, secret.value)
            self.written.remember(name, secret.value, arn)
        return arn

    def _write(self, name: str, value: str) -> str:
        try:
            return self.aws.put_secret_value(name, value)
        except AwsError as exc:
            if exc.code != _MISSING:
                raise
        try:
            arn = self.aws.create_secret(name, value, {POOL_TAG: self.names.pool})
        except AwsError as exc:
            if exc.code != _EXISTS:  # another dispatcher created it meanwhile
                raise
            return self.aws.put_secret_value(name, value)
        log.info("created secret %s", name)
        return arn

    def remove_all(self) -> list[str]:
        """Delete every secret under the pool's prefix; the ARNs removed."""
        arns = list(self.aws.list_secrets(self.names.secret_prefix).values())
        for arn in arns:
            self.aws.delete_secret(arn)
        self.written.clear()
        return arns

    def prune(self, keep: Set[str]) -> list[str]:
        """Delete the pool's secrets whose source is not in ``keep``; the names removed.
        One that fails to go is logged and left for the next pass."""
        wanted = {self.names.secret(source) for source in keep}
        removed = []
        for name, arn in sorted(self.aws.list_secrets(self.names.secret_prefix).items()):
            if name in wanted:
                continue
            self.written.forget(name)
            try:
                self.aws.delete_secret(arn)
            except AwsError as exc:
                log.warning("secret %s not removed, will retry: %s", name, exc.code)
                continue
            removed.append(name)
        if removed:
            log.info("removed %d secret(s) no deployment references", len(removed))
        return removed
