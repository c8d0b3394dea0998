"""The Lambda function as the stack deploys it, in a fresh interpreter (run by
``test_as_deployed.py``, not collected by pytest).

What the Lambda package leaves out cannot be imported here: the CLI (typer, rich, httpx),
the local server (uvicorn) and the SQL store (sqlalchemy). The environment is the
template's (``PUSHPOOL_DYNAMODB_TABLE``, ``PUSHPOOL_DYNAMODB_CREATE_TABLE=false``,
``PUSHPOOL_ADMIN_API_KEY_SECRET_ARN``); AWS is moto, in this process. This script stands
in for the stack (the table, the secret) and for ECS (a pool's cluster, roles and network;
the task's death), then feeds the handler real-shaped events and prints what it saw as
one JSON line.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from support.factories import (
    ecs_task_stopped_event,
    http_v2_event,
    image_deployment_body,
    sample_event,
)

#: Left out of the Lambda package (service/cli/deploy_stack.py); must stay unimported.
LOCAL_ONLY = ("typer", "rich", "httpx", "uvicorn", "sqlalchemy", "alembic")
#: SDKs of other clouds: never loaded by an AWS function.
OTHER_CLOUDS = (
    "google.cloud.run_v2",
    "google.cloud.storage",
    "azure.mgmt.containerinstance",
    "azure.mgmt.storage",
    "azure.storage",
)
REGION = "us-east-1"


class NotPackaged(importlib.abc.MetaPathFinder):
    """Makes importing a left-out distribution fail, as it would on Lambda."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in LOCAL_ONLY:
            raise ImportError(f"{name} is not in the Lambda package")


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def http_v1(method: str, path: str, key: str, body: Any) -> dict[str, Any]:
    event = sample_event("apigw-rest-v1-get.json")
    event.update(httpMethod=method, path=path, resource="/{proxy+}", body=json.dumps(body))
    event.update(queryStringParameters=None, multiValueQueryStringParameters=None)
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    event["headers"] = headers
    event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    event["isBase64Encoded"] = False
    event["requestContext"].update(httpMethod=method, path=f"/prod{path}")
    return event


def ecs_network(boto3: Any) -> dict[str, Any]:
    """What provisioning an ``ecs`` pool records (made directly: provisioning is the CLI's)."""
    ec2 = boto3.client("ec2", region_name=REGION)
    subnet = ec2.describe_subnets()["Subnets"][0]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [subnet["VpcId"]]}]
    )["SecurityGroups"]
    cluster = boto3.client("ecs", region_name=REGION).create_cluster(
        clusterName="pushpool-demo", capacityProviders=["FARGATE", "FARGATE_SPOT"]
    )["cluster"]["clusterArn"]
    iam = boto3.client("iam", region_name=REGION)
    execution, task = (
        iam.create_role(RoleName=f"pushpool-demo-{kind}", AssumeRolePolicyDocument="{}")["Role"][
            "Arn"
        ]
        for kind in ("execution", "task")
    )
    return {
        "region": REGION,
        "cluster": cluster,
        "subnets": [subnet["SubnetId"]],
        "security_groups": [groups[0]["GroupId"]],
        "execution_role_arn": execution,
        "task_role_arn": task,
        "log_group": "/pushpool/demo",
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/pushpool/demo:latest",
    }


def main() -> None:
    import boto3
    from moto import mock_aws
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends
    from moto.moto_api import state_manager

    sys.meta_path.insert(0, NotPackaged())
    out: dict[str, Any] = {"preloaded": sorted(m for m in sys.modules if m in LOCAL_ONLY)}
    with mock_aws():
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        # -- what the stack creates ---------------------------------------------------
        from service.store.dynamo import DynamoStore

        DynamoStore(os.environ["PUSHPOOL_DYNAMODB_TABLE"]).migrate()
        key = "pp_" + "k" * 40
        os.environ["PUSHPOOL_ADMIN_API_KEY_SECRET_ARN"] = boto3.client(
            "secretsmanager", region_name=REGION
        ).create_secret(Name="pushpool-admin", SecretString=key)["ARN"]
        config = ecs_network(boto3)

        # -- the function ------------------------------------------------------------
        from service.lambda_handler import handler as function
        from service.lambda_handler import services

        ctx = Context()
        bodies: list[str] = []

        def handler(event: dict[str, Any], context: Context) -> Any:
            response = function(event, context)
            bodies.append(json.dumps(response))
            return response

        out["health"] = handler(http_v2_event("/api/health"), ctx)["statusCode"]
        pool = {"name": "demo", "type": "ecs", "config": config}
        out["create_pool"] = handler(http_v1("POST", "/api/work-pools", key, pool), ctx)[
            "statusCode"
        ]
        deployment = image_deployment_body("demo")
        created = handler(http_v2_event("/api/deployments", key, "POST", deployment), ctx)
        out["deploy"] = created["statusCode"]
        dep_id = json.loads(created["body"])["id"]
        # Due a moment from now, so the request does not push it: the scheduled tick does.
        soon = datetime.now(UTC) + timedelta(seconds=1)
        body = {"scheduled_start": soon.isoformat()}
        run = handler(http_v2_event(f"/api/deployments/{dep_id}/runs", key, "POST", body), ctx)
        out["create_run"] = run["statusCode"]
        run_id = json.loads(run["body"])["id"]
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
        out["tick"] = handler(sample_event("eventbridge-scheduled.json"), ctx)
        pending = json.loads(handler(http_v2_event(f"/api/flow-runs/{run_id}", key), ctx)["body"])
        out["pending_state"] = pending["state"]["type"]
        task_arn = pending["infra"]["id"]
        ecs = boto3.client("ecs", region_name=REGION)
        described = ecs.describe_tasks(cluster=config["cluster"], tasks=[task_arn])["tasks"]
        out["task_started_by"] = described[0].get("startedBy")

        # -- the container dies of memory; ECS's event arrives ------------------------
        ecs.stop_task(cluster=config["cluster"], task=task_arn, reason="OutOfMemoryError")
        for tasks in ecs_backends[DEFAULT_ACCOUNT_ID][REGION].tasks.values():
            if task_arn in tasks:
                tasks[task_arn].containers[0].exitCode = 137
        stopped = ecs_task_stopped_event(task_arn, run_id, config["cluster"])
        out["stop_event"] = handler(stopped, ctx)
        final = json.loads(handler(http_v2_event(f"/api/flow-runs/{run_id}", key), ctx)["body"])
        out["final_state"] = final["state"]["type"]
        out["exit_code"] = (final.get("error") or {}).get("exit_code")
        out["teardowns_left"] = len(services().store.pending_teardowns(10))
        out["run_id"] = run_id
    out["key_in_a_response"] = any(key in body for body in bodies)
    out["loaded"] = sorted(
        m for m in sys.modules if m.partition(".")[0] in LOCAL_ONLY or m.startswith(OTHER_CLOUDS)
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
