"""The ``cloud-run`` pool type's config and job variables."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from provisioners.base import JobVariables, PoolConfig, remote_results
from provisioners.cloud_run import sizes
from provisioners.cloud_run.names import check_label
from provisioners.infra import ProvisionedResource

#: Cloud Run's longest job task timeout: 168 hours.
MAX_TIMEOUT_SECONDS = 168 * 3600
MAX_RETRIES = 10
MAX_USER_LABELS = 32
#: A project id (optionally domain-scoped, ``example.com:my-project``).
_PROJECT = r"^([a-z][a-z0-9.-]*:)?[a-z]([a-z0-9-]{0,28}[a-z0-9])?$"
_REGION = r"^[a-z]+-[a-z]+[0-9]+$"
_SERVICE_ACCOUNT = r"^[a-z0-9-]+@[a-z0-9.-]+\.iam\.gserviceaccount\.com$"
_CONNECTOR = r"^projects/[^/]+/locations/[^/]+/connectors/[a-z][a-z0-9-]*$"


class CloudRunPoolConfig(PoolConfig):
    project: str = Field(pattern=_PROJECT, description="Google Cloud project id")
    region: str = Field(pattern=_REGION, description="Cloud Run region, e.g. us-central1")
    service_account: str | None = Field(
        default=None, pattern=_SERVICE_ACCOUNT, description="Runtime identity of the jobs"
    )
    repository: str | None = Field(default=None, description="Artifact Registry repository")
    image: str | None = Field(default=None, min_length=1, description="Default image")
    control_plane_member: str | None = Field(
        default=None, description="IAM member of the control plane (provisioning grants it)"
    )
    api_writes_per_second: float = Field(
        default=1.0, gt=0, description="Client-side pace of Cloud Run Admin API writes"
    )
    api_write_burst: int = Field(default=20, ge=1)
    result_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Days a provisioned result bucket keeps results"
    )
    provisioned: list[ProvisionedResource] = Field(
        default_factory=list, description="What provisioning created; deprovision removes it"
    )

    @field_validator("result_storage")
    @classmethod
    def _remote_results(cls, url: str | None) -> str | None:
        return remote_results(url, "gs://bucket/prefix", "a Cloud Run job's disk goes with the job")


class CloudRunJobVariables(JobVariables):
    image: str | None = Field(default=None, min_length=1)
    cpu: int | float | str | None = Field(default=None, description="vCPU: 1, 2, 4, 6 or 8")
    memory: int | str | None = Field(default=None, description="MiB, or 512Mi, 2Gi, ...")
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = Field(default=None, min_length=1)
    args: list[str] | None = None
    timeout_seconds: int = Field(default=3600, ge=1, le=MAX_TIMEOUT_SECONDS)
    service_account: str | None = Field(default=None, pattern=_SERVICE_ACCOUNT)
    vpc_connector: str | None = Field(default=None, pattern=_CONNECTOR)
    network: str | None = Field(default=None, min_length=1)
    subnetwork: str | None = Field(default=None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    max_retries: int = Field(default=0, ge=0, le=MAX_RETRIES)

    @model_validator(mode="after")
    def _checked(self) -> CloudRunJobVariables:
        self.cpu, self.memory = sizes.resolve(self.cpu, self.memory)
        if self.vpc_connector and (self.network or self.subnetwork):
            raise ValueError("give vpc_connector or network/subnetwork (direct egress), not both")
        if self.subnetwork and not self.network:
            raise ValueError("subnetwork needs network (direct VPC egress)")
        return self

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"env {name!r}: not a variable name")
        return env

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > MAX_USER_LABELS:
            raise ValueError(f"at most {MAX_USER_LABELS} labels")
        for key, value in labels.items():
            check_label(key, value)
        return labels

    @property
    def size(self) -> tuple[str, str]:
        """``(cpu, memory)`` as Cloud Run resource limits, always set once validated."""
        assert isinstance(self.cpu, str) and isinstance(self.memory, str)
        return self.cpu, self.memory
