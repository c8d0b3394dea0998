"""The ACI pool type's config and job variables (pydantic, unknown keys are errors)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from provisioners.base import JobVariables, PoolConfig, remote_results
from provisioners.infra import ProvisionedResource

SUBSCRIPTION_PATTERN = r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"
#: ARM's rule for resource group names (no trailing period).
RESOURCE_GROUP_PATTERN = r"^[-\w._()]{0,89}[-\w_()]$"
LOCATION_PATTERN = r"^[a-z0-9]+$"
IDENTITY_PATTERN = (
    r"^/subscriptions/[^/]+/resource[gG]roups/[^/]+/providers/"
    r"Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$"
)
SUBNET_PATTERN = (
    r"^/subscriptions/[^/]+/resource[gG]roups/[^/]+/providers/"
    r"Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$"
)
#: Tag name prefix reserved for pushpool's own tags; characters ARM refuses in tag names.
RESERVED_TAG_PREFIX = "pushpool-"
_BAD_TAG_CHARS = set("<>%&\\?/")
MAX_TAGS = 50
GpuSku = Literal["K80", "P100", "V100"]


class QuotaLimits(BaseModel):
    """ACI's documented quotas per subscription and region; lower them to share a region.

    Creates and deletes each: 300 per hour and 100 per 5 minutes; 100 container groups
    and 100 cores (standard SKU) per region by default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    creates_per_hour: int = Field(default=300, ge=1)
    creates_per_5_minutes: int = Field(default=100, ge=1)
    deletes_per_hour: int = Field(default=300, ge=1)
    deletes_per_5_minutes: int = Field(default=100, ge=1)
    max_groups: int = Field(default=100, ge=1)
    max_cores: float = Field(default=100, gt=0)


class AciPoolConfig(PoolConfig):
    subscription_id: str = Field(pattern=SUBSCRIPTION_PATTERN)
    resource_group: str = Field(pattern=RESOURCE_GROUP_PATTERN)
    location: str = Field(pattern=LOCATION_PATTERN, description="Azure region, e.g. westeurope")
    image: str | None = Field(default=None, min_length=1, description="Default image for runs")
    identity_id: str | None = Field(
        default=None, pattern=IDENTITY_PATTERN, description="User-assigned identity for runs"
    )
    identity_client_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F-]{36}$",
        description="Client id of identity_id: runs get it as AZURE_CLIENT_ID, so"
        " DefaultAzureCredential (the az:// result store) picks that identity",
    )
    registry_server: str | None = Field(default=None, description="ACR login server")
    subnet_ids: list[str] = Field(default_factory=list)
    control_plane_principal_id: str | None = Field(
        default=None, description="Object id of the control plane's identity, to grant it a role"
    )
    max_cpu: float = Field(default=4, gt=0, description="ACI's per-group CPU limit here")
    max_memory_gb: float = Field(default=16, gt=0, description="ACI's per-group memory limit")
    quota: QuotaLimits = Field(default_factory=QuotaLimits)
    result_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Days a provisioned result container keeps results"
    )
    provisioned: list[ProvisionedResource] = Field(
        default_factory=list, description="What provisioning created; deprovision removes it"
    )

    @field_validator("result_storage")
    @classmethod
    def _remote_results(cls, url: str | None) -> str | None:
        return remote_results(
            url, "az://account/container/prefix", "a container group's disk goes with the group"
        )

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, ids: list[str]) -> list[str]:
        return [_subnet(i) for i in ids]


def _subnet(subnet_id: str) -> str:
    if not re.fullmatch(SUBNET_PATTERN, subnet_id):
        raise ValueError(f"{subnet_id!r} is not a subnet resource id")
    return subnet_id


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=1, le=4)
    sku: GpuSku


class AciJobVariables(JobVariables):
    image: str | None = Field(default=None, min_length=1)
    cpu: float = Field(default=1.0, gt=0, description="vCPUs (0.1 steps)")
    memory_gb: float = Field(default=1.5, gt=0, description="GB (0.1 steps)")
    gpu: Gpu | None = None
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = Field(default=None, min_length=1)
    identity: str | None = Field(default=None, pattern=IDENTITY_PATTERN)
    subnet_ids: list[str] | None = None
    dns_servers: list[str] | None = Field(default=None, min_length=1, max_length=3)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("cpu", "memory_gb")
    @classmethod
    def _tenths(cls, value: float) -> float:
        if abs(value * 10 - round(value * 10)) > 1e-9:
            raise ValueError(f"{value}: ACI takes steps of 0.1")
        return round(value, 1)

    @field_validator("subnet_ids")
    @classmethod
    def _subnets(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else [_subnet(i) for i in ids]

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_TAGS - 3:
            raise ValueError(f"at most {MAX_TAGS - 3} tags (pushpool adds 3 of ARM's {MAX_TAGS})")
        for key, value in tags.items():
            if key.lower().startswith(RESERVED_TAG_PREFIX):
                raise ValueError(f"tag {key!r}: the prefix {RESERVED_TAG_PREFIX} is reserved")
            if not 1 <= len(key) <= 512 or len(value) > 256 or _BAD_TAG_CHARS & set(key):
                raise ValueError(
                    f"tag {key!r}: names are 1-512 characters without <>%&\\?/, values up to 256"
                )
        return tags

    @model_validator(mode="after")
    def _gpu_memory(self) -> AciJobVariables:
        if self.gpu is not None and self.cpu < 1:
            raise ValueError("a GPU group needs at least 1 cpu")
        return self

    def check_limits(self, config: AciPoolConfig) -> None:
        """Raise ``ValueError`` naming the field if the size exceeds the region's limits."""
        if self.cpu > config.max_cpu:
            raise ValueError(f"cpu {self.cpu}: ACI allows at most {config.max_cpu} here")
        if self.memory_gb > config.max_memory_gb:
            raise ValueError(
                f"memory_gb {self.memory_gb}: ACI allows at most {config.max_memory_gb} here"
            )
