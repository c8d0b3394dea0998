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
