"""Dispatch's side of blocks: a run's ``env`` references become values in the
provisioner's secret channel (``SubmitRequest.env``, never logged or stored), read at
submit time so a rotated secret reaches the next run."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from provisioners.base import SubmitRequest
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


def with_blocks(request: SubmitRequest, store: Store, ring: Keyring) -> SubmitRequest:
    """``request`` with its job variables' ``env`` references resolved into ``env``
    (unchanged when there are none). ``LookupError`` / ``BlockKeyError`` name the block
    that could not be read, never a value."""
    env = request.job_variables.get("env")
    if not isinstance(env, dict) or not any(
        isinstance(v, str) and TEMPLATE.search(v) for v in env.values()
    ):
        return request
    plain, resolved = resolve_env(env, lambda slug, name: read_values(store, ring, slug, name))
    return dataclasses.replace(
        request,
        env={**resolved, SECRET_ENV: ",".join(sorted(resolved)), **request.env},
        job_variables={**request.job_variables, "env": plain},
    )
