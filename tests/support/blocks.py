"""Shared for the blocks tests: the marker secret every test searches for, and valid
values of every built-in type (each with the marker in its secret fields)."""

from __future__ import annotations

from typing import Any

#: A secret value that must never appear anywhere but in the flow that declared it.
MARKER = "s3cr3t-MARKER-7f3a9c1e2b"

#: Valid values of each built-in type, secrets set to (something holding) the marker.
VALID: dict[str, dict[str, Any]] = {
    "secret": {"value": MARKER},
    "json": {"value": {"region": "eu-west-1", "retries": 3}},
    "slack-webhook": {"url": f"https://hooks.slack.com/services/{MARKER}"},
    "smtp": {"host": "smtp.example.com", "username": "ops", "password": MARKER},
    "s3-bucket": {
        "bucket_name": "my-bucket",
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": MARKER,
    },
    "gcs-bucket": {"bucket": "my-bucket", "service_account_info": f'{{"key": "{MARKER}"}}'},
    "azure-blob-container": {"container_name": "data", "connection_string": MARKER},
    "database-url": {"url": f"postgresql://app:{MARKER}@db.internal/app"},
}
#: One invalid value per type and the field the 422 must name.
INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "secret": ({}, "values"),
    "json": ({"value": 1, "extra": 2}, "values"),
    "slack-webhook": ({"url": 42}, "values.url"),
    "smtp": ({"host": "h", "port": 70000, "password": MARKER}, "values.port"),
    "s3-bucket": ({"bucket_name": "x", "aws_secret_access_key": MARKER}, "values.bucket_name"),
    "gcs-bucket": ({"bucket": "ok-bucket", "project": 5}, "values.project"),
    "azure-blob-container": ({"container_name": ["x"]}, "values.container_name"),
    "database-url": ({"url": None}, "values.url"),
}


def dispatched_with_secret(
    services: Any, pool_type: str, config: dict[str, Any], value: str
) -> Any:
    """Through the service: block ``secret/db-password`` holding ``value``, a pool of
    ``pool_type``, a deployment whose ``env`` references the block (``DB_PASSWORD``) next
    to ``MODE=x``, one run dispatched. The run, asserted PENDING with infrastructure."""
    from service.blocks.ops import BlockValues, put_block
    from service.deployments import DeploymentCreate, deploy
    from service.pools import WorkPoolCreate, create_pool
    from service.runs import RunCreate, create_run
    from service.states import StateType
    from support.factories import deployment_body

    put_block(services, "secret", "db-password", BlockValues(values={"value": value}))
    create_pool(services, WorkPoolCreate(name="secrets", type=pool_type, config=config))
    env = {"DB_PASSWORD": "{{ block:secret/db-password }}", "MODE": "x"}
    body = deployment_body(work_pool="secrets", job_variables={"env": env})
    deployment = deploy(services, DeploymentCreate.model_validate(body))[0]
    run, _ = create_run(services, deployment.id, RunCreate())
    after = services.store.get_run(run.id)
    assert after.state.type == StateType.PENDING and after.infra is not None, after.state
    return after


def with_secret(request: Any, value: str, source: str = "secret/db-password") -> Any:
    """``request`` (a ``SubmitRequest``) whose ``DB_PASSWORD`` is a block secret."""
    import dataclasses

    from provisioners.base import SecretValue

    return dataclasses.replace(request, secret_env={"DB_PASSWORD": SecretValue(source, value)})
