"""The result-store conformance suite: every store passes it — a local directory, S3
(moto), Cloud Storage (drongo, in process, through the real ``google-cloud-storage``) and
Azure Blob (the Blob data plane of tests/emulators/azure over HTTP, through the real
``azure-storage-blob``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pushpool.errors import InvalidResultKey, ResultNotFound, ResultNotSerializable
from pushpool.results import (
    AzureBlobResultStore,
    GcsResultStore,
    LocalResultStore,
    ResultStore,
    S3ResultStore,
    default_store,
    dumps,
    loads,
)


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ResultStore]:
    if request.param == "local":
        yield LocalResultStore(tmp_path / "results")
        return
    if request.param == "gcs":
        yield from _gcs_store(monkeypatch)
        return
    if request.param == "azure":
        yield from _azure_store(monkeypatch)
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


def _gcs_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResultStore]:
    """drongo's Cloud Storage; the store makes its own client (Application Default
    Credentials, as on Cloud Run: drongo answers for them)."""
    from drongo import mock_gcp

    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    with mock_gcp():
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[attr-defined]  # untyped

        storage.Client(project="p", credentials=AnonymousCredentials()).create_bucket("results")
        yield GcsResultStore("results", prefix="pool-a/")


def _azure_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResultStore]:
    """The store finds the emulator through the standard connection string setting."""
    from emulators.azure.server import azure_emulator

    with azure_emulator() as emulator:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", emulator.connection_string("acct"))
        emulator.blobs.containers.add(("acct", "results"))
        yield AzureBlobResultStore("acct", "results", prefix="pool-a/")


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


def test_cloud_keys_live_under_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from drongo import mock_gcp
    from emulators.azure.server import azure_emulator
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined]  # untyped

    with mock_gcp():
        client = storage.Client(project="p", credentials=AnonymousCredentials())
        client.create_bucket("results")
        GcsResultStore("results", prefix="p/q", client=client).write("cache/k", b"v")
        assert [b.name for b in client.list_blobs("results")] == ["p/q/cache/k"]
    with azure_emulator() as emulator:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", emulator.connection_string("acct"))
        emulator.blobs.containers.add(("acct", "c1"))
        AzureBlobResultStore("acct", "c1", prefix="p").write("cache/k", b"v")
        assert emulator.blobs.keys("acct", "c1") == ["p/cache/k"]
        unsigned = emulator.azure.requests[-1]
        assert unsigned.path == "/blob/acct/c1/p/cache/k"
        with pytest.raises(Exception, match="ContainerNotFound"):
            AzureBlobResultStore("acct", "missing").write("k", b"v")


def test_azure_uses_the_managed_identity_unless_a_connection_string_names_the_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=other;AccountKey=a2V5;",
    )
    client = AzureBlobResultStore("acct", "results").client
    assert client.url == "https://acct.blob.core.windows.net/results"
    assert type(client.credential).__name__ == "DefaultAzureCredential"
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;",
    )
    shared = AzureBlobResultStore("acct", "results").client
    assert "SharedKey" in type(shared.credential).__name__ and shared.account_name == "acct"


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
    assert parse_result_storage("gs://my_bucket.x/results/") == ("gs", "my_bucket.x", "results")
    gcs = store_for("gs://my-bucket/p/q")
    assert isinstance(gcs, GcsResultStore) and (gcs.bucket, gcs.prefix) == ("my-bucket", "p/q")
    assert parse_result_storage("az://acct1/results/p/") == ("az", "acct1/results", "p")
    blob = store_for("az://acct1/results")
    assert isinstance(blob, AzureBlobResultStore)
    assert (blob.account, blob.container, blob.prefix) == ("acct1", "results", "")
    for url, message in (
        ("gcs://b/p", "Google Cloud Storage is spelt gs://bucket/prefix"),
        ("abfs://c/p", "Azure Blob Storage is spelt az://account/container/prefix"),
        ("https://acct.blob.core.windows.net/c", "a web URL is no result store"),
        ("results", "use s3://bucket/prefix, gs://bucket/prefix, az://account/container"),
        ("ftp://host/x", "unknown scheme 'ftp'"),
        ("s3://UPPER/x", "is no S3 bucket name"),
        ("s3://bucket/../x", "the prefix may hold"),
        ("gs://Bucket/x", "is no Cloud Storage bucket name"),
        ("gs://b/x", "is no Cloud Storage bucket name"),
        ("az://Acct/c/p", "'Acct' is no storage account name"),
        ("az://acct", "'' is no blob container name"),
        ("az://acct/a--b", "is no blob container name"),
        ("az://acct/res/x y", "the prefix may hold"),
    ):
        with pytest.raises(UnsupportedResultStorage, match=message):
            parse_result_storage(url)


def test_a_pools_result_storage_is_checked_at_the_api(api: Any) -> None:
    body = {"name": "p", "type": "process", "config": {"result_storage": "gcs://b/results"}}
    r = api.post("/api/work-pools", json=body)
    assert r.status_code == 422 and "Google Cloud Storage is spelt gs://" in r.text
    body["config"] = {"result_storage": "/srv/results"}
    assert api.post("/api/work-pools", json=body).status_code == 201
