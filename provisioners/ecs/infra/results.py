"""The pool's result store: a private, encrypted S3 bucket whose results expire, and the
task role's access to its result prefix (and nothing else of it).

The bucket's name is derived from the pool, the account and the region (bucket names
are global); it is tagged as the pool's like every other resource, blocks every kind of
public access, encrypts at rest (SSE-S3, bucket key), refuses plain HTTP, and expires
results after ``result_retention_days``. Removing it empties it first (every version).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provisioners.ecs.errors import AwsError
from provisioners.ecs.infra.base import Context, Found, Resource, ignore
from provisioners.ecs.infra.iam import _where
from provisioners.ecs.names import POOL_TAG
from provisioners.errors import ProvisionerError

#: The key prefix results are written under (the pool's ``result_storage``).
RESULTS_PREFIX = "results"
ACCESS_POLICY = "pushpool-results"
_NO_BUCKET = frozenset({"NoSuchBucket", "404", "NotFound"})
_NO_TAGS = frozenset({"NoSuchTagSet", "NoSuchTagSetError"})


def bucket_name(base: str, ctx: Context) -> str:
    """``<base>-<10 hex digits of account and region>``: the same on every run of
    provision for one pool, account and region; within S3's 63 characters."""
    _, region, account = _where(ctx)
    digest = hashlib.sha256(f"{account}/{region}".encode()).hexdigest()[:10]
    return f"{base}-{digest}"


def bucket_policy(partition: str, bucket: str) -> dict[str, Any]:
    """Refuse every request that does not use TLS."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def access_policy(partition: str, bucket: str) -> dict[str, Any]:
    """Read and write results under the prefix; list only the prefix (so a missing
    result is a 404, not a 403)."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"{arn}/{RESULTS_PREFIX}/*",
            },
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {"StringLike": {"s3:prefix": f"{RESULTS_PREFIX}/*"}},
            },
        ],
    }


class ResultBucket(Resource):
    kind = "s3-bucket"

    def find(self, ctx: Context) -> Found | None:
        return self.check(ctx, bucket_name(self.name, ctx))

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        try:
            ctx.aws.call("s3", "head_bucket", Bucket=resource_id)
        except AwsError as exc:
            if exc.code in _NO_BUCKET:
                return None
            if exc.code in ("403", "AccessDenied", "Forbidden"):
                raise ProvisionerError(
                    f"S3 bucket {resource_id} exists but is not this account's to use"
                ) from exc
            raise
        try:
            tags = ctx.aws.call("s3", "get_bucket_tagging", Bucket=resource_id)["TagSet"]
        except AwsError as exc:
            if exc.code not in _NO_TAGS:
                raise
            tags = []
        return Found(resource_id, ctx.owned(tags))

    def create(self, ctx: Context) -> str:
        bucket = bucket_name(self.name, ctx)
        where: dict[str, Any] = {}
        if ctx.aws.region != "us-east-1":  # S3 refuses us-east-1 as a location constraint
            where["CreateBucketConfiguration"] = {"LocationConstraint": ctx.aws.region}
        ctx.aws.call("s3", "create_bucket", Bucket=bucket, **where)
        tag_set = [{"Key": POOL_TAG, "Value": ctx.pool}]
        ctx.aws.call("s3", "put_bucket_tagging", Bucket=bucket, Tagging={"TagSet": tag_set})
        self._secure(ctx, bucket)
        return bucket

    def _secure(self, ctx: Context, bucket: str) -> None:
        block = dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
            True,
        )
        ctx.aws.call(
            "s3", "put_public_access_block", Bucket=bucket, PublicAccessBlockConfiguration=block
        )
        rule = {
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
            "BucketKeyEnabled": True,
        }
        ctx.aws.call(
            "s3",
            "put_bucket_encryption",
            Bucket=bucket,
            ServerSideEncryptionConfiguration={"Rules": [rule]},
        )
        lifecycle = {
            "ID": "pushpool-results-expire",
            "Status": "Enabled",
            "Filter": {"Prefix": f"{RESULTS_PREFIX}/"},
            "Expiration": {"Days": ctx.result_retention_days},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
        ctx.aws.call(
            "s3",
            "put_bucket_lifecycle_configuration",
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [lifecycle]},
        )
        partition = _where(ctx)[0]
        policy = json.dumps(bucket_policy(partition, bucket))
        ctx.aws.call("s3", "put_bucket_policy", Bucket=bucket, Policy=policy)

    def delete(self, ctx: Context, resource_id: str) -> None:
        """Empty the bucket (every object version and delete marker), then remove it."""
        try:
            self._empty(ctx, resource_id)
        except AwsError as exc:
            if exc.code in _NO_BUCKET:
                return
            raise
        ignore(_NO_BUCKET, lambda: ctx.aws.call("s3", "delete_bucket", Bucket=resource_id))

    @staticmethod
    def _empty(ctx: Context, bucket: str) -> None:
        params: dict[str, Any] = {"Bucket": bucket}
        while True:
            page = ctx.aws.call("s3", "list_object_versions", **params)
            doomed = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if doomed:
                ctx.aws.call(
                    "s3", "delete_objects", Bucket=bucket, Delete={"Objects": doomed, "Quiet": True}
                )
            if not page.get("IsTruncated"):
                return
            params = {
                "Bucket": bucket,
                "KeyMarker": page.get("NextKeyMarker"),
                "VersionIdMarker": page.get("NextVersionIdMarker"),
            }

    def detail(self, ctx: Context, found: Found | None) -> str:
        note = f"private, encrypted, results expire after {ctx.result_retention_days} days"
        return super().detail(ctx, found) or note

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"result_storage": f"s3://{resource_id}/{RESULTS_PREFIX}"}


class ResultAccess(Resource):
    """The task role's inline policy granting its result prefix (``name``: the role)."""

    kind = "iam-role-policy"

    def find(self, ctx: Context) -> Found | None:
        """Found (and the pool's) when the policy is on the pool's role; found but not the
        pool's when the role is someone else's: pushpool never changes that role, so its
        owner grants the access (the plan says so); None while it is still to be made."""
        ident = f"{self.name}/{ACCESS_POLICY}"
        owned = self._role_is_the_pools(ctx)
        if owned is False:
            return Found(ident, owned=False)
        try:
            ctx.aws.call("iam", "get_role_policy", RoleName=self.name, PolicyName=ACCESS_POLICY)
        except AwsError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        return Found(ident, owned=True)

    def _role_is_the_pools(self, ctx: Context) -> bool | None:
        """Whether the role carries the pool's tag; None if there is no role (yet)."""
        try:
            role = ctx.aws.call("iam", "get_role", RoleName=self.name)["Role"]
        except AwsError as exc:
            if exc.code == "NoSuchEntity":
                return None
            raise
        return ctx.owned(role.get("Tags"))

    def create(self, ctx: Context) -> str:
        bucket = ctx.id_of(ResultBucket.kind)
        if bucket is None:
            raise ProvisionerError("the result bucket must exist before the role's access")
        document = json.dumps(access_policy(_where(ctx)[0], bucket))
        ctx.aws.call(
            "iam",
            "put_role_policy",
            RoleName=self.name,
            PolicyName=ACCESS_POLICY,
            PolicyDocument=document,
        )
        return f"{self.name}/{ACCESS_POLICY}"

    def delete(self, ctx: Context, resource_id: str) -> None:
        ignore(
            frozenset({"NoSuchEntity"}),
            lambda: ctx.aws.call(
                "iam", "delete_role_policy", RoleName=self.name, PolicyName=ACCESS_POLICY
            ),
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        if found is not None and not found.owned:
            return (
                f"role {self.name} is not pushpool's: grant it s3:GetObject and s3:PutObject "
                f"on {RESULTS_PREFIX}/* of the result bucket yourself"
            )
        return super().detail(ctx, found) or f"{ACCESS_POLICY}: results/* of the result bucket"
