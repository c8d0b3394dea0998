"""Result persistence: serializers and the result-store interface.

A :class:`ResultStore` maps a relative key (``a/b/c.json``) to bytes. The process
pool uses :class:`LocalResultStore` (a directory under ``PUSHPOOL_HOME``); ECS uses
:class:`S3ResultStore`. Other clouds add one class each; ``tests/sdk/test_result_stores``
is the conformance suite every store passes.
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
_NOT_YET = {
    "gs": "Google Cloud Storage",
    "gcs": "Google Cloud Storage",
    "az": "Azure Blob Storage",
    "abfs": "Azure Blob Storage",
    "abfss": "Azure Blob Storage",
    "https": "a web URL",
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


def parse_result_storage(url: str) -> tuple[Literal["s3", "local"], str, str]:
    """``(kind, location, prefix)`` of a pool's ``result_storage``: ``s3://bucket/prefix``
    -> ``("s3", bucket, prefix)``; an absolute directory (or ``file:///dir``) ->
    ``("local", dir, "")``. Anything else is :class:`UnsupportedResultStorage`, saying why
    (GCS and Azure Blob are not supported yet)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        if os.path.isabs(url):
            return "local", url, ""
        raise UnsupportedResultStorage(
            f"result storage {url!r}: give s3://bucket/prefix or an absolute directory"
        )
    scheme = scheme.lower()
    if scheme == "file" and os.path.isabs(rest):
        return "local", rest, ""
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise UnsupportedResultStorage(
                f"result storage {url!r}: {bucket!r} is no S3 bucket name"
            )
        prefix = prefix.strip("/")
        if prefix and (not _KEY.match(prefix) or ".." in prefix.split("/")):
            raise UnsupportedResultStorage(
                f"result storage {url!r}: the prefix may hold letters, digits, '._-' and '/'"
            )
        return "s3", bucket, prefix
    if scheme in _NOT_YET:
        raise UnsupportedResultStorage(
            f"result storage {url!r}: {_NOT_YET[scheme]} is not supported yet; "
            "use s3://bucket/prefix or an absolute directory"
        )
    raise UnsupportedResultStorage(
        f"result storage {url!r}: unknown scheme {scheme!r}; use s3://bucket/prefix or an "
        "absolute directory"
    )


def store_for(url: str | None) -> ResultStore:
    """The result store a pool's ``result_storage`` names; :func:`default_store` if none."""
    if not url:
        return default_store()
    kind, location, prefix = parse_result_storage(url)
    if kind == "s3":
        return S3ResultStore(location, prefix)
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
