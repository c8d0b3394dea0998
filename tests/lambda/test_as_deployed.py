"""The function as the stack deploys it: a fresh interpreter without what the Lambda
package leaves out, the template's environment, DynamoDB and ECS in moto; API Gateway
events (2.0 and 1.0) set up a pool, a deployment and a run, the scheduled event's tick
dispatches the run to ECS, and ECS's stop event makes it final at once."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import deploy_stack

CHILD = Path(__file__).with_name("deployed_function.py")
REPO = Path(__file__).resolve().parents[2]


def test_the_child_blocks_exactly_what_the_package_leaves_out() -> None:
    spec = importlib.util.spec_from_file_location("deployed_function", CHILD)
    assert spec is not None and spec.loader is not None
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    assert set(child.LOCAL_ONLY) == set(deploy_stack.LOCAL_ONLY)


@pytest.mark.slow
def test_function_as_deployed_runs_a_flow_run_to_a_final_state(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PUSHPOOL_HOME": str(tmp_path / "home"),
        # As infra/aws/template.yaml sets them (the secret's ARN is the child's: moto's).
        "PUSHPOOL_DYNAMODB_TABLE": "pushpool",
        "PUSHPOOL_DYNAMODB_CREATE_TABLE": "false",
        "PUSHPOOL_PUBLIC_API_URL": "https://x.execute-api.us-east-1.amazonaws.com",
    }
    proc = subprocess.run(
        [sys.executable, str(CHILD)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen.pop("preloaded") == []  # nothing blocked was in before the function
    assert seen.pop("loaded") == []  # ... nor after: no CLI, server, SQL or other cloud
    assert seen.pop("key_in_a_response") is False
    run_id = seen.pop("run_id")
    assert seen.pop("tick")["dispatched"] == 1
    assert seen == {
        "health": 200,
        "create_pool": 201,
        "deploy": 201,
        "create_run": 201,
        "pending_state": "PENDING",
        "task_started_by": run_id,
        "stop_event": {"handled": True, "run_id": run_id, "outcome": "crashed"},
        "final_state": "CRASHED",
        "exit_code": 137,
        "teardowns_left": 0,
    }
