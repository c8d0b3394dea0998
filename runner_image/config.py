"""Runner configuration, read from the environment."""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

API_URL_VAR = "PUSHPOOL_API_URL"
FLOW_RUN_ID_VAR = "PUSHPOOL_FLOW_RUN_ID"
#: A single-use credential: exchanged once at start for the run token (kept in memory).
BOOTSTRAP_VAR = "PUSHPOOL_BOOTSTRAP_TOKEN"
#: Seconds the runner keeps trying to deliver its reports and logs (default 15 min).
WINDOW_VAR = "PUSHPOOL_DELIVERY_WINDOW_SECONDS"
#: Where to leave the outcome record (the process pool sets it to its run directory).
OUTCOME_FILE_VAR = "PUSHPOOL_OUTCOME_FILE"
#: Names (comma-separated) of variables that hold block secrets: redacted from logs.
SECRET_ENV_VAR = "PUSHPOOL_SECRET_ENV"
REQUIRED_VARS = (API_URL_VAR, FLOW_RUN_ID_VAR, BOOTSTRAP_VAR)
DEFAULT_WINDOW = 15 * 60.0


class ConfigError(Exception):
    """The environment does not describe a flow run."""


@dataclass(frozen=True)
class RunnerConfig:
    api_url: str
    flow_run_id: str
    bootstrap: str = field(repr=False)
    window: float = DEFAULT_WINDOW
    outcome_file: Path | None = None
    #: The values of the variables named by ``PUSHPOOL_SECRET_ENV`` (block secrets).
    secrets: tuple[str, ...] = field(default=(), repr=False)


def load_config(environ: MutableMapping[str, str] | None = None) -> RunnerConfig:
    """Read the config and remove the bootstrap credential from the environment.

    The flow (and any process it spawns) must not see it, so it is popped from
    ``environ`` once read (it is spent at start anyway).
    """
    env = os.environ if environ is None else environ
    missing = [name for name in REQUIRED_VARS if not env.get(name, "").strip()]
    if missing:
        raise ConfigError(f"missing required environment variable(s): {', '.join(missing)}")
    api_url = env[API_URL_VAR].strip().rstrip("/")
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"{API_URL_VAR} must be an http:// or https:// URL, got {api_url!r}")
    bootstrap = env.pop(BOOTSTRAP_VAR).strip()
    outcome = env.pop(OUTCOME_FILE_VAR, "").strip()
    secret_names = [n.strip() for n in env.pop(SECRET_ENV_VAR, "").split(",") if n.strip()]
    return RunnerConfig(
        api_url=api_url,
        flow_run_id=env[FLOW_RUN_ID_VAR].strip(),
        bootstrap=bootstrap,
        window=_window(env.get(WINDOW_VAR)),
        outcome_file=Path(outcome) if outcome else None,
        secrets=tuple(env[n] for n in secret_names if env.get(n)),
    )


def _window(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_WINDOW
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{WINDOW_VAR} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{WINDOW_VAR} must be positive, got {raw!r}")
    return value
