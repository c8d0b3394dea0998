"""The container group one attempt runs in, as the SDK's ``ContainerGroup`` model.

One Linux group per attempt, ``restartPolicy: Never``, one container (``flow``). The
runner's environment (``SubmitRequest.env``: API URL, run id, credentials) and the
resolved block secrets (``SubmitRequest.secret_env``) travel only as ``secureValue``
(ARM never returns those); the deployment's own ``env`` as ``value``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provisioners.aci.models import AciJobVariables, AciPoolConfig
from provisioners.aci.names import ATTEMPT_TAG, CONTAINER, POOL_TAG, RUN_TAG
from provisioners.base import SubmitRequest
from provisioners.errors import ProvisionerError


@dataclass(frozen=True)
class GroupSpec:
    """What to create: the group's name, its cores (for the quota), its SDK body."""

    name: str
    cores: float
    body: Any


def job_variables(config: AciPoolConfig, raw: dict[str, Any]) -> AciJobVariables:
    """Validated job variables, sized within the pool's limits (``ProvisionerError`` if not)."""
    from pydantic import ValidationError

    try:
        job = AciJobVariables.model_validate(raw)
        job.check_limits(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "job_variables"
        raise ProvisionerError(f"job variable {where}: {first['msg']}") from None
    except ValueError as exc:
        raise ProvisionerError(f"job variable {exc}") from None
    if not (job.image or config.image):
        raise ProvisionerError("no image: set the job variable image or the pool's image")
    return job


def tags(pool: str, request: SubmitRequest, job: AciJobVariables) -> dict[str, str]:
    return {
        **job.tags,
        POOL_TAG: pool,
        RUN_TAG: request.run_id,
        ATTEMPT_TAG: str(request.attempt),
    }


#: Which user-assigned identity ``DefaultAzureCredential`` uses inside the container.
CLIENT_ID_ENV = "AZURE_CLIENT_ID"


def _environment(
    request: SubmitRequest, job: AciJobVariables, identity_client_id: str | None = None
) -> list[Any]:
    """The job's env (plain), the run's (secure), and the pool identity's client id."""
    from azure.mgmt.containerinstance.models import EnvironmentVariable

    secure = {**request.secret_env_values(), **request.env}
    plain = {k: v for k, v in job.env.items() if k not in secure}
    if identity_client_id and CLIENT_ID_ENV not in plain and CLIENT_ID_ENV not in secure:
        plain[CLIENT_ID_ENV] = identity_client_id
    return [EnvironmentVariable(name=k, value=v) for k, v in plain.items()] + [
        EnvironmentVariable(name=k, secure_value=v) for k, v in secure.items()
    ]


def _identity(identity_id: str | None) -> Any:
    from azure.mgmt.containerinstance.models import ContainerGroupIdentity, UserAssignedIdentities

    if identity_id is None:
        return None
    return ContainerGroupIdentity(
        type="UserAssigned", user_assigned_identities={identity_id: UserAssignedIdentities()}
    )


def _registry_credentials(
    config: AciPoolConfig, image: str, identity_id: str | None
) -> list[Any] | None:
    from azure.mgmt.containerinstance.models import ImageRegistryCredential

    server = config.registry_server
    if not server or identity_id is None or not image.startswith(f"{server}/"):
        return None
    return [ImageRegistryCredential(server=server, identity=identity_id)]


def group_spec(
    config: AciPoolConfig, pool: str, name: str, request: SubmitRequest, job: AciJobVariables
) -> GroupSpec:
    from azure.mgmt.containerinstance import models as m

    image = job.image or config.image
    assert image is not None  # job_variables() checked
    identity_id = job.identity or config.identity_id
    own_client_id = config.identity_client_id if identity_id == config.identity_id else None
    gpu = m.GpuResource(count=job.gpu.count, sku=job.gpu.sku) if job.gpu else None
    container = m.Container(
        name=CONTAINER,
        image=image,
        command=job.command,
        environment_variables=_environment(request, job, own_client_id),
        resources=m.ResourceRequirements(
            requests=m.ResourceRequests(memory_in_gb=job.memory_gb, cpu=job.cpu, gpu=gpu)
        ),
    )
    subnets = job.subnet_ids if job.subnet_ids is not None else config.subnet_ids
    body = m.ContainerGroup(
        location=config.location,
        tags=tags(pool, request, job),
        identity=_identity(identity_id),
        containers=[container],
        image_registry_credentials=_registry_credentials(config, image, identity_id),
        restart_policy="Never",
        os_type="Linux",
        subnet_ids=[m.ContainerGroupSubnetId(id=s) for s in subnets] or None,
        dns_config=m.DnsConfiguration(name_servers=job.dns_servers) if job.dns_servers else None,
    )
    return GroupSpec(name=name, cores=job.cpu, body=body)
