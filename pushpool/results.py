"""Result persistence: serializers and the result-store interface.

A :class:`ResultStore` maps a relative key (``a/b/c.json``) to bytes. The process
pool uses :class:`LocalResultStore` (a directory under ``PUSHPOOL_HOME``); ECS uses
:class:`S3ResultStore`, Cloud Run :class:`GcsResultStore`, ACI :class:`AzureBlobResultStore`
(each imports its cloud's client on first use only). A store is one class;
``tests/sdk/test_result_stores`` is the conformance suite every store passes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pushpool.errors import (
    InvalidResultKey,
    ResultNotFound,
    ResultNotSerializable,
    UnsupportedResultStorage,
)

#: The runner's environment variable naming the pool's result storage (set by the service).
RESULT_STORAGE_ENV = "PUSHPOOL_RESULT_STORAGE"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_OTHER = {
    "gcs": "Google Cloud Storage is spelt gs://bucket/prefix",
    "abfs": "Azure Blob Storage is spelt az://account/container/prefix",
    "abfss": "Azure Blob Storage is spelt az://account/container/prefix",
    "https": "a web URL is no result store",
}

Serializer = Literal["json", "pickle"]
SERIALIZERS: tuple[str, ...] = ("json", "pickle")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(/[A-Za-z0-9][A-Za-z0-9._\-]*)*$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidResultKey`."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key.split("/"):
        raise InvalidResultKey(f"invalid result key {key!r}: use letters, digits, '._-' and '/'")
    return key


@runtime_checkable
class ResultStore(Protocol):
    """Bytes under relative keys. Writes are whole-object and last-writer-wins."""

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (replacing what was there)."""

    def read(self, key: str) -> bytes:
        """The bytes under ``key``; :class:`ResultNotFound` if there are none."""

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a result."""


class LocalResultStore:
    """Results as files under ``root``; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ResultNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3ResultStore:
    """Results as objects in an S3 bucket under ``prefix``; boto3 is imported on use."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._object_key(key), Body=data)

    def read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ResultNotFound(key) from None
            raise
        body: bytes = response["Body"].read()
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return False
            raise
        return True


class GcsResultStore:
    """Results as objects in a Cloud Storage bucket under ``prefix``.

    ``google-cloud-storage`` is imported on first use, with Application Default
    Credentials (on Cloud Run: the job's service account). The library itself honours
    ``STORAGE_EMULATOR_HOST`` (a local emulator, anonymous credentials)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._bucket: Any = None

    def _blob(self, key: str) -> Any:
        check_key(key)
        if self._bucket is None:
            client = self._client
            if client is None:
                from google.cloud import storage  # type: ignore[attr-defined]  # untyped

                client = storage.Client()
            self._bucket = client.bucket(self.bucket)
        return self._bucket.blob(f"{self.prefix}/{key}" if self.prefix else key)

    def write(self, key: str, data: bytes) -> None:
        self._blob(key).upload_from_string(data, content_type="application/octet-stream")

    def read(self, key: str) -> bytes:
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        try:
            data: bytes = blob.download_as_bytes()
        except NotFound:
            raise ResultNotFound(key) from None
        return data

    def exists(self, key: str) -> bool:
        return bool(self._blob(key).exists())


#: Standard Azure setting: a storage connection string (e.g. for a local emulator). Used
#: only when its ``AccountName`` is the account the URL names.
AZURE_CONNECTION_ENV = "AZURE_STORAGE_CONNECTION_STRING"


class AzureBlobResultStore:
    """Results as block blobs in an Azure Storage container under ``prefix``.

    ``azure-storage-blob`` is imported on first use; the credential is
    ``DefaultAzureCredential`` (in a container group: its managed identity), on
    ``https://<account>.blob.core.windows.net``. A connection string in
    ``AZURE_STORAGE_CONNECTION_STRING`` for the same account is used instead."""

    def __init__(self, account: str, container: str, prefix: str = "", client: Any = None) -> None:
        self.account, self.container = account, container
        self.prefix = prefix.strip("/")
        self._client = client

    @property
    def client(self) -> Any:
        """The ``ContainerClient`` (made on first use)."""
        if self._client is None:
            from azure.storage.blob import ContainerClient

            connection = os.environ.get(AZURE_CONNECTION_ENV, "")
            if f"accountname={self.account};" in connection.lower().replace(" ", "") + ";":
                self._client = ContainerClient.from_connection_string(connection, self.container)
            else:
                from azure.identity import DefaultAzureCredential

                url = f"https://{self.account}.blob.core.windows.net"
                self._client = ContainerClient(url, self.container, DefaultAzureCredential())
        return self._client

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def write(self, key: str, data: bytes) -> None:
        self.client.upload_blob(self._name(key), data, overwrite=True)

    def read(self, key: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        name = self._name(key)
        try:
            data: bytes = self.client.download_blob(name).readall()
        except ResourceNotFoundError:
            raise ResultNotFound(key) from None
        return data

    def exists(self, key: str) -> bool:
        return bool(self.client.get_blob_client(self._name(key)).exists())


Kind = Literal["s3", "gs", "az", "local"]
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]$")
_USE = (
    "use s3://bucket/prefix, gs://bucket/prefix, az://account/container/prefix or an"
    " absolute directory"
)


def _prefix(url: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix and (not _KEY.match(prefix) or ".." in prefix.split("/")):
        raise UnsupportedResultStorage(
            f"result storage {url!r}: the prefix may hold letters, digits, '._-' and '/'"
        )
    return prefix


def _bucket(url: str, bucket: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(bucket) or ".." in bucket:
        raise UnsupportedResultStorage(f"result storage {url!r}: {bucket!r} is no {what} name")
    return bucket


def _azure(url: str, rest: str) -> tuple[str, str]:
    account, _, rest = rest.partition("/")
    container, _, prefix = rest.partition("/")
    if not _ACCOUNT.match(account):
        raise UnsupportedResultStorage(
            f"result storage {url!r}: {account!r} is no storage account name (3-24 lowercase"
            " letters and digits); the form is az://account/container/prefix"
        )
    _bucket(url, container, _CONTAINER, "blob container")
    return f"{account}/{container}", _prefix(url, prefix)


def parse_result_storage(url: str) -> tuple[Kind, str, str]:
    """``(kind, location, prefix)`` of a pool's ``result_storage``: ``s3://bucket/prefix``
    -> ``("s3", bucket, prefix)``; ``gs://bucket/prefix`` -> ``("gs", bucket, prefix)``;
    ``az://account/container/prefix`` -> ``("az", "account/container", prefix)``; an
    absolute directory (or ``file:///dir``) -> ``("local", dir, "")``. Anything else is
    :class:`UnsupportedResultStorage`, saying why."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        if os.path.isabs(url):
            return "local", url, ""
        raise UnsupportedResultStorage(f"result storage {url!r}: {_USE}")
    scheme = scheme.lower()
    if scheme == "file" and os.path.isabs(rest):
        return "local", rest, ""
    bucket, _, prefix = rest.partition("/")
    if scheme == "s3":
        return "s3", _bucket(url, bucket, _BUCKET, "S3 bucket"), _prefix(url, prefix)
    if scheme == "gs":
        return "gs", _bucket(url, bucket, _GCS_BUCKET, "Cloud Storage bucket"), _prefix(url, prefix)
    if scheme == "az":
        return "az", *_azure(url, rest)
    if scheme in _OTHER:
        raise UnsupportedResultStorage(f"result storage {url!r}: {_OTHER[scheme]}; {_USE}")
    raise UnsupportedResultStorage(f"result storage {url!r}: unknown scheme {scheme!r}; {_USE}")


def store_for(url: str | None) -> ResultStore:
    """The result store a pool's ``result_storage`` names; :func:`default_store` if none.
    No cloud SDK is imported here: a store imports its client on first use."""
    if not url:
        return default_store()
    kind, location, prefix = parse_result_storage(url)
    if kind == "s3":
        return S3ResultStore(location, prefix)
    if kind == "gs":
        return GcsResultStore(location, prefix)
    if kind == "az":
        account, container = location.split("/")
        return AzureBlobResultStore(account, container, prefix)
    return LocalResultStore(Path(location))


def default_store() -> LocalResultStore:
    """The local store: ``$PUSHPOOL_HOME/results`` (default ``~/.pushpool/results``)."""
    home = os.environ.get("PUSHPOOL_HOME") or str(Path.home() / ".pushpool")
    return LocalResultStore(Path(home) / "results")


def dumps(value: Any, serializer: Serializer) -> bytes:
    """Serialise ``value``: a JSON envelope, or pickle when the user opted in."""
    if serializer == "pickle":
        import pickle

        try:
            return b"P" + pickle.dumps(value)
        except Exception as exc:
            raise ResultNotSerializable(f"result cannot be pickled: {exc}") from exc
    try:
        return b"J" + json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise ResultNotSerializable(
            f"result of type {type(value).__name__} is not JSON-serialisable ({exc}); "
            "pass result_serializer='pickle' to opt in to pickle"
        ) from exc


def loads(data: bytes) -> Any:
    """The value :func:`dumps` wrote."""
    kind, body = data[:1], data[1:]
    if kind == b"J":
        return json.loads(body)
    if kind == b"P":
        import pickle

        return pickle.loads(body)
    raise ResultNotSerializable(f"unknown result encoding {kind!r}")
