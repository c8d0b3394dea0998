"""Cloud Storage JSON API in memory: what a pool's result bucket needs (buckets with their
IAM policy; objects uploaded, read, listed, deleted). Bucket bodies are read with
``google-cloud-storage``'s own resource classes (``Bucket``, ``IAMConfiguration``,
lifecycle rules) and a field the JSON API does not have is a 400, as on Google; IAM
policies with ``google.api_core.iam.Policy``. Bucket names are global, as on Google.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from typing import Any

from emulators.gcp.base import ApiError, not_found, page

Json = dict[str, Any]
#: The JSON API's writable bucket fields (https://cloud.google.com/storage/docs/json_api).
BUCKET_FIELDS = frozenset(
    {
        "name", "location", "locationType", "storageClass", "labels", "iamConfiguration",
        "lifecycle", "encryption", "versioning", "retentionPolicy", "softDeletePolicy",
        "defaultEventBasedHold", "billing", "cors", "logging", "website", "autoclass",
        "customPlacementConfig", "rpo", "hierarchicalNamespace", "acl", "defaultObjectAcl",
    }
)  # fmt: skip


LIFECYCLE_ACTIONS = ("Delete", "SetStorageClass", "AbortIncompleteMultipartUpload")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Bucket:
    body: Json
    bindings: list[Json]
    objects: dict[str, bytes] = field(default_factory=dict)
    #: Bumped by every policy write; the policy's etag says which one a client read.
    revision: int = 1

    @property
    def policy(self) -> Json:
        etag = base64.b64encode(str(self.revision).encode()).decode()
        return {"version": 1, "etag": etag, "bindings": self.bindings}


def read_bucket(raw: bytes) -> Any:
    """The body as ``google.cloud.storage.Bucket``; unknown fields and bad values: 400."""
    from google.cloud.storage import Bucket as SdkBucket

    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ApiError(400, f"invalid bucket: {exc}") from exc
    unknown = sorted(set(body) - BUCKET_FIELDS)
    if unknown:
        raise ApiError(400, f"Invalid JSON payload received. Unknown name {unknown[0]!r}")
    if not body.get("name"):
        raise ApiError(400, "Bucket name is required", "required")
    bucket = SdkBucket(None, body["name"])
    bucket._set_properties(body)
    prevention = bucket.iam_configuration.public_access_prevention
    if prevention not in ("enforced", "inherited", "unspecified"):
        raise ApiError(400, f"invalid publicAccessPrevention {prevention!r}")
    for rule in bucket.lifecycle_rules:
        if rule.get("action", {}).get("type") not in LIFECYCLE_ACTIONS:
            raise ApiError(400, f"invalid lifecycle action {rule.get('action')!r}")
    return bucket


def _object(bucket: str, name: str, data: bytes) -> Json:
    return {
        "kind": "storage#object",
        "id": f"{bucket}/{name}",
        "name": name,
        "bucket": bucket,
        "size": str(len(data)),
        "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
        "contentType": "application/octet-stream",
        "generation": "1",
        "updated": _now(),
    }


def _multipart(content_type: str, raw: bytes) -> tuple[Json, bytes]:
    """``(metadata, media)`` of a ``multipart/related`` upload."""
    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    parts = message.get_payload() if message.is_multipart() else []
    if not isinstance(parts, list) or len(parts) != 2:
        raise ApiError(400, "a multipart upload has a metadata part and a media part")
    metadata, media = (bytes(part.get_payload(decode=True) or b"") for part in parts)  # type: ignore[union-attr]
    return json.loads(metadata or b"{}"), media


class Storage:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def bucket(self, name: str) -> Bucket:
        if name not in self.buckets:
            raise not_found(f"The specified bucket {name} does not exist.")
        return self.buckets[name]

    # -- buckets -----------------------------------------------------------------------
    def create_bucket(self, project: str, raw: bytes) -> Json:
        if not project:
            raise ApiError(400, "Required parameter: project", "required")
        parsed = read_bucket(raw)
        if parsed.name in self.buckets:
            raise ApiError(409, f"The bucket {parsed.name} already exists.", "conflict")
        body = dict(parsed._properties)
        body.update(
            kind="storage#bucket",
            id=parsed.name,
            projectNumber="123456789",
            timeCreated=_now(),
            location=str(body.get("location") or "US").upper(),
            metageneration="1",
        )
        owners = {"role": "roles/storage.legacyBucketOwner", "members": [f"projectOwner:{project}"]}
        self.buckets[parsed.name] = Bucket(body, [owners])
        return body

    def get_bucket(self, name: str) -> Json:
        return self.bucket(name).body

    def delete_bucket(self, name: str) -> None:
        if self.bucket(name).objects:
            raise ApiError(409, "The bucket you tried to delete is not empty.", "conflict")
        del self.buckets[name]

    def get_policy(self, name: str) -> Json:
        resource = f"projects/_/buckets/{name}"
        return {"kind": "storage#policy", "resourceId": resource, **self.bucket(name).policy}

    def set_policy(self, name: str, raw: bytes) -> Json:
        from google.api_core.iam import Policy

        bucket = self.bucket(name)
        try:
            sent = Policy.from_api_repr(json.loads(raw or b"{}"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(400, f"invalid policy: {exc}") from exc
        if sent.etag and sent.etag != bucket.policy["etag"]:
            raise ApiError(412, "Precondition Failed", "conditionNotMet")
        bucket.bindings = [
            {"role": b["role"], "members": sorted(b["members"])} for b in sent.bindings
        ]
        bucket.revision += 1
        return self.get_policy(name)

    # -- objects -----------------------------------------------------------------------
    def upload(self, name: str, query: dict[str, str], content_type: str, raw: bytes) -> Json:
        bucket = self.bucket(name)
        kind = query.get("uploadType", "media")
        if kind == "multipart":
            metadata, data = _multipart(content_type, raw)
            key = str(metadata.get("name") or query.get("name") or "")
        elif kind == "media":
            key, data = query.get("name", ""), raw
        else:
            raise ApiError(400, f"uploadType {kind!r} is not emulated")
        if not key:
            raise ApiError(400, "Required parameter: name", "required")
        bucket.objects[key] = data
        return _object(name, key, data)

    def get_object(self, name: str, key: str) -> Json:
        bucket = self.bucket(name)
        if key not in bucket.objects:
            raise not_found(f"No such object: {name}/{key}")
        return _object(name, key, bucket.objects[key])

    def media(self, name: str, key: str) -> bytes:
        bucket = self.bucket(name)
        if key not in bucket.objects:
            raise not_found(f"No such object: {name}/{key}")
        return bucket.objects[key]

    def list_objects(self, name: str, query: dict[str, str]) -> Json:
        bucket = self.bucket(name)
        prefix = query.get("prefix", "")
        keys = sorted(k for k in bucket.objects if k.startswith(prefix))
        chunk, token = page([_object(name, k, bucket.objects[k]) for k in keys], query, 1000)
        more = {"nextPageToken": token} if token else {}
        return {"kind": "storage#objects", "items": chunk, **more}

    def delete_object(self, name: str, key: str) -> None:
        bucket = self.bucket(name)
        if bucket.objects.pop(key, None) is None:
            raise not_found(f"No such object: {name}/{key}")
