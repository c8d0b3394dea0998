"""Store conformance: a deployment's parameter schema recorded once (sqlite, postgres,
dynamodb)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from store.test_conformance import deployment, pool

from service.errors import DeploymentNotFound
from service.store.base import Store

AT = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}


def test_a_schema_is_recorded_only_where_there_is_none(store: Store) -> None:
    store.create_pool(pool())
    dep, _ = store.upsert_deployment(deployment(parameter_schema=None), [])
    assert store.record_parameter_schema(dep.id, SCHEMA, AT)
    stored = store.get_deployment(dep.id)
    assert stored.parameter_schema == SCHEMA
    assert stored.updated_at == AT
    assert store.list_deployments()[0].parameter_schema == SCHEMA
    other = {"type": "object", "properties": {"n": {"type": "string"}}}
    assert not store.record_parameter_schema(dep.id, other, AT)
    assert store.get_deployment(dep.id).parameter_schema == SCHEMA


def test_a_schema_given_at_deploy_is_kept(store: Store) -> None:
    store.create_pool(pool())
    dep, _ = store.upsert_deployment(deployment(parameter_schema=SCHEMA), [])
    assert not store.record_parameter_schema(dep.id, {"type": "object"}, AT)
    assert store.get_deployment(dep.id).parameter_schema == SCHEMA


def test_recording_for_a_missing_deployment_raises(store: Store) -> None:
    with pytest.raises(DeploymentNotFound):
        store.record_parameter_schema("nope", SCHEMA, AT)


def test_racing_records_have_one_winner(store: Store) -> None:
    if type(store).__name__ == "DynamoStore":
        pytest.skip("moto's conditional writes are not atomic across threads")
    store.create_pool(pool())
    dep, _ = store.upsert_deployment(deployment(parameter_schema=None), [])
    wins: list[bool] = []
    start = threading.Barrier(6)

    def racer(i: int) -> None:
        start.wait()
        schema = {"type": "object", "title": str(i)}
        wins.append(store.record_parameter_schema(dep.id, schema, AT))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wins.count(True) == 1
