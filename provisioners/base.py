"""The Provisioner interface and the registry of pool types.

A provisioner turns a flow run into something running on one platform, reports on it,
stops it, and cleans up after it. One class per pool type, each in its own module,
imported only when a pool of that type is used (see :data:`REGISTRY`), so the service
never pays for a cloud SDK it does not need.

Every implementation must pass ``tests/provisioners/test_conformance.py``.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from provisioners.errors import NotAllowed, ProvisionerError, UnknownPoolType

log = logging.getLogger("pushpool.provisioners")


class InfraRef(BaseModel):
    """What a provisioner started for one attempt of a run; opaque to the service."""

    model_config = ConfigDict(extra="forbid")

    type: str
    id: str
    data: dict[str, Any] = Field(default_factory=dict)


class PoolConfig(BaseModel):
    """Base for a pool type's config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    result_storage: str | None = Field(
        default=None,
        max_length=1024,
        description="Where flows' task and flow results are persisted: s3://bucket/prefix,"
        " gs://bucket/prefix, az://account/container/prefix, or an absolute directory the runs"
        " can reach (default: the runner's $PUSHPOOL_HOME/results)",
    )

    @field_validator("result_storage")
    @classmethod
    def _result_storage(cls, url: str | None) -> str | None:
        if url is not None:
            from pushpool.results import parse_result_storage

            parse_result_storage(url)  # UnsupportedResultStorage is a ValueError: a 422
        return url

    def check_job_variables(self, job_variables: JobVariables) -> None:
        """Raise :class:`~provisioners.errors.NotAllowed` for a job variable this pool's
        config does not allow (checked at deploy and again at submit)."""


def remote_results(url: str | None, form: str, disk: str) -> str | None:
    """``url`` if unset or of ``form``'s scheme (``s3://bucket/prefix``, ...): for a pool
    whose runs' ``disk`` goes with them, a local directory would lose every result."""
    if url is not None and not url.lower().startswith(form.split("://")[0] + "://"):
        raise ValueError(f"{disk}: results need {form} (--provision-infra makes one)")
    return url


class JobVariables(BaseModel):
    """Base for a pool type's job variables: per deployment, validated at deploy time."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SecretValue:
    """One resolved secret for a run's environment.

    ``source`` names where it comes from, stable across runs and values and safe to use in
    a platform resource name (``[A-Za-z0-9/_.-]``): ``TYPE/NAME`` or ``TYPE/NAME/FIELD``
    for a variable that is exactly one block reference, ``composite/<digest of the
    template>`` for one that mixes references and text. ``value`` is the clear text.
    """

    source: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class SubmitRequest:
    """Everything a provisioner needs to start one attempt of one run."""

    run_id: str
    attempt: int
    flow_name: str
    deployment_name: str
    #: The runner's environment: API URL, run id, run token. Secret: never log it.
    env: dict[str, str] = field(repr=False)
    job_variables: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    #: Environment variables whose values are secrets resolved by the control plane (block
    #: references in the deployment's ``env``), by variable name. A provisioner hands each
    #: to the platform through the platform's own secret mechanism (ECS: a Secrets Manager
    #: secret named after :attr:`SecretValue.source` and referenced from the container
    #: definition; Cloud Run: Secret Manager ``secretKeyRef``; ACI: ``secureValue``;
    #: process: the child's environment only), never in a task definition, job spec, tag,
    #: log line or error message in clear. A provisioner that cannot must refuse the run.
    secret_env: dict[str, SecretValue] = field(default_factory=dict, repr=False)

    def secret_texts(self) -> list[str]:
        """Every value an error message must mask: the runner's env and the secrets."""
        return [*self.env.values(), *(s.value for s in self.secret_env.values())]

    def secret_env_values(self) -> dict[str, str]:
        """``secret_env`` as plain ``name -> value`` (for platforms that take values)."""
        return {k: s.value for k, s in self.secret_env.items()}

    @property
    def idempotency_key(self) -> str:
        """Stable for one attempt of one run: two submits with it start one thing."""
        return f"{self.run_id}-{self.attempt}"


class InfraState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    #: The platform knows nothing of it (gone, or never started).
    MISSING = "MISSING"


@dataclass(frozen=True)
class InfraStatus:
    state: InfraState
    exit_code: int | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in (InfraState.EXITED, InfraState.MISSING)


@dataclass(frozen=True)
class PlanStep:
    """One resource of a pool's infrastructure: what it is and whether it exists yet."""

    resource: str
    name: str
    exists: bool
    detail: str = ""


@dataclass
class ProvisionPlan:
    steps: list[PlanStep] = field(default_factory=list)

    @property
    def to_create(self) -> list[PlanStep]:
        return [s for s in self.steps if not s.exists]

    @property
    def empty(self) -> bool:
        return not self.to_create


Progress = Callable[[PlanStep], None]
#: A deploy-time problem: (dotted field of the deployment body, message).
Problem = tuple[str, str]
# Aliases: inside Provisioner, ``type`` names the pool type attribute.
_ConfigModel = type[PoolConfig]
_JobVariablesModel = type[JobVariables]


class SharedState(Protocol):
    """What a provisioner may keep in the control plane's store, shared by every process
    and replica (the Store's meta values; ``service`` passes its store)."""

    def get_meta(self, key: str) -> str | None: ...

    def compare_and_set_meta(self, key: str, expected: str | None, value: str) -> bool: ...


class Provisioner(ABC):
    """Runs flow runs on one platform.

    Contract:
    - ``submit`` is idempotent on ``request.idempotency_key``: a second call for the
      same attempt returns a reference to what the first started and starts nothing.
      It raises :class:`~service.errors.ProvisionerError` (``transient=True`` when a
      later retry may succeed).
    - ``find`` returns the infrastructure already started for an attempt, or ``None``:
      the dispatcher uses it to adopt what a crashed dispatcher started.
    - ``status`` never raises for infrastructure that is gone: it says ``MISSING``.
    - ``status_many`` gives ``status`` of many refs (keyed by ``ref.id``) in as few
      platform calls as the platform allows; a ref it could not read is left out, for
      the caller to ask again later. Override it where the platform batches.
    - ``cancel`` asks the infrastructure to stop (gracefully first); idempotent.
    - ``teardown`` removes everything ``submit`` created for the attempt; idempotent,
      safe on something already gone or never started.
    - ``list_orphans`` lists infrastructure this pool started whose run id is not in
      ``live_run_ids`` — to be torn down by the reconciler.
    - ``plan``/``provision``/``deprovision`` manage the pool-level infrastructure; the
      process type has none.
    - ``prune`` removes shared resources no deployment of the pool needs any more.
    - ``log_tail`` gives the platform's own capture of an attempt's output, if any.
    """

    type: ClassVar[str]
    config_model: ClassVar[_ConfigModel] = PoolConfig
    job_variables_model: ClassVar[_JobVariablesModel] = JobVariables
    #: Code source types (``local``, ``git``, ``image``) this pool type can run.
    source_types: ClassVar[frozenset[str]] = frozenset({"local", "git", "image"})

    #: State shared with the other processes of the control plane (``None``: this process
    #: only); set by :meth:`use_shared_state` before the first use.
    shared: SharedState | None = None

    def __init__(self, pool_name: str, config: dict[str, Any]) -> None:
        self.pool_name = pool_name
        self.config = self.config_model.model_validate(config)

    def use_shared_state(self, shared: SharedState) -> None:
        """Keep cross-process state (rate windows, say) in ``shared``."""
        self.shared = shared

    @abstractmethod
    def submit(self, request: SubmitRequest) -> InfraRef: ...

    @abstractmethod
    def find(self, request: SubmitRequest) -> InfraRef | None: ...

    @abstractmethod
    def status(self, ref: InfraRef) -> InfraStatus: ...

    def status_many(self, refs: Sequence[InfraRef]) -> dict[str, InfraStatus]:
        statuses: dict[str, InfraStatus] = {}
        for ref in refs:
            try:
                statuses[ref.id] = self.status(ref)
            except ProvisionerError as exc:
                log.warning("status of %s: %s", ref.id, exc)
        return statuses

    @abstractmethod
    def cancel(self, ref: InfraRef, grace_seconds: float) -> None: ...

    @abstractmethod
    def teardown(self, ref: InfraRef) -> None: ...

    @abstractmethod
    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]: ...

    def plan(self) -> ProvisionPlan:
        return ProvisionPlan()

    def provision(self, plan: ProvisionPlan, progress: Progress | None = None) -> dict[str, Any]:
        """Create what ``plan`` lists as missing; return config values to record."""
        return {}

    def deprovision(self, progress: Progress | None = None) -> None:
        """Remove exactly what ``provision`` created; tolerate what is already gone."""
        return None

    def prune(self, job_variables: list[dict[str, Any]]) -> int:
        """Remove shared per-pool resources (ECS task definitions, say) that none of the
        given deployments' job variables need any more. Returns how many were removed."""
        return 0

    def prune_secrets(self, keep: set[str]) -> int:
        """Delete the pool's platform secrets (what :attr:`SubmitRequest.secret_env` was
        written to) whose ``SecretValue.source`` is not in ``keep``; how many went.
        Idempotent; one that fails to go is left for the next call. The caller never calls
        it while a run of the pool is submitted but not started (its secrets are read at
        start)."""
        return 0

    def setup_notes(self) -> dict[str, str]:
        """What the user should know or do once the pool is provisioned (title -> text)."""
        return {}

    def infra_links(self, ref: InfraRef) -> dict[str, str]:
        """Human-facing pointers for a run's detail (console links, log streams)."""
        return {}

    def log_tail(self, ref: InfraRef, max_lines: int = 200) -> list[str]:
        """The last lines the platform itself captured of the attempt's output (a process's
        ``output.log``, CloudWatch, Cloud Logging, ACI container logs), oldest first.

        The reconciler appends them, marked as the platform's, to a run that ended
        ``CRASHED`` or ``FAILED`` without all its logs ("last words"). Called before
        ``teardown``. Returns ``[]`` where the platform keeps nothing or the attempt is
        gone; raises :class:`ProvisionerError` only for a transient failure to read.
        """
        return []

    def deployment_problems(
        self, source: Mapping[str, Any], job_variables: JobVariables
    ) -> list[Problem]:
        """The one deploy-time check of a deployment against this pool: everything that
        this pool's config (set by an admin) does not allow, or that would make the
        deployment fail only when it runs, as ``(field, message)`` pairs; ``[]`` when it
        may be deployed.

        Contract:
        - called on every create and update of a deployment, with its ``source`` (the
          model's dump: ``type`` plus that type's fields) and its job variables already
          validated against :attr:`job_variables_model`; the API answers 422 naming the
          first pair's ``field``, a dotted path in the deployment body (``source.path``,
          ``job_variables.command``, ``work_pool``);
        - reads only the pool's config and its arguments: no platform calls, no raising
          for bad input (a problem is returned, never raised);
        - the base checks the source type against :attr:`source_types` and the job
          variables against the config's :meth:`PoolConfig.check_job_variables` (which
          ``submit`` checks again, since an admin may change the config after deploy);
          overrides add the type's own checks to ``super()``'s list.
        """
        problems: list[Problem] = []
        kind = str(source.get("type"))
        if kind not in self.source_types:
            kinds = ", ".join(sorted(self.source_types))
            message = f"a {self.type} pool cannot run code from a {kind!r} source"
            problems.append(("source.type", f"{message} (it takes: {kinds})"))
        try:
            self.config.check_job_variables(job_variables)
        except NotAllowed as exc:
            problems.append((f"job_variables.{exc.field}", exc.message))
        return problems


#: pool type -> "module:Class"; the module is imported on first use of the type.
REGISTRY: dict[str, str] = {
    "process": "provisioners.process:ProcessProvisioner",
    "ecs": "provisioners.ecs:EcsProvisioner",
    "cloud-run": "provisioners.cloud_run:CloudRunProvisioner",
    "aci": "provisioners.aci:AciProvisioner",
}


def pool_types() -> list[str]:
    return sorted(REGISTRY)


def provisioner_class(pool_type: str) -> type[Provisioner]:
    try:
        target = REGISTRY[pool_type]
    except KeyError:
        raise UnknownPoolType(pool_type, pool_types()) from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    assert issubclass(cls, Provisioner)
    return cls


def get_provisioner(pool_type: str, pool_name: str, config: dict[str, Any]) -> Provisioner:
    return provisioner_class(pool_type)(pool_name, config)
