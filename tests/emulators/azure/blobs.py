"""The Blob service data plane, path-style like Azure's own emulators:
``<url>/blob/<account>/<container>/<blob>``.

What a result store calls, answered as Azure Storage answers it (headers, XML errors,
``x-ms-error-code``): Create Container, Put Blob (block blobs), Get Blob (whole or a
``x-ms-range``), Get Blob Properties. A container exists if it was created here or
through ARM (``Microsoft.Storage/storageAccounts/<a>/blobServices/default/containers/<c>``,
which provisioning makes); a request without an ``Authorization`` header is refused.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from starlette.requests import Request
from starlette.responses import Response

from emulators.azure.state import Azure

VERSION = "2025-01-05"
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Blob:
    data: bytes
    etag: str
    modified: datetime


def _error(status: int, code: str, message: str, head: bool = False) -> Response:
    body = (
        b""
        if head
        else (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ).encode()
    )
    headers = {"x-ms-error-code": code, "x-ms-version": VERSION}
    return Response(body, status_code=status, headers=headers, media_type="application/xml")


class BlobService:
    """Every account's containers and blobs, beside the ARM state in ``azure``."""

    def __init__(self, azure: Azure) -> None:
        self.azure = azure
        #: (account, container) made through the data plane.
        self.containers: set[tuple[str, str]] = set()
        #: (account, container, blob name) -> the blob.
        self.blobs: dict[tuple[str, str, str], Blob] = {}

    def _arm_container(self, account: str, container: str) -> bool:
        suffix = (
            f"/providers/microsoft.storage/storageaccounts/{account}"
            f"/blobservices/default/containers/{container}"
        )
        return any(key.endswith(suffix) for key in self.azure.resources)

    def container_exists(self, account: str, container: str) -> bool:
        return (account, container) in self.containers or self._arm_container(account, container)

    def keys(self, account: str, container: str) -> list[str]:
        """The blob names in a container, sorted (none once the container is gone)."""
        if not self.container_exists(account, container):
            return []
        return sorted(n for a, c, n in self.blobs if (a, c) == (account, container))

    async def handle(self, request: Request) -> Response:
        head = request.method == "HEAD"
        if not request.headers.get("authorization", "").startswith(("SharedKey ", "Bearer ")):
            return _error(403, "NoAuthenticationInformation", "no credentials", head)
        parts = request.url.path.removeprefix("/blob/").split("/", 2)
        account, container, name = [*parts, "", ""][:3]
        body = await request.body()
        with self.azure.lock:
            fault = self.azure.record(request.method, request.url.path, request.url.query, None)
            if fault is not None:
                return _error(fault.status, fault.code, fault.message, head)
            if request.query_params.get("restype") == "container" and not name:
                return self._container(request.method, account, container)
            if not self.container_exists(account, container):
                missing = "The specified container does not exist."
                return _error(404, "ContainerNotFound", missing, head)
            key = (account, container, name)
            if request.method == "PUT":
                return self._put(request, key, body)
            if request.method in ("GET", "HEAD"):
                return self._get(request, key, head)
        return _error(405, "UnsupportedHttpVerb", request.method, head)

    def _container(self, method: str, account: str, container: str) -> Response:
        if method != "PUT":
            return _error(405, "UnsupportedHttpVerb", method)
        if self.container_exists(account, container):
            return _error(409, "ContainerAlreadyExists", "The specified container already exists.")
        self.containers.add((account, container))
        return Response(status_code=201, headers=self._stamp(f'"{uuid.uuid4().hex}"'))

    @staticmethod
    def _stamp(etag: str, modified: datetime | None = None) -> dict[str, str]:
        when = modified or datetime.now(UTC)
        return {
            "ETag": etag,
            "Last-Modified": format_datetime(when, usegmt=True),
            "x-ms-request-id": str(uuid.uuid4()),
            "x-ms-version": VERSION,
            "Date": format_datetime(datetime.now(UTC), usegmt=True),
        }

    def _put(self, request: Request, key: tuple[str, str, str], body: bytes) -> Response:
        if request.headers.get("x-ms-blob-type") != "BlockBlob":
            return _error(400, "InvalidHeaderValue", "only block blobs are emulated")
        blob = Blob(body, f'"0x{uuid.uuid4().hex[:15].upper()}"', datetime.now(UTC))
        self.blobs[key] = blob
        headers = self._stamp(blob.etag, blob.modified)
        headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
        headers["x-ms-request-server-encrypted"] = "true"
        return Response(status_code=201, headers=headers)

    def _get(self, request: Request, key: tuple[str, str, str], head: bool) -> Response:
        blob = self.blobs.get(key)
        if blob is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.", head)
        headers = self._stamp(blob.etag, blob.modified) | {
            "x-ms-blob-type": "BlockBlob",
            "Accept-Ranges": "bytes",
            "x-ms-server-encrypted": "true",
            "Content-Type": "application/octet-stream",
        }
        wanted = request.headers.get("x-ms-range") or request.headers.get("range")
        if head or not wanted:
            headers["Content-Length"] = str(len(blob.data))
            return Response(b"" if head else blob.data, status_code=200, headers=headers)
        match = _RANGE.match(wanted)
        if match is None:
            return _error(400, "InvalidRange", f"cannot read the range {wanted!r}")
        start = int(match.group(1))
        if start >= len(blob.data):
            return _error(416, "InvalidRange", "The range specified is invalid for the blob.")
        end = min(int(match.group(2) or len(blob.data) - 1), len(blob.data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(blob.data)}"
        return Response(blob.data[start : end + 1], status_code=206, headers=headers)
