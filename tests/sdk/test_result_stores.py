"""The result-store conformance suite: every store (local directory, S3) passes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushpool.errors import InvalidResultKey, ResultNotFound, ResultNotSerializable
from pushpool.results import (
    LocalResultStore,
    ResultStore,
    S3ResultStore,
    default_store,
    dumps,
    loads,
)


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResultStore]:
    if request.param == "local":
        yield LocalResultStore(tmp_path / "results")
        return
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="results")
        yield S3ResultStore("results", prefix="pool-a/", client=client)


def test_write_then_read(store: ResultStore) -> None:
    assert isinstance(store, ResultStore)
    store.write("task-runs/abc", b"J[1]")
    assert store.read("task-runs/abc") == b"J[1]"
    assert store.exists("task-runs/abc")


def test_a_write_replaces(store: ResultStore) -> None:
    store.write("cache/k", b"one")
    store.write("cache/k", b"two")
    assert store.read("cache/k") == b"two"


def test_a_missing_key_is_result_not_found(store: ResultStore) -> None:
    assert not store.exists("cache/missing")
    with pytest.raises(ResultNotFound):
        store.read("cache/missing")


def test_empty_and_binary_values(store: ResultStore) -> None:
    store.write("a/empty", b"")
    store.write("a/binary", bytes(range(256)))
    assert store.read("a/empty") == b""
    assert store.read("a/binary") == bytes(range(256))


@pytest.mark.parametrize("key", ["", "/abs", "../up", "a/../b", "a//b", "sp ace", ".hidden"])
def test_unsafe_keys_are_refused(store: ResultStore, key: str) -> None:
    with pytest.raises(InvalidResultKey, match="invalid result key"):
        store.write(key, b"x")
    with pytest.raises(InvalidResultKey):
        store.read(key)


def test_s3_keys_live_under_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="results")
        S3ResultStore("results", prefix="p", client=client).write("cache/k", b"v")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="results")["Contents"]]
    assert keys == ["p/cache/k"]


def test_default_store_is_under_pushpool_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path))
    assert default_store().root == tmp_path / "results"


def test_serializers_round_trip() -> None:
    assert loads(dumps({"a": [1, 2.5, None]}, "json")) == {"a": [1, 2.5, None]}
    assert loads(dumps({1, 2}, "pickle")) == {1, 2}
    with pytest.raises(ResultNotSerializable, match="not JSON-serialisable"):
        dumps(float("nan"), "json")
    with pytest.raises(ResultNotSerializable, match="unknown result encoding"):
        loads(b"Xnope")


def test_a_pools_result_storage_names_its_store(tmp_path: Path) -> None:
    from pushpool.errors import UnsupportedResultStorage
    from pushpool.results import parse_result_storage, store_for

    assert parse_result_storage("s3://my-bucket/runs/results/") == (
        "s3",
        "my-bucket",
        "runs/results",
    )
    assert parse_result_storage("s3://my-bucket") == ("s3", "my-bucket", "")
    assert parse_result_storage(f"file://{tmp_path}") == ("local", str(tmp_path), "")
    local = store_for(str(tmp_path / "r"))
    assert isinstance(local, LocalResultStore) and local.root == tmp_path / "r"
    s3 = store_for("s3://my-bucket/p")
    assert isinstance(s3, S3ResultStore) and (s3.bucket, s3.prefix) == ("my-bucket", "p")
    assert isinstance(store_for(None), LocalResultStore)
    for url, message in (
        ("gs://b/p", "Google Cloud Storage is not supported yet"),
        ("az://c/p", "Azure Blob Storage is not supported yet"),
        ("results", "give s3://bucket/prefix or an absolute directory"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("s3://UPPER/x", "is no S3 bucket name"),
        ("s3://bucket/../x", "the prefix may hold"),
    ):
        with pytest.raises(UnsupportedResultStorage, match=message):
            parse_result_storage(url)


def test_a_pools_result_storage_is_checked_at_the_api(api: Any) -> None:
    body = {"name": "p", "type": "process", "config": {"result_storage": "gs://b/results"}}
    r = api.post("/api/work-pools", json=body)
    assert r.status_code == 422 and "Google Cloud Storage is not supported yet" in r.text
    body["config"] = {"result_storage": "/srv/results"}
    assert api.post("/api/work-pools", json=body).status_code == 201
