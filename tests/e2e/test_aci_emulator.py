"""End to end for ``aci`` pools against the ARM emulator on loopback.

The CLI provisions a pool in an empty emulated subscription; the hello example is
deployed on it and run. The test stands in for the container: it runs what the
container group asked for (the image's entry point, the group's command) with the
group's environment, secure values included, so the real runner takes the run to
``COMPLETED`` with its logs; the emulator then reports the container terminated and the
tick deletes the group. A container killed with 137 crashes its run with the code and
ACI's reason; a cancel stops the group; a stray group of a finished run is swept;
deprovisioning leaves the subscription as it was.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulators.azure.server import SUBSCRIPTION, Emulator, emulated
from support.e2e import cli_server, invoke
from support.factories import EXAMPLES, deployment_body, etl_deployment_body
from support.server import LiveServer

pytestmark = pytest.mark.slow

POOL = "demo"
#: The runner image's ENTRYPOINT (runner_image/Dockerfile), with this interpreter.
IMAGE_ENTRYPOINT = [sys.executable, "-m", "runner_image"]


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with emulated(monkeypatch) as emu:
        yield emu


@pytest.fixture
def live(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    with cli_server(tmp_path / "home", monkeypatch, report_grace_seconds=0) as server:
        yield server


def get_run(live: LiveServer, run_id: str) -> dict[str, Any]:
    r = live.client.get(f"/flow-runs/{run_id}")
    assert r.status_code == 200, r.text
    run: dict[str, Any] = r.json()
    return run


def start_run(
    live: LiveServer, deployment_id: str, emulator: Emulator
) -> tuple[dict[str, Any], str]:
    r = live.client.post(f"/deployments/{deployment_id}/runs", json={})
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    assert run["state"]["type"] == "PENDING" and run["infra"]["type"] == "aci", run
    name = run["infra"]["data"]["name"]
    emulator.azure.start(name)
    return run, name


def stand_in_for_the_container(emulator: Emulator, name: str) -> subprocess.CompletedProcess[str]:
    props = emulator.azure.group(name).body["properties"]["containers"][0]["properties"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    env |= emulator.azure.secure_env(name)
    storage = env.get("PUSHPOOL_RESULT_STORAGE", "")
    if storage.startswith("az://"):  # the emulator's Blob endpoint stands in for Azure's
        env["AZURE_STORAGE_CONNECTION_STRING"] = emulator.connection_string(
            storage[5:].split("/")[0]
        )
    return subprocess.run(
        [*IMAGE_ENTRYPOINT, *(props.get("command") or [])],
        cwd=EXAMPLES,  # source {"type": "image"}: the code is in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def results_in_the_pool_container(emulator: Emulator, live: LiveServer, storage: str) -> None:
    """The ETL example (a pushpool flow with cached, so persisted, task results) on the
    pool: its results land in the container provisioning made; the flow's result is the
    run's, as ``pushpool runs result`` prints it."""
    account, container = storage.removeprefix("az://").split("/")
    r = live.client.post("/deployments", json=etl_deployment_body(POOL))
    assert r.status_code == 201, r.text
    run, name = start_run(live, r.json()["id"], emulator)
    assert emulator.azure.secure_env(name)["PUSHPOOL_RESULT_STORAGE"] == storage
    proc = stand_in_for_the_container(emulator, name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = get_run(live, run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == 3, done
    code, out = invoke("runs", "result", run["id"])
    assert code == 0 and out.strip() == "3", out
    assert len(emulator.blobs.keys(account, container)) >= 3
    emulator.azure.exit(name, 0)
    assert live.client.post("/scheduler/tick").json()["reconcile"]["torn_down"] == 1
    assert live.client.delete(f"/deployments/{run['deployment_id']}").status_code == 204


def test_aci_pool_end_to_end_against_the_arm_emulator(emulator: Emulator, live: LiveServer) -> None:
    azure = emulator.azure
    before = copy.deepcopy(azure.resources)

    # -- provision with the CLI; a second time plans nothing ----------------------------
    code, out = invoke(
        "work-pool", "create", POOL, "--type", "aci",
        "--set", f"subscription_id={SUBSCRIPTION}",
        "--set", "resource_group=pushpool-demo",
        "--set", "location=westeurope",
        "--provision-infra", "--yes",
    )  # fmt: skip
    assert code == 0, out
    assert out.count("will create") == 9 and "created container-registry" in out, out
    assert "created storage-account" in out and "created storage-lifecycle-policy" in out
    code, out = invoke("work-pool", "provision-infra", POOL, "--yes")
    assert code == 0 and "Nothing to create" in out, out

    body = deployment_body(
        name="e2e", work_pool=POOL, source={"type": "image"}, job_variables={"cpu": 0.5}
    )
    r = live.client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    deployment_id = r.json()["id"]

    # -- a run: the test plays the container, the real runner completes it ---------------
    run, name = start_run(live, deployment_id, emulator)
    group = azure.group(name).body
    assert group["identity"]["type"] == "UserAssigned"
    identity = next(r for r in azure.resources.values() if r["name"] == "pushpool-demo"
                    and r["type"].endswith("userAssignedIdentities"))  # fmt: skip
    # DefaultAzureCredential in the container picks the pool's identity (the az:// store)
    assert azure.secure_env(name)["AZURE_CLIENT_ID"] == identity["properties"]["clientId"]
    assert group["properties"]["imageRegistryCredentials"][0]["identity"].endswith(
        "/userAssignedIdentities/pushpool-demo"
    )
    # The run's credential (whatever its variable) is nowhere in what the API shows.
    secrets = set(azure.secure_env(name).values()) - {run["id"], live.url}
    assert secrets
    shown = str(live.client.get(f"/flow-runs/{run['id']}").json())
    assert not [s for s in secrets if s in shown]
    proc = stand_in_for_the_container(emulator, name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = get_run(live, run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == "Hello, world!", done
    logs = live.client.get(f"/flow-runs/{run['id']}/logs").json()["logs"]
    assert "Hello, world!" in [line["message"] for line in logs]
    assert done["infra_links"]["container_group"].endswith(f"/containerGroups/{name}/overview")
    azure.exit(name, 0)
    report = live.client.post("/scheduler/tick").json()
    assert report["reconcile"]["torn_down"] == 1, report
    assert azure.groups == {}
    storage = live.client.get(f"/work-pools/{POOL}").json()["config"]["result_storage"]
    assert storage.startswith("az://pp") and storage.endswith("/results")
    results_in_the_pool_container(emulator, live, storage)

    # -- a container killed for memory: CRASHED with the code and ACI's reason ---------
    lost, name = start_run(live, deployment_id, emulator)
    azure.exit(name, 137, "OOMKilled", logs="allocating\nKilled\n")
    provisioner = live.services.dispatcher.provisioner(POOL)
    assert provisioner.log_tail(provisioner_ref(lost)) == ["allocating", "Killed"]
    report = live.client.post("/scheduler/tick").json()
    assert report["reconcile"]["crashed"] == 1, report
    crashed = get_run(live, lost["id"])
    assert crashed["state"]["type"] == "CRASHED" and "OOMKilled" in crashed["state"]["message"]
    assert crashed["error"]["exit_code"] == 137
    assert azure.groups == {}
    code, out = invoke("runs", "logs", lost["id"])  # the container's own last words
    assert code == 0 and "allocating" in out and "Killed" in out, out

    # -- cancel stops the group; the tick finishes the cancel and deletes it -------------
    cancelled, name = start_run(live, deployment_id, emulator)
    r = live.client.post(f"/flow-runs/{cancelled['id']}/cancel")
    assert r.status_code == 200, r.text
    assert len(azure.calls("POST", f"/containerGroups/{name}/stop")) == 1
    live.client.post("/scheduler/tick")
    assert get_run(live, cancelled["id"])["state"]["type"] == "CANCELLED"
    assert azure.groups == {}

    # -- a stray group of a finished run is swept ------------------------------------------
    stray = provisioner.submit(request_for(lost["id"], attempt=9))  # no run has attempt 9
    assert len(azure.groups) == 1
    assert live.services.scheduler.reconciler.sweep_orphans() == 1
    assert azure.groups == {} and stray.data["run_id"] == lost["id"]

    # -- deprovision: the subscription as it was ----------------------------------------
    assert live.client.delete(f"/deployments/{deployment_id}").status_code == 204
    code, out = invoke("work-pool", "delete", POOL, "--deprovision", "--yes")
    assert code == 0, out
    assert azure.resources == before and azure.groups == {}
    assert emulator.blobs.keys(*storage.removeprefix("az://").split("/")) == []


def provisioner_ref(run: dict[str, Any]) -> Any:
    from provisioners.base import InfraRef

    return InfraRef.model_validate(run["infra"])


def request_for(run_id: str, attempt: int) -> Any:
    from provisioners.base import SubmitRequest

    return SubmitRequest(run_id, attempt, "hello", "e2e", env={}, job_variables={})
