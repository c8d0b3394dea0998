"""`pushpool service deploy|destroy`: package the control plane for Lambda and run its stack.

Runs on the user's machine with the user's AWS credentials. Every AWS call goes through a
fresh boto3 session, so ``AWS_ENDPOINT_URL`` (and the usual credential chain) is honoured.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from service.cli.client import CliError

#: Packages of this distribution that go into the Lambda package.
PACKAGES = ("service", "provisioners")
#: Directory and file names never packaged.
EXCLUDED_DIRS = {"__pycache__", "tests", "test", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
#: A fixed timestamp for zip entries: the same sources give the same bytes (and key).
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
DISTRIBUTION = "pushpool"
#: Runtime requirements (PEP 503-normalised project names) the Lambda never imports, so
#: they stay out of its package: the CLI (typer, rich, httpx), the local server (uvicorn,
#: required as ``uvicorn[standard]`` with compiled uvloop, httptools, watchfiles and
#: websockets) and the SQL store (sqlalchemy and its migrations, alembic: the stack sets
#: PUSHPOOL_DYNAMODB_TABLE, so the Lambda always opens the DynamoDB store).
LOCAL_ONLY = frozenset({"typer", "rich", "httpx", "uvicorn", "sqlalchemy", "alembic"})
#: Extras whose requirements join the Lambda package: provider SDKs the Lambda runtime
#: lacks, imported only when a pool of that type is used (``gcp``: Cloud Run pools,
#: ``azure``: ACI pools). Not ``aws``: Lambda's runtime has boto3.
LAMBDA_EXTRAS = frozenset({"gcp", "azure"})
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")
#: The project name at the start of a PEP 508 requirement string.
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "aws" / "template.yaml"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
POLL_SECONDS = 2.0
NO_UPDATES = "No updates are to be performed"
FAILED_SUFFIXES = ("_FAILED",)
ARTIFACT_TAG = {"Key": "pushpool", "Value": "artifacts"}

Progress_ = Callable[[str], None]


# -- the package --------------------------------------------------------------------------
def default_template() -> str:
    """The stack's template body (``infra/aws/template.yaml``); tests replace this."""
    if not TEMPLATE_PATH.is_file():
        raise CliError(f"stack template not found at {TEMPLATE_PATH}")
    return TEMPLATE_PATH.read_text()


def project_name(requirement: str) -> str:
    """The PEP 503-normalised project name of a PEP 508 requirement string
    (``"uvicorn[standard]>=0.30"`` → ``"uvicorn"``, ``"SQLAlchemy>=2"`` → ``"sqlalchemy"``)."""
    match = _REQUIREMENT_NAME.match(requirement)
    if match is None:
        raise CliError(f"cannot read the project name of requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements() -> list[str]:
    """The distribution's runtime requirements the Lambda needs: nothing in
    :data:`LOCAL_ONLY`, and of the extras only :data:`LAMBDA_EXTRAS` (Lambda's runtime has
    boto3), their ``extra`` marker dropped."""
    try:
        declared = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise CliError(f"the {DISTRIBUTION} distribution is not installed") from None
    kept = []
    for r in declared:
        extra = _EXTRA_MARKER.search(r.partition(";")[2])
        if extra is None and project_name(r) not in LOCAL_ONLY:
            kept.append(r)
        elif extra is not None and extra.group(1) in LAMBDA_EXTRAS:
            kept.append(r.partition(";")[0].strip())
    return kept


def _package_root(name: str) -> Path:
    module = sys.modules.get(name) or __import__(name)
    file = getattr(module, "__file__", None)
    if not file:
        raise CliError(f"cannot locate the {name!r} package")
    return Path(file).resolve().parent


def _source_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in rel.parts):
            continue
        if path.is_file() and path.suffix not in EXCLUDED_SUFFIXES:
            yield path


def download_wheels(
    requirements: list[str],
    dest: Path,
    *,
    wheels_dir: Path | None,
    platform: str,
    python_version: str,
) -> list[Path]:
    """``pip download`` binary wheels of ``requirements`` for the Lambda platform."""
    if not requirements:
        return []
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--platform", platform, "--python-version", python_version,
        "--implementation", "cp", "-d", str(dest),
    ]  # fmt: skip
    if wheels_dir is not None:
        cmd += ["--no-index", "--find-links", str(wheels_dir)]
    proc = subprocess.run([*cmd, *requirements], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise CliError(f"pip download failed: {lines[-1] if lines else proc.returncode}")
    return sorted(dest.glob("*.whl"))


def _write(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def _wheel_members(wheel: Path) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(wheel) as whl:
        for name in sorted(whl.namelist()):
            if name.endswith("/") or name.endswith((".pyc", ".pyo")):
                continue
            if "__pycache__/" in name:
                continue
            yield name, whl.read(name)


def build_package(
    out_dir: Path,
    *,
    wheels_dir: Path | None = None,
    platform: str = "manylinux2014_aarch64",
    python_version: str = "3.12",
    requirements: list[str] | None = None,
) -> Path:
    """A Lambda zip: ``service`` and ``provisioners`` plus their dependencies' wheels
    (for ``platform``) unpacked at the root. Deterministic for the same inputs."""
    reqs = runtime_requirements() if requirements is None else requirements
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "pushpool-lambda.zip"
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="pushpool-wheels-") as tmp:
        wheels = download_wheels(
            reqs, Path(tmp), wheels_dir=wheels_dir, platform=platform, python_version=python_version
        )
        with zipfile.ZipFile(target, "w") as zf:
            for name in PACKAGES:
                root = _package_root(name)
                for path in _source_files(root):
                    arcname = f"{name}/{path.relative_to(root).as_posix()}"
                    _write(zf, arcname, path.read_bytes())
                    seen.add(arcname)
            for wheel in wheels:
                for arcname, data in _wheel_members(wheel):
                    if arcname not in seen:
                        _write(zf, arcname, data)
                        seen.add(arcname)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- AWS ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeployResult:
    """What :func:`deploy` did: the stack's Outputs, and whether anything changed."""

    outputs: dict[str, str]
    changed: bool


def _session(region: str | None) -> Any:
    import boto3

    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    if not session.region_name:
        raise CliError("no AWS region: pass --region or set AWS_DEFAULT_REGION")
    return session


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _error_message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


def default_bucket(session: Any) -> str:
    account = session.client("sts").get_caller_identity()["Account"]
    return f"pushpool-artifacts-{account}-{session.region_name}"


def ensure_bucket(s3: Any, name: str) -> bool:
    """Create the artifacts bucket unless it exists (tagged pushpool); True if created."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=name)
        return False
    except ClientError as exc:
        if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise CliError(f"bucket {name}: {_error_message(exc)}") from None
    region = s3.meta.region_name
    kwargs: dict[str, Any] = {"Bucket": name}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if _error_code(exc) != "BucketAlreadyOwnedByYou":
            raise CliError(f"cannot create bucket {name}: {_error_message(exc)}") from None
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [ARTIFACT_TAG]})
    return True


def upload_package(s3: Any, bucket: str, package_path: Path) -> str:
    """Upload the zip under a content-addressed key (unless already there); the key."""
    from botocore.exceptions import ClientError

    key = f"pushpool/lambda-{sha256_of(package_path)}.zip"
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return key
    except ClientError as exc:
        if _error_code(exc) not in {"404", "NoSuchKey", "NotFound"}:
            raise CliError(f"s3://{bucket}/{key}: {_error_message(exc)}") from None
    s3.upload_file(str(package_path), bucket, key)
    return key


def _describe(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in _error_message(exc):
            return None
        raise CliError(f"stack {stack_name}: {_error_message(exc)}") from None
    return dict(stacks[0]) if stacks else None


def _events_since(cfn: Any, stack_id: str, since: datetime | None) -> list[dict[str, Any]]:
    """Stack events newer than ``since``, oldest first."""
    events: list[dict[str, Any]] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        for event in page["StackEvents"]:
            if since is not None and event["Timestamp"] <= since:
                return list(reversed(events))
            events.append(event)
    return list(reversed(events))


def _is_failure(status: str) -> bool:
    return status.endswith(FAILED_SUFFIXES) or "ROLLBACK" in status


def wait_for_stack(
    cfn: Any,
    stack_id: str,
    progress: Progress_,
    *,
    since: datetime | None,
    poll: float = POLL_SECONDS,
) -> dict[str, Any] | None:
    """Poll until the stack settles; report each new event. The stack (None once deleted);
    a failure raises :class:`CliError` naming the first failed resource."""
    seen: set[str] = set()
    failures: list[dict[str, Any]] = []
    while True:
        for event in _events_since(cfn, stack_id, since):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            status = event.get("ResourceStatus", "")
            progress(f"{event['LogicalResourceId']} {status}")
            if status.endswith("_FAILED"):
                failures.append(event)
        stack = _describe(cfn, stack_id)
        status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
        if status.endswith("_IN_PROGRESS"):
            time.sleep(poll)
            continue
        if _is_failure(status):
            if failures:
                first = failures[0]
                reason = first.get("ResourceStatusReason") or "no reason given"
                raise CliError(
                    f"stack {status}: {first['LogicalResourceId']} "
                    f"({first.get('ResourceType', '?')}) failed: {reason}"
                )
            reason = (stack or {}).get("StackStatusReason") or "no reason given"
            raise CliError(f"stack {status}: {reason}")
        return None if status == "DELETE_COMPLETE" else stack


#: An IAM role ARN (any partition), as the template's ``AllowedRoleArns`` takes them.
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


def allowed_role_arns(text: str | None) -> list[str] | None:
    """The ``--allowed-role-arns`` value as a list (``None``: not given; ``""``: none);
    ``CliError`` naming the first entry that is not an IAM role ARN."""
    if text is None:
        return None
    arns = [part.strip() for part in text.split(",") if part.strip()]
    for arn in arns:
        if not ROLE_ARN.match(arn):
            raise CliError(
                f"--allowed-role-arns: {arn!r} is not an IAM role ARN "
                "(arn:aws:iam::ACCOUNT:role/NAME)"
            )
    return arns


def _parameters(
    bucket: str, key: str, roles: list[str] | None = None, stack: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The stack parameters to send. ``AllowedRoleArns``: ``roles`` when given, else the
    deployed stack's value kept (CloudFormation would otherwise reset it to none)."""
    params: list[dict[str, Any]] = [
        {"ParameterKey": "CodeBucket", "ParameterValue": bucket},
        {"ParameterKey": "CodeKey", "ParameterValue": key},
    ]
    deployed = {p["ParameterKey"] for p in (stack or {}).get("Parameters", [])}
    if roles is not None:
        params.append({"ParameterKey": "AllowedRoleArns", "ParameterValue": ",".join(roles)})
    elif "AllowedRoleArns" in deployed:
        params.append({"ParameterKey": "AllowedRoleArns", "UsePreviousValue": True})
    return params


def _unchanged(cfn: Any, stack: dict[str, Any], template_body: str, params: Iterable[Any]) -> bool:
    """True when the deployed template and the parameters given already match."""
    current = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
    wanted = {p["ParameterKey"]: p["ParameterValue"] for p in params if "ParameterValue" in p}
    if any(current.get(k) != v for k, v in wanted.items()):
        return False
    deployed = cfn.get_template(StackName=stack["StackId"])["TemplateBody"]
    if isinstance(deployed, str):
        return deployed.strip() == template_body.strip()
    try:  # botocore hands back a JSON template already parsed
        return bool(json.loads(json.dumps(deployed)) == json.loads(template_body))
    except ValueError:
        return False


def deploy(
    stack_name: str,
    region: str | None,
    template_body: str,
    package_path: Path,
    progress: Progress_,
    *,
    bucket: str | None = None,
    roles: list[str] | None = None,
) -> DeployResult:
    """Upload the package and create or update the stack; its Outputs, and whether it
    changed (False when template, code and ``roles`` were already deployed). ``roles``:
    the ``AllowedRoleArns`` parameter (``None`` keeps the deployed value)."""
    from botocore.exceptions import ClientError

    session = _session(region)
    s3 = session.client("s3")
    cfn = session.client("cloudformation")
    bucket = bucket or default_bucket(session)
    if ensure_bucket(s3, bucket):
        progress(f"created bucket {bucket}")
    key = upload_package(s3, bucket, package_path)
    progress(f"package at s3://{bucket}/{key}")
    stack = _describe(cfn, stack_name)
    params = _parameters(bucket, key, roles, stack)
    if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        raise CliError(
            f"stack {stack_name} is ROLLBACK_COMPLETE (a failed create); "
            "run `pushpool service destroy` first"
        )
    changed = True
    since: datetime | None = None
    if stack is None:
        try:
            stack_id = cfn.create_stack(
                StackName=stack_name,
                TemplateBody=template_body,
                Parameters=params,
                Capabilities=CAPABILITIES,
                Tags=[{"Key": "pushpool", "Value": "control-plane"}],
            )["StackId"]
        except ClientError as exc:
            raise CliError(f"stack {stack_name}: {_error_message(exc)}") from None
        progress(f"creating stack {stack_name}")
    elif _unchanged(cfn, stack, template_body, params):
        stack_id, changed = stack["StackId"], False
    else:
        stack_id = stack["StackId"]
        since = _latest_event_time(cfn, stack_id)
        try:
            cfn.update_stack(
                StackName=stack_id,
                TemplateBody=template_body,
                Parameters=params,
                Capabilities=CAPABILITIES,
            )
            progress(f"updating stack {stack_name}")
        except ClientError as exc:
            if NO_UPDATES not in _error_message(exc):
                raise CliError(f"stack {stack_name}: {_error_message(exc)}") from None
            changed = False
    if changed:
        settled = wait_for_stack(cfn, stack_id, progress, since=since)
    else:
        progress(f"stack {stack_name}: no changes")
        settled = _describe(cfn, stack_id)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (settled or {}).get("Outputs", [])}
    return DeployResult(outputs=outputs, changed=changed)


def _latest_event_time(cfn: Any, stack_id: str) -> datetime | None:
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    return events[0]["Timestamp"] if events else None


def destroy(stack_name: str, region: str | None, progress: Progress_) -> None:
    """Delete the stack and wait until it is gone."""
    from botocore.exceptions import ClientError

    session = _session(region)
    cfn = session.client("cloudformation")
    stack = _describe(cfn, stack_name)
    if stack is None:
        raise CliError(f"stack {stack_name} does not exist in {session.region_name}")
    since = _latest_event_time(cfn, stack["StackId"])
    try:
        cfn.delete_stack(StackName=stack["StackId"])
    except ClientError as exc:
        raise CliError(f"stack {stack_name}: {_error_message(exc)}") from None
    progress(f"deleting stack {stack_name}")
    wait_for_stack(cfn, stack["StackId"], progress, since=since)


def stack_exists(stack_name: str, region: str | None) -> bool:
    session = _session(region)
    return _describe(session.client("cloudformation"), stack_name) is not None


# -- display ------------------------------------------------------------------------------
@contextmanager
def rich_progress(console: Console, description: str) -> Iterator[Progress_]:
    """A spinner with elapsed time; each reported line is printed above it."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def report(line: str) -> None:
            bar.console.print(line, highlight=False)
            bar.update(task, description=f"{description} ({line})")

        yield report
