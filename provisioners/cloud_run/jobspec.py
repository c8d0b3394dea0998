"""From pool config, job variables and a submit request to a Cloud Run ``Job``.

One job per attempt, named from (run id, attempt), created with a start execution token
so that the one create call also starts its one execution. The runner's environment
travels in the job's container (deleted with the job at teardown; the bootstrap credential
in it is single-use); block secrets only as Secret Manager references (``secretKeyRef``).
Job and execution carry the pool, run and attempt labels.
"""

from __future__ import annotations

from typing import Any

from provisioners import validation
from provisioners.base import SubmitRequest
from provisioners.cloud_run.models import CloudRunJobVariables, CloudRunPoolConfig
from provisioners.cloud_run.names import EXECUTION_TOKEN, RUN_ANNOTATION, run_labels
from provisioners.errors import ProvisionerError

CONTAINER = "flow"


def job_variables(raw: dict[str, Any]) -> CloudRunJobVariables:
    """Validated job variables; errors name the field, never echo the values."""
    return validation.job_variables(CloudRunJobVariables, raw)


def _vpc_access(job: CloudRunJobVariables) -> dict[str, Any] | None:
    if job.vpc_connector:
        return {"connector": job.vpc_connector, "egress": "PRIVATE_RANGES_ONLY"}
    if job.network:
        interface = {"network": job.network}
        if job.subnetwork:
            interface["subnetwork"] = job.subnetwork
        return {"network_interfaces": [interface], "egress": "PRIVATE_RANGES_ONLY"}
    return None


def secret_ref(version: str) -> dict[str, Any]:
    """``projects/P/secrets/S/versions/N`` as an env var's ``value_source``."""
    secret, _, number = version.partition("/versions/")
    return {"secret_key_ref": {"secret": secret, "version": number}}


def container(
    config: CloudRunPoolConfig,
    job: CloudRunJobVariables,
    env: dict[str, str],
    secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    image = job.image or config.image
    if not image:
        raise ProvisionerError("no image: set job_variables.image or the pool's config.image")
    cpu, memory = job.size
    spec: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        # The runner's own variables win over a deployment's.
        "env": [{"name": k, "value": v} for k, v in {**job.env, **env}.items()]
        + [
            {"name": k, "value_source": secret_ref(version)}
            for k, version in (secrets or {}).items()
            if k not in env
        ],
        "resources": {"limits": {"cpu": cpu, "memory": memory}},
    }
    if job.command:
        spec["command"] = list(job.command)
    if job.args:
        spec["args"] = list(job.args)
    return spec


def job_body(
    config: CloudRunPoolConfig,
    pool: str,
    job: CloudRunJobVariables,
    request: SubmitRequest,
    secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ``Job`` (proto field names) that runs ``request``'s attempt; ``secrets`` maps
    variables to the Secret Manager versions holding their values (``secretKeyRef``)."""
    labels = {**job.labels, **run_labels(pool, request.run_id, request.attempt)}
    task: dict[str, Any] = {
        "containers": [container(config, job, request.env, secrets)],
        "timeout": {"seconds": job.timeout_seconds},
        "max_retries": job.max_retries,
    }
    account = job.service_account or config.service_account
    if account:
        task["service_account"] = account
    vpc = _vpc_access(job)
    if vpc is not None:
        task["vpc_access"] = vpc
    return {
        "labels": labels,
        "annotations": {RUN_ANNOTATION: request.run_id},
        "start_execution_token": EXECUTION_TOKEN,
        "template": {"labels": labels, "task_count": 1, "parallelism": 1, "template": task},
    }
