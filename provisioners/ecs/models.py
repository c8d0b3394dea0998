"""The ECS pool type's config and job variables."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from provisioners.base import JobVariables, PoolConfig, remote_results
from provisioners.ecs import sizes
from provisioners.errors import NotAllowed
from provisioners.infra import ProvisionedResource

#: Retention periods CloudWatch Logs accepts, in days.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557}
    | {2922, 3288, 3653}
)
#: Tag key prefixes reserved for pushpool and AWS.
RESERVED_TAG_PREFIXES = ("pushpool:", "aws:")
MAX_USER_TAGS = 40

ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"
RoleArn = Annotated[str, Field(pattern=ROLE_ARN_PATTERN)]
#: Job variables naming an IAM role the task gets (passed with ``iam:PassRole``).
ROLE_JOB_VARIABLES = ("execution_role_arn", "task_role_arn")
#: A container's ``stopTimeout`` on Fargate, in seconds.
STOP_TIMEOUT_RANGE = (2, 120)


class EcsPoolConfig(PoolConfig):
    region: str | None = Field(default=None, description="AWS region; default: boto3's")
    cluster: str | None = Field(default=None, description="ECS cluster name or ARN")
    subnets: list[str] = Field(default_factory=list, description="Subnets for the tasks")
    security_groups: list[str] = Field(default_factory=list)
    execution_role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)
    task_role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)
    log_group: str | None = Field(default=None, description="CloudWatch log group for runs")
    log_retention_days: int = Field(default=30, description="Retention of a provisioned group")
    result_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Days a provisioned result bucket keeps results"
    )
    ecr_repository_uri: str | None = None
    assign_public_ip: bool = Field(default=True, description="Needed in public subnets")
    image: str | None = Field(default=None, description="Default image for runs")
    provisioned: list[ProvisionedResource] = Field(
        default_factory=list, description="What provisioning created; deprovision removes it"
    )
    allowed_role_arns: list[RoleArn] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "Roles a deployment may name in its task_role_arn / execution_role_arn job"
            " variables, besides the pool's own; the control plane must be allowed to"
            " iam:PassRole them (the rendered policy includes them)"
        ),
    )

    def allowed_roles(self) -> list[str]:
        """The roles a run of this pool may be given: the pool's own, then the allowlist."""
        own = [r for r in (self.execution_role_arn, self.task_role_arn) if r]
        return own + [r for r in self.allowed_role_arns if r not in own]

    def check_job_variables(self, job_variables: JobVariables) -> None:
        allowed = set(self.allowed_roles())
        for name in ROLE_JOB_VARIABLES:
            arn = getattr(job_variables, name, None)
            if arn is not None and arn not in allowed:
                raise NotAllowed(
                    name,
                    f"role {arn} is not allowed on this pool: an admin adds it to the pool"
                    " config's allowed_role_arns",
                )

    @field_validator("result_storage")
    @classmethod
    def _remote_results(cls, url: str | None) -> str | None:
        return remote_results(url, "s3://bucket/prefix", "an ECS task's disk goes with the task")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in sorted(LOG_RETENTION_DAYS))
            raise ValueError(f"CloudWatch Logs accepts {allowed} days")
        return days


class EcsJobVariables(JobVariables):
    image: str | None = Field(default=None, min_length=1)
    cpu: int | None = Field(default=None, description="cpu units: 256, 512, 1024, ...")
    memory: int | None = Field(default=None, description="MiB; must suit cpu on Fargate")
    env: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = Field(default=None, min_length=1)
    task_role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)
    execution_role_arn: str | None = Field(default=None, pattern=ROLE_ARN_PATTERN)
    subnets: list[str] | None = Field(default=None, min_length=1)
    security_groups: list[str] | None = None
    assign_public_ip: bool | None = None
    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] = "FARGATE"
    ephemeral_storage_gib: int | None = Field(default=None, ge=21, le=200)
    stop_timeout_seconds: int | None = Field(
        default=None,
        description=(
            "Seconds between SIGTERM and SIGKILL when a run is cancelled or its task stopped"
            " (the container's stopTimeout, 2-120; ECS's default: 30). This, not the"
            " service's cancel_grace_seconds, is the grace a cancelled run gets on ECS: a"
            " running task's stop timeout is fixed by its task definition."
        ),
    )
    cloudwatch_logs: bool = True
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fargate_size(self) -> EcsJobVariables:
        self.cpu, self.memory = sizes.resolve(self.cpu, self.memory)
        return self

    @field_validator("stop_timeout_seconds")
    @classmethod
    def _stop_timeout(cls, seconds: int | None) -> int | None:
        low, high = STOP_TIMEOUT_RANGE
        if seconds is not None and not low <= seconds <= high:
            raise ValueError(f"stop_timeout_seconds {seconds}: Fargate accepts {low} to {high}")
        return seconds

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_USER_TAGS:
            raise ValueError(f"at most {MAX_USER_TAGS} tags")
        for key, value in tags.items():
            if key.lower().startswith(RESERVED_TAG_PREFIXES):
                raise ValueError(f"tag {key!r}: the prefixes pushpool: and aws: are reserved")
            if not 1 <= len(key) <= 128 or len(value) > 256:
                raise ValueError(f"tag {key!r}: keys are 1-128 characters, values up to 256")
        return tags

    @property
    def size(self) -> tuple[int, int]:
        """``(cpu, memory)``, always set once validated."""
        assert self.cpu is not None and self.memory is not None
        return self.cpu, self.memory
