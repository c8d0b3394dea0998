"""Submitting a run: the Job Cloud Run receives, one execution per attempt whatever goes
wrong on the way, quotas as AwaitingCapacity, Google's reasons in one clear line."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from emulators.gcp import GcpEmulator
from support.cloud_run import PROJECT, REGION, TOKEN, Sleeps, request_for

from provisioners.cloud_run import CloudRunProvisioner
from provisioners.cloud_run.names import job_id
from provisioners.errors import CapacityUnavailable, ProvisionerError

JOBS = rf"/v2/projects/{PROJECT}/locations/{REGION}/jobs$"


def test_the_job_carries_the_run_and_nothing_else(
    emulator: GcpEmulator, make_provisioner: Callable[..., CloudRunProvisioner]
) -> None:
    provisioner = make_provisioner(service_account="runner@demo-project.iam.gserviceaccount.com")
    request = request_for(
        cpu=2,
        memory="4Gi",
        env={"GREETING": "hi", "PUSHPOOL_RUN_TOKEN": "deployment-cannot-override"},
        command=["python", "-m", "runner_image"],
        timeout_seconds=7200,
        labels={"team": "data"},
        network="default",
        subnetwork="default",
    )
    ref = provisioner.submit(request)
    job = emulator.run.jobs[ref.id]
    labels = {"pushpool-pool": "demo", "pushpool-run": request.run_id, "pushpool-attempt": "1"}
    assert job["labels"] == {"team": "data", **labels}
    assert job["template"]["labels"] == job["labels"]
    assert job["annotations"] == {"pushpool.dev/run-id": request.run_id}
    task = job["template"]["template"]
    [container] = task["containers"]
    assert container["image"] == "runner:test"
    assert container["command"] == ["python", "-m", "runner_image"]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4096Mi"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {**request.env, "GREETING": "hi"}  # the runner's own values win
    assert task["timeout"] == "7200s"
    assert task["serviceAccount"] == "runner@demo-project.iam.gserviceaccount.com"
    assert task.get("maxRetries", 0) == 0
    [interface] = task["vpcAccess"]["networkInterfaces"]
    assert (interface["network"], interface["subnetwork"]) == ("default", "default")
    # One create call made the job and its execution.
    assert emulator.journal.count() == 1
    assert list(emulator.run.executions) == [f"{ref.id}/executions/{ref.data['job']}-x1"]


def test_a_retried_dispatch_adopts_the_job_on_409(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    request = request_for()
    first = provisioner.submit(request)
    assert provisioner.submit(request) == first
    assert len(emulator.run.executions) == 1
    assert emulator.journal.count("POST", JOBS) == 2  # the second one answered 409


def test_a_lost_answer_is_looked_for_before_creating_again(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner, sleeps: Sleeps
) -> None:
    emulator.fail("POST", JOBS, 503, "backend unavailable", after=True)
    request = request_for()
    ref = provisioner.submit(request)
    assert ref.id.endswith(job_id(request.run_id, 1))
    assert len(emulator.run.jobs) == 1 and len(emulator.run.executions) == 1
    assert emulator.journal.count("POST", JOBS) == 1  # found by a look, not created twice
    assert sleeps == [0.5]


def test_throttling_is_retried_with_backoff(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner, sleeps: Sleeps
) -> None:
    emulator.fail("POST", JOBS, 429, "Rate exceeded", reason="RATE_LIMIT_EXCEEDED", times=2)
    provisioner.submit(request_for())
    assert len(emulator.run.executions) == 1
    assert sleeps == [0.5, 1.0]
    assert emulator.journal.count("POST", JOBS) == 3


def test_persistent_unavailability_is_a_transient_error(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    emulator.fail("POST", JOBS, 503, "backend unavailable", times=10)
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for())
    assert info.value.transient
    assert emulator.journal.count("POST", JOBS) == 4
    assert emulator.run.jobs == {}


def test_the_jobs_quota_makes_the_run_wait_for_capacity(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    emulator.run.max_jobs = 1
    provisioner.submit(request_for())
    with pytest.raises(CapacityUnavailable) as info:
        provisioner.submit(request_for())
    assert info.value.retry_after_seconds == 60.0
    assert "quota" in str(info.value).lower()
    assert emulator.journal.count("POST", JOBS) == 2  # no retry loop against a quota


def test_permission_denied_is_one_line_naming_the_permission(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    message = "Permission 'run.jobs.create' denied on resource (or it may not exist)."
    emulator.fail("POST", JOBS, 403, message, reason="IAM_PERMISSION_DENIED")
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for())
    text = str(info.value)
    assert "\n" not in text and not info.value.transient
    assert "403" in text and "run.jobs.create" in text and "IAM_PERMISSION_DENIED" in text


def test_secrets_are_scrubbed_from_errors(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    emulator.fail("POST", JOBS, 400, f"invalid value {TOKEN!r} in env")
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request_for())
    assert TOKEN not in str(info.value) and "***" in str(info.value)


def test_bad_job_variables_fail_before_any_call(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    with pytest.raises(ProvisionerError, match="memory"):
        provisioner.submit(request_for(cpu=1, memory="16Gi"))
    with pytest.raises(ProvisionerError, match="no image"):
        CloudRunProvisioner("demo", {"project": PROJECT, "region": REGION}).submit(request_for())
    assert emulator.journal.count() == 0


def test_a_crash_between_claim_and_submit_is_adopted_by_find(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    request = request_for()
    assert provisioner.find(request) is None
    started = provisioner.submit(request)  # the dispatcher that crashed before recording
    assert provisioner.find(request) == started
    other_attempt = request_for(request.run_id, attempt=2)
    assert provisioner.find(other_attempt) is None


def test_racing_dispatchers_start_one_execution(
    emulator: GcpEmulator, make_provisioner: Callable[..., CloudRunProvisioner]
) -> None:
    request = request_for()
    refs: list[str] = []
    barrier = threading.Barrier(4)

    def dispatch() -> None:
        provisioner = make_provisioner()  # each dispatcher its own process, in effect
        barrier.wait()
        refs.append(provisioner.submit(request).id)

    threads = [threading.Thread(target=dispatch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(refs) == 4 and len(set(refs)) == 1
    assert len(emulator.run.executions) == 1


def test_admin_api_writes_are_paced_by_the_pools_token_bucket(
    emulator: GcpEmulator, sleeps: Sleeps
) -> None:
    from support.cloud_run import CONFIG

    from provisioners.cloud_run.provisioner import admin_api_limiter
    from provisioners.ratelimit import TokenBucket

    clock = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(2.0, 3, clock=lambda: clock[0], sleep=sleep)
    provisioner = CloudRunProvisioner("demo", CONFIG, limiter=bucket, sleep=sleep)
    for _ in range(7):
        provisioner.submit(request_for())
    assert clock[0] == pytest.approx(2.0)  # 3 at once, then 2 per second
    configured = {**CONFIG, "api_writes_per_second": 5, "api_write_burst": 7}
    shared = admin_api_limiter(CloudRunProvisioner("a", configured).config)
    assert (shared.rate, shared.burst) == (5, 7)
    assert admin_api_limiter(CloudRunProvisioner("b", configured).config) is shared


def test_without_google_credentials_the_error_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from support.cloud_run import CONFIG

    import provisioners.cloud_run.gcp as gcp
    from provisioners.cloud_run.gcp import EMULATOR_ENV

    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"{tmp_path}/missing.json")
    monkeypatch.setattr(gcp, "_credentials", None)
    with pytest.raises(ProvisionerError) as info:
        CloudRunProvisioner("demo", CONFIG).submit(request_for())
    assert "Application Default Credentials" in str(info.value)
    assert not info.value.transient
