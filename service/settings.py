"""Settings, read from ``PUSHPOOL_*`` environment variables by :func:`get_settings`.

Built by a function, never at import time, so tests construct their own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PUSHPOOL_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".pushpool")
    database_url: str | None = None
    #: PostgreSQL connection pool, per process: connections kept open, extra ones
    #: opened under load, and how long a request waits for one. SQLite ignores them.
    database_pool_size: int = Field(default=5, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    database_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Serverless bootstrap: the Secrets Manager secret holding the admin API key.
    admin_api_key_secret_arn: str | None = None
    #: Store state in this DynamoDB table instead of SQLite.
    dynamodb_table: str | None = None
    #: At start, check the DynamoDB table and create it (with its TTL) if missing. The
    #: AWS stack owns its table and turns this off: no calls, and no IAM for them.
    dynamodb_create_table: bool = True
    #: Block secrets' encryption keys, comma-separated, the first encrypts (else the
    #: Secrets Manager secret below, else ``home/blocks.key``; see service.blocks.crypto).
    blocks_keys: SecretStr | None = None
    #: AWS: the Secrets Manager secret holding the blocks keys (the stack sets it).
    blocks_key_secret_arn: str | None = None
    host: str = "127.0.0.1"
    port: int = 4300
    #: The URL runners use to reach this service; defaults to http://host:port.
    public_api_url: str | None = None

    tick_interval_seconds: float = 5.0
    schedule_horizon_seconds: int = 3600
    schedule_min_runs: int = 3
    schedule_max_runs_per_tick: int = 100
    misfire_grace_seconds: int = 120
    submit_timeout_seconds: int = 30
    pending_timeout_seconds: int = 600
    heartbeat_seconds: int = 10
    heartbeat_timeout_seconds: int = 120
    cancel_grace_seconds: float = 10.0
    orphan_sweep_seconds: int = 600
    dispatch_batch_size: int = 100
    max_body_bytes: int = 1_048_576
    #: Requests a second each API key may make (a token bucket; 0 turns the limit off),
    #: and the burst it may make at once. Per process: on Lambda, per execution
    #: environment (the stack also throttles the API stage).
    rate_limit_per_second: float = Field(default=50.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    #: The same per run token, on the runner's endpoints: generous (a runner's heartbeats,
    #: log and task-run batches, cache and slot calls stay far below it); a flow flooding
    #: them gets 429 + Retry-After, which the runner honours.
    runner_rate_limit_per_second: float = Field(default=500.0, ge=0)
    runner_rate_limit_burst: int = Field(default=5000, ge=1)
    #: The same per webhook, on ``POST /api/hooks/{slug}`` (which needs no key).
    webhook_rate_limit_per_second: float = Field(default=10.0, ge=0)
    webhook_rate_limit_burst: int = Field(default=100, ge=1)
    max_log_lines_per_batch: int = 1000
    #: A run's log is capped: lines beyond either limit are dropped (one marker says so).
    log_max_lines_per_run: int = 100_000
    log_max_bytes_per_run: int = 50 * 1024 * 1024
    #: Log lines older than this are deleted (by the orphan sweep); 0 keeps them.
    log_retention_days: float = 30.0
    #: Events older than this expire (deleted by the orphan sweep, or DynamoDB's TTL);
    #: 0 keeps them.
    event_retention_days: float = Field(default=30.0, ge=0)
    #: One page of a log read holds at most this many message bytes.
    log_read_max_bytes: int = 1_048_576
    #: How long a runner keeps trying to deliver its reports and logs.
    delivery_window_seconds: float = 900.0
    #: A run whose infrastructure exited is judged only this long after it was seen gone,
    #: so a report in flight wins.
    report_grace_seconds: float = 10.0
    #: A gap this long between reconcile passes means the control plane was down: every
    #: running run then gets a full heartbeat window from the pass after it.
    outage_gap_seconds: float = 90.0

    #: Automations' notify actions POST only to URLs starting with one of these prefixes
    #: (JSON list, e.g. ``["https://hooks.slack.com/services/"]``); empty: none at all.
    automation_notify_allowlist: list[str] = Field(default_factory=list)
    #: Private, loopback or link-local networks (CIDRs) notify may reach all the same.
    automation_allowed_networks: list[str] = Field(default_factory=list)
    #: SMTP servers the ``email`` action may use (``host`` or ``host:port``); empty: none.
    automation_smtp_allowlist: list[str] = Field(default_factory=list)
    #: The timeout of each notify POST and of each SMTP step.
    automation_http_timeout_seconds: float = Field(default=10.0, gt=0)
    #: An action is tried this many times, waiting ``retry`` * 2^(try - 1) seconds
    #: between tries, then recorded as failed.
    automation_action_attempts: int = Field(default=3, ge=1, le=20)
    automation_retry_seconds: float = Field(default=30.0, gt=0)

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'pushpool.db'}"

    def resolved_public_api_url(self) -> str:
        return self.public_api_url or f"http://{self.host}:{self.port}"


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
