"""Runner configuration, read from the environment."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field

API_URL_VAR = "PUSHPOOL_API_URL"
FLOW_RUN_ID_VAR = "PUSHPOOL_FLOW_RUN_ID"
TOKEN_VAR = "PUSHPOOL_RUN_TOKEN"
REQUIRED_VARS = (API_URL_VAR, FLOW_RUN_ID_VAR, TOKEN_VAR)


class ConfigError(Exception):
    """The environment does not describe a flow run."""


@dataclass(frozen=True)
class RunnerConfig:
    api_url: str
    flow_run_id: str
    token: str = field(repr=False)


def load_config(environ: MutableMapping[str, str] | None = None) -> RunnerConfig:
    """Read the config and remove the token from the environment.

    The flow (and any process it spawns) must not see the run token, so it is
    popped from ``environ`` once read.
    """
    env = os.environ if environ is None else environ
    missing = [name for name in REQUIRED_VARS if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(f"missing required environment variable(s): {', '.join(missing)}")
    api_url = env[API_URL_VAR].strip().rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"{API_URL_VAR} must be an http:// or https:// URL, got {api_url!r}")
    token = env.pop(TOKEN_VAR).strip()
    return RunnerConfig(api_url=api_url, flow_run_id=env[FLOW_RUN_ID_VAR].strip(), token=token)
