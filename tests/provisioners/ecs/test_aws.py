"""The boto3 boundary: lazy clients, boto3's own configuration, errors as ProvisionerError."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from provisioners.ecs.aws import AwsClient
from provisioners.ecs.errors import AwsError
from provisioners.errors import ProvisionerError


def translated(aws: Any, error: Exception) -> AwsError:
    aws.fail("list_clusters", error)
    with pytest.raises(AwsError) as info:
        aws.call("ecs", "list_clusters")
    assert info.value.__cause__ is error  # raise ... from the botocore error
    return info.value


@pytest.mark.parametrize(
    ("code", "status", "message", "transient"),
    [
        ("ThrottlingException", 400, "Rate exceeded", True),
        ("RequestLimitExceeded", 400, "", True),
        ("ServerException", 500, "Service unavailable", True),
        ("SomethingNew", 503, "", True),
        ("InvalidParameterException", 400, "ECS was unable to assume the role 'arn:x'", True),
        ("AccessDeniedException", 400, "not authorized to perform: iam:PassRole", False),
        ("ClusterNotFoundException", 400, "Cluster not found.", False),
    ],
)
def test_aws_errors_say_whether_a_retry_may_help(
    aws_account: None,
    aws: Any,
    make_client_error: Any,
    code: str,
    status: int,
    message: str,
    transient: bool,
) -> None:
    error = translated(aws, make_client_error(code, message, status, op="ListClusters"))
    assert isinstance(error, ProvisionerError)
    assert (error.code, error.transient, error.operation) == (code, transient, "ecs:list_clusters")
    assert str(error).startswith(f"AWS ecs:list_clusters failed: {code}")


def test_clients_are_made_once_per_service(aws_account: None) -> None:
    aws = AwsClient("us-east-1")
    assert aws.client("ecs") is aws.client("ecs")
    assert aws.client("ecs") is not aws.client("ec2")
    assert aws.call("ecs", "list_clusters")["clusterArns"] == []


def test_boto3_configuration_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    aws = AwsClient()
    assert aws.region == "eu-central-1"
    assert aws.client("ecs").meta.endpoint_url == "http://127.0.0.1:1"
    with pytest.raises(AwsError) as info:  # nothing listens there: a network error
        aws.call("ecs", "list_clusters")
    assert info.value.transient and info.value.code == "EndpointConnectionError"


def test_a_missing_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    aws = AwsClient()
    try:
        region = aws.region
    except ProvisionerError as exc:
        assert "no AWS region" in str(exc)
    else:
        pytest.skip(f"this machine's AWS config sets a region ({region})")


def test_neither_the_service_nor_the_ecs_package_imports_boto3() -> None:
    code = (
        "import sys, service.app, provisioners.ecs; "
        "from provisioners.base import provisioner_class; provisioner_class('ecs'); "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
