"""The pool's result store: a private Cloud Storage bucket whose results expire, and the
jobs' service account's access to it (and to nothing else of Cloud Storage).

The bucket's name is derived from the pool and the project (bucket names are global); it
carries the pool's label, has uniform bucket-level access (no object ACLs), enforces
public access prevention, uses Google-managed encryption, and deletes results
``result_retention_days`` after they were written. Removing it empties it first.
"""

from __future__ import annotations

import hashlib
from typing import Any

from provisioners.cloud_run.infra.clients import ProvisioningClients
from provisioners.cloud_run.infra.resources import Binding, Context, Resource
from provisioners.cloud_run.names import POOL_LABEL, label_value, slug
from provisioners.infra import Found

#: The object prefix results are written under (the pool's ``result_storage``).
RESULTS_PREFIX = "results"
#: Read, write and list objects of the bucket; not the bucket's own settings or policy.
OBJECT_ROLE = "roles/storage.objectAdmin"


def bucket_name(pool: str, project: str) -> str:
    """``pushpool-<pool>-results-<8 hex digits of the project>``: the same on every run of
    provision for one pool and project; within Cloud Storage's 63 characters."""
    digest = hashlib.sha256(project.encode()).hexdigest()[:8]
    return f"pushpool-{slug(pool, 36)}-results-{digest}"


class ResultBucket(Resource):
    kind = "storage-bucket"

    def __init__(self, name: str, expire_days: int) -> None:
        super().__init__(name)
        self.expire_days = expire_days

    def find(self, ctx: Context) -> Found | None:
        found = ctx.clients.get_bucket(self.name)
        if found is None:
            return None
        owned = (found.get("labels") or {}).get(POOL_LABEL) == label_value(ctx.pool)
        return Found(self.name, owned=owned)

    def create(self, ctx: Context) -> str:
        labels = {POOL_LABEL: label_value(ctx.pool)}
        ctx.clients.create_bucket(self.name, labels, self.expire_days, f"{RESULTS_PREFIX}/")
        return self.name

    def delete(self, ctx: Context, resource_id: str) -> None:
        """Every object first (a bucket must be empty to go), then the bucket."""
        ctx.clients.delete_bucket(resource_id)

    def detail(self, ctx: Context, found: Found | None) -> str:
        note = f"private, results expire after {self.expire_days} days"
        return super().detail(ctx, found) or note

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"result_storage": f"gs://{resource_id}/{RESULTS_PREFIX}"}


class BucketBinding(Binding):
    """A role on the result bucket only (not the project)."""

    kind = "bucket-iam-binding"

    def __init__(self, role: str, member: str, bucket: str) -> None:
        def read(c: ProvisioningClients) -> dict[str, Any] | None:
            return c.bucket_policy(bucket) if c.get_bucket(bucket) is not None else None

        super().__init__(role, member, read, lambda c, p: c.set_bucket_policy(bucket, p))
        self.bucket = bucket

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or f"on bucket {self.bucket} only"
