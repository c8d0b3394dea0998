"""Dispatch's side of blocks: a run's ``env`` references become values in the
provisioner's secret channel (``SubmitRequest.secret_env``, never logged or stored), read
at submit time so a rotated secret reaches the next run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from provisioners.base import SecretValue, SubmitRequest
from service.blocks.crypto import Keyring
from service.blocks.refs import TEMPLATE, resolve_env
from service.store.base import Store

#: Names the variables holding resolved blocks, so the runner redacts their values
#: from the run's logs (``runner_image.config.SECRET_ENV_VAR``).
SECRET_ENV = "PUSHPOOL_SECRET_ENV"


def read_values(store: Store, ring: Keyring, slug: str, name: str) -> dict[str, Any]:
    """A block's values with its secrets in clear. Never put the result in a response
    (other than the declared runner read), a log, a state message or a record."""
    doc = store.get_block(slug, name)
    return {**doc.values, **{f: json.loads(ring.decrypt(t)) for f, t in doc.secrets.items()}}


def source_of(template: str) -> str:
    """The stable name of what an ``env`` value resolves from (``SecretValue.source``)."""
    whole = TEMPLATE.fullmatch(template.strip())
    if whole is not None:
        parts = [whole["slug"], whole["name"], whole["field"]]
        return "/".join(p for p in parts if p)
    return f"composite/{hashlib.sha256(template.encode()).hexdigest()[:16]}"


def referenced_sources(job_variables: Iterable[dict[str, Any]]) -> set[str]:
    """The ``SecretValue.source`` of every ``env`` value holding a block reference in any
    of ``job_variables``: what a pool's platform secrets must keep."""
    found: set[str] = set()
    for jobs in job_variables:
        env = jobs.get("env")
        if isinstance(env, dict):
            found |= {
                source_of(v) for v in env.values() if isinstance(v, str) and TEMPLATE.search(v)
            }
    return found


def with_blocks(request: SubmitRequest, store: Store, ring: Keyring) -> SubmitRequest:
    """``request`` with its job variables' ``env`` references resolved into
    ``secret_env`` (unchanged when there are none). ``LookupError`` / ``BlockKeyError``
    name the block that could not be read, never a value."""
    env = request.job_variables.get("env")
    if not isinstance(env, dict) or not any(
        isinstance(v, str) and TEMPLATE.search(v) for v in env.values()
    ):
        return request
    plain, resolved = resolve_env(env, lambda slug, name: read_values(store, ring, slug, name))
    return dataclasses.replace(
        request,
        env={SECRET_ENV: ",".join(sorted(resolved)), **request.env},
        secret_env={k: SecretValue(source_of(env[k]), v) for k, v in resolved.items()},
        job_variables={**request.job_variables, "env": plain},
    )
