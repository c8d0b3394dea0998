"""End to end for ``cloud-run`` pools against the GCP emulator on loopback.

The CLI provisions a pool with the real Google client libraries; an example flow is
deployed and run; the test stands in for the container (the job's command, or the
runner image's entry point, with the job's environment, run on this machine) so the
real runner takes the run to ``COMPLETED`` with its logs; the execution then ends in the
emulator and teardown deletes the job. A run whose task exits 137 without a report is
``CRASHED`` with that code and Cloud Run's reason; a cancel reaches the execution; a job
left by a crashed dispatcher is swept; deprovisioning leaves the project as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulators.gcp import GcpEmulator, running_emulator
from support.e2e import cli_server, get_run, invoke
from support.factories import EXAMPLES, etl_deployment_body
from support.server import LiveServer

from provisioners.base import SubmitRequest, get_provisioner
from provisioners.cloud_run.gcp import EMULATOR_ENV
from provisioners.cloud_run.infra.results import bucket_name

pytestmark = pytest.mark.slow

PROJECT = "p"  # the issue's own example: a one-letter project id
REGION = "us-central1"
POOL = "demo"
IMAGE_ENTRYPOINT = [sys.executable, "-m", "runner_image"]
OOM = "Container terminated: the memory limit was exceeded (exit code 137)"
PROVISIONED = (
    "api run.googleapis.com",
    "api artifactregistry.googleapis.com",
    "api iam.googleapis.com",
    "api secretmanager.googleapis.com",
    "service-account pushpool-demo",
    "project-iam-binding roles/logging.logWriter serviceAccount:pushpool-demo@"
    f"{PROJECT}.iam.gserviceaccount.com",
    "artifact-registry-repository pushpool-demo",
    f"storage-bucket {bucket_name(POOL, PROJECT)}",
    "bucket-iam-binding roles/storage.objectAdmin serviceAccount:pushpool-demo@"
    f"{PROJECT}.iam.gserviceaccount.com",
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcpEmulator]:
    with running_emulator() as emulator, pytest.MonkeyPatch.context() as env:
        env.setenv(EMULATOR_ENV, emulator.url)
        yield emulator


@pytest.fixture
def live(
    emulator: GcpEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    with cli_server(tmp_path / "home", monkeypatch, report_grace_seconds=0) as server:
        yield server


def start_run(live: LiveServer, emulator: GcpEmulator, deployment_id: str) -> dict[str, Any]:
    r = live.client.post(f"/deployments/{deployment_id}/runs", json={})
    assert r.status_code == 201, r.text
    run: dict[str, Any] = r.json()
    assert run["state"]["type"] == "PENDING", run
    assert run["infra"]["type"] == "cloud-run"
    emulator.run.start(run["infra"]["id"])  # Cloud Run starts the container
    return run


def stand_in_for_the_container(
    emulator: GcpEmulator, run: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Run what Cloud Run would run for the run's job: its command (or the image's entry
    point) and args, with the container's environment."""
    job = emulator.run.jobs[run["infra"]["id"]]
    [container] = job["template"]["template"]["containers"]
    command = [*(container.get("command") or IMAGE_ENTRYPOINT), *container.get("args", [])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUSHPOOL_")}
    env.update({e["name"]: e["value"] for e in container["env"]})
    env["STORAGE_EMULATOR_HOST"] = emulator.url  # Cloud Storage is the emulator's too
    assert env["PUSHPOOL_FLOW_RUN_ID"] == run["id"]
    return subprocess.run(
        command, cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=60
    )


def results_in_the_pool_bucket(emulator: GcpEmulator, live: LiveServer, storage: str) -> None:
    """The ETL example (a pushpool flow with cached, so persisted, task results) on the
    pool: its results land under the prefix of the bucket provisioning made, and the
    flow's result is the run's."""
    bucket, _, prefix = storage.removeprefix("gs://").partition("/")
    r = live.client.post("/deployments", json=etl_deployment_body(POOL))
    assert r.status_code == 201, r.text
    run = start_run(live, emulator, r.json()["id"])
    proc = stand_in_for_the_container(emulator, run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = get_run(live, run["id"])
    assert done["state"]["type"] == "COMPLETED" and done["result"] == 3, done
    code, out = invoke("runs", "result", run["id"])
    assert code == 0 and out.strip() == "3", out
    keys = list(emulator.storage.buckets[bucket].objects)
    assert len(keys) >= 3 and all(k.startswith(f"{prefix}/") for k in keys), keys
    emulator.run.finish(run["infra"]["id"], 0)
    assert tick(live)["reconcile"]["torn_down"] == 1
    assert live.client.delete(f"/deployments/{run['deployment_id']}").status_code == 204


def tick(live: LiveServer) -> dict[str, Any]:
    report: dict[str, Any] = live.client.post("/scheduler/tick").json()
    return report


def test_cloud_run_pool_end_to_end_against_the_emulator(
    emulator: GcpEmulator, live: LiveServer
) -> None:
    project = emulator.project(PROJECT)
    project.services["run.googleapis.com"] = "ENABLED"  # already on: used, never disabled
    before = project.snapshot()

    # -- provision with the CLI ------------------------------------------------------------
    args = ("--set", f"project={PROJECT}", "--set", f"region={REGION}")
    code, out = invoke("work-pool", "create", POOL, "--type", "cloud-run", *args,
                       "--provision-infra", "--yes")  # fmt: skip
    assert code == 0, out
    assert out.count("will create") == len(PROVISIONED) - 1, out
    for resource in PROVISIONED[1:]:
        assert f"created {resource}" in out.replace("\n", ""), (resource, out)
    assert "roles/logging.logWriter" in out and "roles/iam.serviceAccountUser" in out
    assert "docker push" in out
    config = live.client.get(f"/work-pools/{POOL}").json()["config"]
    assert config["service_account"] == f"pushpool-demo@{PROJECT}.iam.gserviceaccount.com"
    assert config["result_storage"] == f"gs://{bucket_name(POOL, PROJECT)}/results"
    assert config["image"].startswith(f"{REGION}-docker.pkg.dev/{PROJECT}/pushpool-demo/")
    code, out = invoke("work-pool", "provision-infra", POOL, "--yes")
    assert code == 0 and "Nothing to create" in out and "will create" not in out, out

    # -- deploy and run: the test plays the container --------------------------------------
    body = {
        "name": "e2e",
        "flow_name": "hello",
        "entrypoint": "hello.py:hello",
        "work_pool": POOL,
        "source": {"type": "image"},
        "job_variables": {"cpu": 1, "memory": "1Gi"},
    }
    r = live.client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    deployment_id = r.json()["id"]

    run = start_run(live, emulator, deployment_id)
    job = emulator.run.jobs[run["infra"]["id"]]
    assert job["labels"]["pushpool-pool"] == POOL and job["labels"]["pushpool-run"] == run["id"]
    [container] = job["template"]["template"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1024Mi"}
    assert job["template"]["template"]["serviceAccount"] == config["service_account"]
    proc = stand_in_for_the_container(emulator, run)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = get_run(live, run["id"])
    assert done["state"]["type"] == "COMPLETED", done
    assert done["result"] == "Hello, world!"
    logs = live.client.get(f"/flow-runs/{run['id']}/logs").json()["logs"]
    assert "Hello, world!" in [line["message"] for line in logs]
    assert set(done["infra_links"]) == {"job", "logs", "execution_logs"}

    # -- the execution ends; teardown deletes the job (and the environment in it) ---------
    emulator.run.finish(run["infra"]["id"], 0)
    report = tick(live)
    assert report["reconcile"]["torn_down"] == 1, report
    assert run["infra"]["id"] not in emulator.run.jobs
    results_in_the_pool_bucket(emulator, live, config["result_storage"])

    # -- a task killed for memory, without the runner's report: CRASHED with the code ----
    lost = start_run(live, emulator, deployment_id)
    emulator.run.finish(lost["infra"]["id"], 137, OOM)
    report = tick(live)
    assert report["reconcile"]["crashed"] == 1, report
    crashed = get_run(live, lost["id"])
    assert crashed["state"]["type"] == "CRASHED", crashed
    assert "memory limit was exceeded" in crashed["state"]["message"]
    assert crashed["error"]["exit_code"] == 137
    assert lost["infra"]["id"] not in emulator.run.jobs

    # -- cancel reaches the execution ------------------------------------------------------
    cancelled = start_run(live, emulator, deployment_id)
    r = live.client.post(f"/flow-runs/{cancelled['id']}/cancel")
    assert r.status_code == 200, r.text
    execution = emulator.run.execution_of(cancelled["infra"]["id"])
    assert execution["cancelledCount"] == 1
    tick(live)
    assert get_run(live, cancelled["id"])["state"]["type"] == "CANCELLED"
    assert cancelled["infra"]["id"] not in emulator.run.jobs

    # -- the region's jobs quota is full: the run waits, it does not fail -----------------
    emulator.run.max_jobs = 0
    r = live.client.post(f"/deployments/{deployment_id}/runs", json={})
    assert r.status_code == 201, r.text
    waiting = r.json()
    assert (waiting["state"]["type"], waiting["state"]["name"]) == ("SCHEDULED", "AwaitingCapacity")
    assert "quota" in waiting["state"]["message"].lower()
    emulator.run.max_jobs = None
    assert live.client.post(f"/flow-runs/{waiting['id']}/cancel").status_code == 200

    # -- a job a crashed dispatcher left behind (its run is over) is swept --------------
    pool_config = live.client.get(f"/work-pools/{POOL}").json()["config"]
    stray = get_provisioner("cloud-run", POOL, pool_config).submit(
        SubmitRequest("a-run-that-is-over", 1, "hello", "e2e", env={"PUSHPOOL_X": "y"})
    )
    assert list(emulator.run.jobs) == [stray.id]
    assert live.services.scheduler.reconciler.sweep_orphans() == 1
    assert emulator.run.jobs == {}

    # -- deprovision: the project is as it was ----------------------------------------------
    assert live.client.delete(f"/deployments/{deployment_id}").status_code == 204
    code, out = invoke("work-pool", "delete", POOL, "--deprovision", "--yes")
    assert code == 0, out
    for resource in PROVISIONED[1:]:
        assert f"removed {resource}" in out.replace("\n", ""), (resource, out)
    assert live.client.get(f"/work-pools/{POOL}").status_code == 404
    assert project.snapshot() == before
    assert emulator.storage.buckets == {}  # emptied, then removed
