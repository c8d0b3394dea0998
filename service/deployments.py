"""Deployment operations: validation, upsert with schedules, removal."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from provisioners.base import JobVariables
from service import events
from service.blocks.models import BlockRef, split_ref
from service.blocks.refs import check_references
from service.errors import BlockNotFound, InvalidInput
from service.models import (
    MAX_CONCURRENCY_LIMIT,
    BoundedDict,
    CatchupPolicy,
    Deployment,
    GitSource,
    LocalSource,
    Name,
    Patch,
    Source,
    Strict,
    check_entrypoint,
)
from service.schedules import Schedule
from service.services import Services
from service.validation import check_json_schema, check_model, check_parameters

Tag = str
MAX_TIMEOUT_SECONDS = 7 * 86400
#: Blocks one deployment may list, declared and referenced together (each is a write in
#: the deploy's transaction on DynamoDB, which takes at most 100).
MAX_BLOCKS = 50


class DeploymentFields(Strict):
    """Everything about a deployment a user may set, except its identity."""

    entrypoint: str = Field(examples=["flows/etl.py:main"])
    work_pool: Name
    source: Source
    parameters: BoundedDict = Field(default_factory=dict)
    parameter_schema: BoundedDict | None = None
    job_variables: BoundedDict = Field(default_factory=dict)
    schedules: list[Schedule] = Field(default_factory=list, max_length=20)
    catchup: CatchupPolicy = CatchupPolicy.LATEST
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    retries: int = Field(default=0, ge=0, le=100)
    retry_delay_seconds: int = Field(default=0, ge=0, le=7 * 86400)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        description="Stop a run still running after this many seconds: FAILED (TimedOut)",
    )
    blocks: list[BlockRef] = Field(
        default_factory=list,
        max_length=MAX_BLOCKS,
        description="Blocks (type/name) its flow code may load; those its job variables "
        "reference ({{ block:type/name }}) are added",
    )

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, v: str) -> str:
        return check_entrypoint(v)


class DeploymentCreate(DeploymentFields):
    name: Name
    flow_name: Name


class DeploymentUpdate(Patch):
    """PATCH: only the fields given change."""

    nullable = frozenset({"parameter_schema", "concurrency_limit", "timeout_seconds"})

    entrypoint: str | None = None
    work_pool: Name | None = None
    source: Source | None = None
    parameters: BoundedDict | None = None
    parameter_schema: BoundedDict | None = None
    job_variables: BoundedDict | None = None
    schedules: list[Schedule] | None = Field(default=None, max_length=20)
    catchup: CatchupPolicy | None = None
    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY_LIMIT)
    retries: int | None = Field(default=None, ge=0, le=100)
    retry_delay_seconds: int | None = Field(default=None, ge=0, le=7 * 86400)
    tags: list[Tag] | None = Field(default=None, max_length=50)
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_TIMEOUT_SECONDS)
    blocks: list[BlockRef] | None = Field(default=None, max_length=MAX_BLOCKS)

    @field_validator("entrypoint")
    @classmethod
    def _entrypoint(cls, v: str | None) -> str | None:
        return None if v is None else check_entrypoint(v)


def _blocks(svc: Services, body: DeploymentFields, pool_type: str) -> list[str]:
    """The declared blocks plus those the job variables reference, each one existing."""
    referenced = check_references(body.job_variables, pool_type)
    wanted = sorted(set(body.blocks) | set(referenced))
    if len(wanted) > MAX_BLOCKS:
        raise InvalidInput(
            "blocks", f"{len(wanted)} blocks declared and referenced: at most {MAX_BLOCKS}"
        )
    for ref in wanted:
        try:
            svc.store.get_block(*split_ref(ref))
        except BlockNotFound:
            where = f"blocks[{body.blocks.index(ref)}]" if ref in body.blocks else "job_variables"
            raise InvalidInput(where, f"block {ref!r} does not exist") from None
    return wanted


def _validate(svc: Services, body: DeploymentFields) -> dict[str, Any]:
    """Check what a model cannot; return the normalised job variables (``body.blocks``
    gains the blocks the job variables reference)."""
    pool = svc.store.get_pool(body.work_pool)
    if body.parameter_schema is not None:
        check_json_schema(body.parameter_schema)
    check_parameters(body.parameter_schema, body.parameters, partial=True)
    provisioner = svc.dispatcher.provisioners.for_pool(pool)
    job_variables = check_model(
        provisioner.job_variables_model, body.job_variables, "job_variables"
    )
    assert isinstance(job_variables, JobVariables)
    body.blocks = _blocks(svc, body, pool.type)
    problems = provisioner.deployment_problems(body.source.model_dump(), job_variables)
    if problems:
        raise InvalidInput(*problems[0])
    _check_git_ref(pool.type, body.source)
    _check_local_entrypoint(pool.type, body.source, body.entrypoint)
    return body.job_variables


#: Pool types whose runs clone their git source on the server machine itself.
_CLONES_ON_SERVER = frozenset({"process"})
#: How long a deploy request waits for ``git ls-remote`` (the CLI waits longer).
API_GIT_TIMEOUT_SECONDS = 10.0


def _check_local_entrypoint(pool_type: str, source: Source, entrypoint: str | None) -> None:
    """For a pool that runs ``local`` sources on this machine (process): the entrypoint's
    file, symlinks followed, lies inside its source directory, or ``InvalidInput`` naming
    ``entrypoint`` (the CLI checks the same on the deploying machine; a run could not find
    the file). A file that does not exist (yet) is left to the runner."""
    if pool_type not in _CLONES_ON_SERVER or not isinstance(source, LocalSource) or not entrypoint:
        return
    root = Path(source.path)
    relative = entrypoint.rpartition(":")[0]
    if not (root / relative).resolve().is_relative_to(root.resolve()):
        raise InvalidInput(
            "entrypoint",
            f"{relative} resolves outside the source directory {root} (a symlink that "
            "escapes it): a run would not find it",
        )


def _check_git_ref(pool_type: str, source: Source) -> None:
    """A git ref that does not resolve, for a pool that clones on this machine (see
    :mod:`service.git_refs`): ``InvalidInput`` naming ``source.ref``. Not checked for other
    pools (their runner clones elsewhere) nor where git is not installed (Lambda)."""
    if pool_type not in _CLONES_ON_SERVER or not isinstance(source, GitSource):
        return
    from service.git_refs import GitUnavailable, git_ref_problem

    try:
        problem = git_ref_problem(source.url, source.ref, API_GIT_TIMEOUT_SECONDS)
    except GitUnavailable:
        return
    if problem is not None:
        raise InvalidInput("source.ref" if source.ref else "source.url", problem)


def deploy(svc: Services, body: DeploymentCreate) -> tuple[Deployment, bool]:
    """Create or update the deployment named ``(flow_name, name)``."""
    job_variables = _validate(svc, body)
    now = svc.clock()
    deployment = Deployment(
        id=str(uuid.uuid4()),
        created_at=now,
        updated_at=now,
        **body.model_dump(exclude={"job_variables", "schedules", "source"}),
        source=body.source,
        schedules=body.schedules,
        job_variables=job_variables,
    )
    return _store(svc, deployment)


def _store(svc: Services, deployment: Deployment) -> tuple[Deployment, bool]:
    existing = None
    with contextlib.suppress(LookupError):
        existing = svc.store.find_deployment(deployment.flow_name, deployment.name)
    if existing is not None:
        deployment = deployment.model_copy(update={"id": existing.id})
    from service.scheduler import schedule_records  # imported on first deploy

    records = schedule_records(deployment, svc.clock())
    try:
        stored, created = svc.store.upsert_deployment(deployment, records)
    except BlockNotFound as exc:  # deleted since it was checked: the store refused
        raise InvalidInput("blocks", f"block {exc.ident!r} does not exist") from None
    if existing is not None and existing.paused != deployment.paused:
        # Paused: its future runs go. Resumed: it starts afresh from now, nothing "missed".
        svc.store.reset_schedules(stored.id, {r.id: r.next_fire_at for r in records if r.active})
    before = None if existing is None else existing.paused
    _record(svc, stored, before, stored.paused)
    return stored, created


def delete(svc: Services, deployment_id: str) -> None:
    """Delete the deployment (see ``Store.delete_deployment``) and record it."""
    deployment = svc.store.get_deployment(deployment_id)
    svc.store.delete_deployment(deployment_id)
    _record(svc, deployment, deployment.paused, None)


def _record(svc: Services, deployment: Deployment, before: bool | None, after: bool | None) -> None:
    resource = events.deployment_resource(deployment)
    now = svc.clock()
    events.record_change(
        svc.store, events.DEPLOYMENT, resource, now=now, before_paused=before, after_paused=after
    )


def update(svc: Services, deployment_id: str, body: DeploymentUpdate) -> Deployment:
    current = svc.store.get_deployment(deployment_id)
    changes = body.model_dump(exclude_unset=True)
    merged = DeploymentCreate.model_validate(
        {**current.model_dump(mode="json", exclude={"id", "created_at", "updated_at"}), **changes}
    )
    job_variables = _validate(svc, merged)
    deployment = current.model_copy(
        update={
            **merged.model_dump(exclude={"job_variables", "schedules", "source"}),
            "source": merged.source,
            "schedules": merged.schedules,
            "job_variables": job_variables,
            "updated_at": svc.clock(),
        }
    )
    stored, _ = _store(svc, deployment)
    return stored
