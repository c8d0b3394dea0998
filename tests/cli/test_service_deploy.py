"""`pushpool service deploy|destroy` against a moto server; the package built offline."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode_str
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from service.cli import deploy_stack
from service.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "aws" / "template.yaml"
REGION = "eu-west-1"
STACK = "pp-test"
BUCKET = "pp-artifacts"

pytestmark = [
    pytest.mark.slow,
    # moto's CloudFormation warns about the resource types it skips (see tests/infra).
    pytest.mark.filterwarnings(
        r"ignore:Tried to parse AWS..(ApiGatewayV2..\w+|Lambda..Alias|SecretsManager..Secret)"
        r" but it's not supported:UserWarning"
    ),
]


def moto_view() -> str:
    """The template as moto can deploy it: alias refs (moto cannot create the alias, and its
    Lambda Permission crashes on them) replaced by the function's ARN."""
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems, problems
    data: dict[str, Any] = json.loads(json.dumps(template))
    resources = data["Resources"]
    (alias, spec), *more = [
        (n, r) for n, r in resources.items() if r["Type"] == "AWS::Lambda::Alias"
    ]
    assert not more
    function = spec["Properties"]["FunctionName"]["Ref"]

    def swap(node: Any) -> Any:
        if node == {"Ref": alias}:
            return {"Fn::GetAtt": [function, "Arn"]}
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    return json.dumps(swap(data))


def make_wheel(directory: Path, name: str = "tinydep", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel, written by hand (no build backend, no network)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


# -- runtime requirements -----------------------------------------------------------------
#: What the Lambda imports; never to be filtered out as local-only.
LAMBDA_NEEDS = {
    "fastapi",
    "mangum",
    "pydantic",
    "pydantic-settings",
    "coolname",
    "jsonschema",
    "jsonschema-rs",
}


@pytest.mark.parametrize(
    ("requirement", "name"),
    [
        ("uvicorn[standard]>=0.30", "uvicorn"),
        ("SQLAlchemy>=2.0.30", "sqlalchemy"),
        ("pydantic_settings>=2.3", "pydantic-settings"),
        ("Zope.Interface__x ; python_version < '3.12'", "zope-interface-x"),
        ("httpx", "httpx"),
        ("  typer (>=0.12)", "typer"),
    ],
)
def test_project_name_is_pep503_normalised(requirement: str, name: str) -> None:
    assert deploy_stack.project_name(requirement) == name


def test_runtime_requirements_drop_exactly_the_local_only_ones() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [deploy_stack.project_name(r) for r in project["dependencies"]]
    extras = [
        deploy_stack.project_name(r)
        for extra in sorted(deploy_stack.LAMBDA_EXTRAS)
        for r in project["optional-dependencies"][extra]
    ]
    kept = [n for n in names if n not in deploy_stack.LOCAL_ONLY] + extras
    dropped = {n for n in names if n in deploy_stack.LOCAL_ONLY}

    packaged = [deploy_stack.project_name(r) for r in deploy_stack.runtime_requirements()]
    # The installed metadata matches pyproject.toml, minus local-only, plus the extras
    # the Lambda needs (the Azure SDK for ACI pools), with no marker left to skip them.
    assert sorted(packaged) == sorted(kept)
    assert all("extra" not in r for r in deploy_stack.runtime_requirements())
    assert "google-cloud-run" in packaged and "azure-mgmt-containerinstance" in packaged
    assert "boto3" not in packaged
    assert dropped == deploy_stack.LOCAL_ONLY  # every local-only name is still a dependency
    assert set(packaged) >= LAMBDA_NEEDS, LAMBDA_NEEDS - set(packaged)


# -- build_package ------------------------------------------------------------------------
def test_build_package_unpacks_fixture_wheels_and_skips_tests_and_caches(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    package = deploy_stack.build_package(
        tmp_path / "out", wheels_dir=wheels, requirements=["tinydep"]
    )
    names = zipfile.ZipFile(package).namelist()
    assert "service/lambda_handler.py" in names
    assert "provisioners/ecs/provisioner.py" in names
    assert "tinydep/__init__.py" in names
    assert "tinydep-0.1.dist-info/METADATA" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    again = deploy_stack.build_package(
        tmp_path / "again", wheels_dir=wheels, requirements=["tinydep"]
    )
    assert deploy_stack.sha256_of(again) == deploy_stack.sha256_of(package)  # deterministic


def test_build_package_reports_a_missing_wheel_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    with pytest.raises(deploy_stack.CliError, match="pip download failed"):
        deploy_stack.build_package(
            tmp_path / "out", wheels_dir=tmp_path / "wheels", requirements=["nosuchdep"]
        )


# -- deploy / destroy against moto ----------------------------------------------------------
@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        # moto's backends are process-global: start from a clean slate.
        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("AWS_REGION", REGION)
        yield url
    finally:
        server.stop()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Deploy the moto view of the template with a package of fixture wheels only."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    real_build = deploy_stack.build_package

    def build(out_dir: Path, **kwargs: Any) -> Path:
        return real_build(out_dir, **{**kwargs, "requirements": ["tinydep"]})

    monkeypatch.setattr(deploy_stack, "build_package", build)
    monkeypatch.setattr(deploy_stack, "default_template", moto_view)
    monkeypatch.setattr(deploy_stack, "POLL_SECONDS", 0.05)
    return wheels


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_deploy_redeploy_and_destroy(moto_server: str, offline: Path) -> None:
    code, out = invoke(
        "service", "deploy", "--stack-name", STACK, "--bucket", BUCKET,
        "--wheels-dir", str(offline),
    )  # fmt: skip
    assert code == 0, out
    cfn = boto3.client("cloudformation", region_name=REGION)
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert f"API URL: {outputs['ApiUrl']}" in out
    assert outputs["ApiUrl"].startswith("https://")
    assert f"Table:   {outputs['TableName']}" in out
    assert "deployed" in out

    s3 = boto3.client("s3", region_name=REGION)
    objects = s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    assert len(objects) == 1
    key = objects[0]["Key"]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["CodeBucket"] == BUCKET and params["CodeKey"] == key
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() in key
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "service/lambda_handler.py" in names
    assert "provisioners/ecs/provisioner.py" in names
    assert "tinydep/__init__.py" in names
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    tags = s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]
    assert {"Key": "pushpool", "Value": "artifacts"} in tags

    code, out = invoke(
        "service", "deploy", "--stack-name", STACK, "--bucket", BUCKET,
        "--wheels-dir", str(offline), "--output", "json",
    )  # fmt: skip
    assert code == 0, out
    again = json.loads(out[out.index("{") :])
    assert again["changed"] is False
    assert again["outputs"] == outputs  # the stack's Outputs only

    code, out = invoke("service", "destroy", "--stack-name", STACK, input="n\n")
    assert code == 1 and "aborted" in out
    code, out = invoke("service", "destroy", "--stack-name", STACK, "--yes")
    assert code == 0, out
    assert f"Deleted stack {STACK}" in out
    live = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"]  # fmt: skip
    assert STACK not in live


def test_deploy_returns_outputs_and_whether_it_changed(
    moto_server: str, offline: Path, tmp_path: Path
) -> None:
    package = deploy_stack.build_package(tmp_path / "out", wheels_dir=offline)
    lines: list[str] = []

    def deploy() -> deploy_stack.DeployResult:
        return deploy_stack.deploy(STACK, REGION, moto_view(), package, lines.append, bucket=BUCKET)

    first = deploy()
    assert first.changed is True
    assert set(first.outputs) >= {"ApiUrl", "TableName"}
    assert all(not key.startswith("_") for key in first.outputs)
    second = deploy()
    assert second == deploy_stack.DeployResult(outputs=first.outputs, changed=False)
    assert lines[-1] == f"stack {STACK}: no changes"


def test_allowed_role_arns_are_set_kept_and_cleared(moto_server: str, offline: Path) -> None:
    roles = "arn:aws:iam::123456789012:role/etl,arn:aws:iam::123456789012:role/ml"
    base = ["service", "deploy", "--stack-name", STACK, "--bucket", BUCKET,
            "--wheels-dir", str(offline), "--output", "json"]  # fmt: skip
    cfn = boto3.client("cloudformation", region_name=REGION)

    def deployed() -> str:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        value = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
            "AllowedRoleArns"
        ]
        # moto reports a CommaDelimitedList as the text of a Python list; AWS as "a,b"
        return ",".join(p.strip(" '") for p in value.strip("[]").split(",") if p.strip(" '"))

    code, out = invoke(*base, "--allowed-role-arns", roles)
    assert code == 0, out
    assert deployed() == roles
    code, out = invoke(*base)  # not given: the deployed value is kept
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["changed"] is False
    assert deployed() == roles
    code, out = invoke(*base, "--allowed-role-arns", "")
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["changed"] is True
    assert deployed() == ""


def test_an_allowed_role_arn_that_is_not_one_is_refused_in_one_line(moto_server: str) -> None:
    code, out = invoke(
        "service", "deploy", "--stack-name", STACK,
        "--allowed-role-arns", "arn:aws:iam::123456789012:role/ok,arn:aws:s3:::bucket",
    )  # fmt: skip
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == [
        "Error: --allowed-role-arns: 'arn:aws:s3:::bucket' is not an IAM role ARN "
        "(arn:aws:iam::ACCOUNT:role/NAME)"
    ], out
    assert not boto3.client("s3").list_buckets()["Buckets"]  # nothing done


def test_deploy_creates_the_default_bucket(moto_server: str, offline: Path) -> None:
    code, out = invoke("service", "deploy", "--stack-name", STACK, "--wheels-dir", str(offline))
    assert code == 0, out
    buckets = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert buckets == [f"pushpool-artifacts-123456789012-{REGION}"]
    assert "created bucket" in out


def test_destroying_a_missing_stack_is_one_line(moto_server: str) -> None:
    code, out = invoke("service", "destroy", "--stack-name", "nope", "--yes")
    assert code == 1
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines == ["Error: stack nope does not exist"], out


class FailingStack:
    """A CloudFormation client whose stack rolled back (what moto cannot be made to do)."""

    def __init__(self) -> None:
        t0 = datetime(2024, 1, 1, tzinfo=UTC)
        self.events = [  # newest first, as CloudFormation returns them
            _event("e4", t0 + timedelta(seconds=4), STACK, "ROLLBACK_COMPLETE"),
            _event("e3", t0 + timedelta(seconds=3), "Role", "CREATE_FAILED", "cancelled"),
            _event("e2", t0 + timedelta(seconds=2), "Table", "CREATE_FAILED", "limit exceeded"),
            _event("e1", t0 + timedelta(seconds=1), STACK, "CREATE_IN_PROGRESS"),
        ]

    def get_paginator(self, name: str) -> FailingStack:
        assert name == "describe_stack_events"
        return self

    def paginate(self, StackName: str) -> list[dict[str, Any]]:
        return [{"StackEvents": self.events}]

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        return {"Stacks": [{"StackId": StackName, "StackStatus": "ROLLBACK_COMPLETE"}]}


def _event(
    event_id: str, when: datetime, resource: str, status: str, reason: str = ""
) -> dict[str, Any]:
    return {
        "EventId": event_id,
        "Timestamp": when,
        "LogicalResourceId": resource,
        "ResourceType": "AWS::DynamoDB::Table" if resource == "Table" else "AWS::IAM::Role",
        "ResourceStatus": status,
        "ResourceStatusReason": reason,
    }


def test_a_failed_stack_names_the_first_failed_resource() -> None:
    lines: list[str] = []
    with pytest.raises(deploy_stack.CliError) as err:
        deploy_stack.wait_for_stack(FailingStack(), STACK, lines.append, since=None, poll=0)
    assert str(err.value) == (
        "stack ROLLBACK_COMPLETE: Table (AWS::DynamoDB::Table) failed: limit exceeded"
    )
    assert lines[0] == f"{STACK} CREATE_IN_PROGRESS"
