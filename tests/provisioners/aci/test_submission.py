"""Submitting, watching, stopping and removing container groups, against the emulator."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from emulators.azure.server import Emulator
from support.harness import Harness

from provisioners.aci import AciProvisioner
from provisioners.aci.names import group_name, is_valid_group_name
from provisioners.base import InfraState, SecretValue, SubmitRequest
from provisioners.errors import CapacityUnavailable, ProvisionerError

TOKEN = "secret-bootstrap-0123456789"

IMAGE = "pushpool-runner:test"


def request(run_id: str | None = None, attempt: int = 1, **job: object) -> SubmitRequest:
    run_id = run_id or str(uuid.uuid4())
    return SubmitRequest(
        run_id=run_id,
        attempt=attempt,
        flow_name="flow",
        deployment_name="dep",
        env={"PUSHPOOL_API_URL": "http://api", "PUSHPOOL_FLOW_RUN_ID": run_id, "X_SECRET": TOKEN},
        job_variables={"command": ["sleep", "30"], **job},
    )


def test_submit_puts_one_group_with_secure_values_and_tags(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    req = request(env={"PLAIN": "1"}, cpu=2, memory_gb=4, tags={"team": "data"})
    ref = provisioner.submit(req)
    name = group_name(req.run_id, 1)
    assert ref.data["name"] == name and ref.id.endswith(f"/containerGroups/{name}")
    assert [c.method for c in emulator.azure.requests] == ["GET", "PUT"]  # submit: 2 calls
    body = emulator.azure.calls("PUT")[0].body
    props = body["properties"]
    assert props["restartPolicy"] == "Never" and props["osType"] == "Linux"
    assert body["tags"] == {
        "team": "data",
        "pushpool-pool": "demo",
        "pushpool-run-id": req.run_id,
        "pushpool-attempt": "1",
    }
    env = props["containers"][0]["properties"]["environmentVariables"]
    assert {"name": "PLAIN", "value": "1"} in env
    for key, value in req.env.items():  # the runner's environment: secure values only
        assert {"name": key, "secureValue": value} in env
    resources = props["containers"][0]["properties"]["resources"]["requests"]
    assert resources == {"cpu": 2.0, "memoryInGB": 4.0}
    assert emulator.azure.secure_env(name)["X_SECRET"] == TOKEN
    got = provisioner.groups.get(name)
    assert TOKEN not in str(got.serialize())  # ARM never gives secure values back


def test_block_secrets_are_secure_values_never_returned(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    marker = "marker-aci-block-secret-7d21"
    base = request(env={"PLAIN": "1", "DB_PASSWORD": "{{ block:secret/db }}"})
    plain = {"PLAIN": "1"}  # the dispatcher removed the reference from the job's env
    req = dataclasses.replace(
        base,
        job_variables={**base.job_variables, "env": plain},
        secret_env={"DB_PASSWORD": SecretValue("secret/db", marker)},
    )
    name = group_name(req.run_id, 1)
    provisioner.submit(req)
    env = emulator.azure.calls("PUT")[0].body["properties"]["containers"][0]["properties"]
    assert {"name": "DB_PASSWORD", "secureValue": marker} in env["environmentVariables"]
    assert not any(e.get("value") == marker for e in env["environmentVariables"])
    assert emulator.azure.secure_env(name)["DB_PASSWORD"] == marker
    assert marker not in str(provisioner.groups.get(name).serialize())


def test_a_second_submit_adopts_the_group(provisioner: AciProvisioner, emulator: Emulator) -> None:
    req = request()
    first = provisioner.submit(req)
    assert provisioner.submit(req) == first
    assert provisioner.find(req) == first
    assert len(emulator.azure.calls("PUT")) == 1


def test_a_racing_put_is_refused_and_the_group_adopted(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    req = request()
    name = group_name(req.run_id, 1)
    # Another dispatcher's PUT lands between our GET (404) and our PUT.
    other = AciProvisioner("demo", provisioner.config.model_dump(), limiter=provisioner.limiter)
    other.submit(req)
    emulator.azure.inject("GET", f"/containerGroups/{name}$", 404, "ResourceNotFound")
    ref = provisioner.submit(req)
    assert ref.data["name"] == name
    puts = emulator.azure.calls("PUT")
    assert len(puts) == 2 and len(emulator.azure.groups) == 1


def test_group_names_follow_acis_rules() -> None:
    for run_id in (str(uuid.uuid4()), "Weird__ID--", "x" * 200, "-"):
        for attempt in (1, 12):
            name = group_name(run_id, attempt)
            assert is_valid_group_name(name), name
    assert group_name("A", 1) != group_name("a", 1)


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"cpu": 8}, "cpu 8.0: ACI allows at most 4 here"),
        ({"memory_gb": 1.25}, "steps of 0.1"),
        ({"gpu": {"count": 1, "sku": "H100"}}, "gpu.sku"),
        ({"nope": 1}, "job variable nope"),
        ({"tags": {"pushpool-run-id": "x"}}, "reserved"),
    ],
)
def test_bad_job_variables_are_clear_errors_and_create_nothing(
    provisioner: AciProvisioner, emulator: Emulator, job: dict[str, object], message: str
) -> None:
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request(**job))
    assert message in str(info.value) and not info.value.transient
    assert emulator.azure.calls("PUT") == []


def test_quota_answers_requeue_never_fail(provisioner: AciProvisioner, emulator: Emulator) -> None:
    emulator.azure.inject(
        "PUT", "/containerGroups/", 400, "ContainerGroupQuotaReached", "quota 100 exceeded"
    )
    with pytest.raises(CapacityUnavailable) as info:
        provisioner.submit(request())
    assert "ContainerGroupQuotaReached" in str(info.value)
    emulator.azure.inject("PUT", "/containerGroups/", 429, "TooManyRequests",
                          headers={"Retry-After": "42"})  # fmt: skip
    with pytest.raises(CapacityUnavailable) as info:
        provisioner.submit(request())
    assert info.value.retry_after_seconds == 42
    assert provisioner.limiter.live() == (0, 0)  # nothing was created: nothing counted live


def test_server_errors_are_transient_and_scrubbed(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    emulator.azure.inject("PUT", "/containerGroups/", 500, "InternalServerError", f"echo {TOKEN}")
    with pytest.raises(ProvisionerError) as info:
        provisioner.submit(request())
    assert info.value.transient and TOKEN not in str(info.value) and "***" in str(info.value)


def test_the_sdk_retries_a_429_with_retry_after(emulator: Emulator) -> None:
    from emulators.azure.harness import RESOURCE_GROUP, pool_config

    from provisioners.aci.quota import QuotaLimiter

    emulator.add_resource_group(RESOURCE_GROUP)
    p = AciProvisioner("demo", pool_config(), limiter=QuotaLimiter())  # production retries
    emulator.azure.inject("PUT", "/containerGroups/", 429, "TooManyRequests",
                          headers={"Retry-After": "0"})  # fmt: skip
    ref = p.submit(request())
    assert len(emulator.azure.calls("PUT")) == 2 and p.status(ref).state == InfraState.PENDING


def test_lifecycle_exit_codes_and_reasons(provisioner: AciProvisioner, emulator: Emulator) -> None:
    a = emulator.azure
    creating, oom, failed, fine = (provisioner.submit(request()) for _ in range(4))
    assert provisioner.status(creating).state == InfraState.PENDING
    a.start(oom.data["name"])
    assert provisioner.status(oom).state == InfraState.RUNNING
    a.exit(oom.data["name"], 137, "OOMKilled", logs="working\nkilled\n")
    a.fail_provisioning(failed.data["name"], "Failed", "Failed to pull image 'nope:1'")
    a.exit(fine.data["name"], 3)
    status = provisioner.status(oom)
    assert (status.state, status.exit_code) == (InfraState.EXITED, 137)
    assert "OOMKilled" in (status.reason or "")
    status = provisioner.status(failed)
    assert status.state == InfraState.EXITED and "Failed to pull image 'nope:1'" in str(status)
    assert provisioner.status(fine).exit_code == 3
    assert provisioner.log_tail(oom, 1) == ["killed"]
    many = provisioner.status_many([creating, oom, failed, fine])
    assert many == {r.id: provisioner.status(r) for r in (creating, oom, failed, fine)}


def test_a_failed_list_leaves_every_run_for_the_next_pass(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    ref = provisioner.submit(request())
    emulator.azure.inject("GET", "/containerGroups$", 503, "ServiceUnavailable")
    assert provisioner.status_many([ref]) == {}


def test_cancel_stops_then_teardown_deletes(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    ref = provisioner.submit(request())
    emulator.azure.start(ref.data["name"])
    provisioner.cancel(ref, grace_seconds=5)
    assert len(emulator.azure.calls("POST", "/stop")) == 1
    assert provisioner.status(ref).finished
    provisioner.teardown(ref)
    provisioner.teardown(ref)
    assert provisioner.status(ref).state == InfraState.MISSING
    provisioner.cancel(ref, grace_seconds=5)  # gone: nothing to do, no error
    assert provisioner.log_tail(ref) == []


def test_cancel_of_a_group_arm_will_not_stop_yet_deletes_it(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    ref = provisioner.submit(request())  # still Creating
    emulator.azure.inject("POST", "/stop$", 409, "ContainerGroupTransitioning", "being created")
    provisioner.cancel(ref, grace_seconds=5)
    assert provisioner.status(ref).state == InfraState.MISSING
    provisioner.cancel(ref, grace_seconds=5)  # gone already: nothing to do, no error
    emulator.azure.inject("POST", "/stop$", 500, "InternalServerError")
    with pytest.raises(ProvisionerError) as info:  # other errors are the caller's to retry
        provisioner.cancel(ref, grace_seconds=5)
    assert info.value.transient


def test_sweep_finds_only_this_pools_groups_of_finished_runs(
    provisioner: AciProvisioner, emulator: Emulator
) -> None:
    live, dead = request(), request()
    for req in (live, dead):
        provisioner.submit(req)
    other = AciProvisioner("other", provisioner.config.model_dump(), limiter=provisioner.limiter)
    other.submit(request())
    orphans = provisioner.list_orphans({live.run_id})
    assert [o.data["run_id"] for o in orphans] == [dead.run_id]
    assert provisioner.infra_links(orphans[0])["container_group"].startswith(
        "https://portal.azure.com/"
    )


def test_the_conformance_harness_is_the_emulator(harness_aci: Harness) -> None:
    assert harness_aci.provisioner.type == "aci"


@pytest.fixture
def harness_aci() -> object:
    from emulators.azure.harness import aci_harness

    yield from aci_harness()


def test_runs_with_the_pools_identity_get_its_client_id_for_default_azure_credential() -> None:
    from emulators.azure.harness import pool_config

    from provisioners.aci.models import AciJobVariables, AciPoolConfig
    from provisioners.aci.spec import group_spec

    identities = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity"
    own = f"{identities}/userAssignedIdentities/own"
    other = own.replace("/own", "/other")
    config = AciPoolConfig.model_validate(
        pool_config(identity_id=own, identity_client_id="00000000-0000-0000-0000-0000000000c1")
    )
    request = SubmitRequest("r1", 1, "f", "d", env={"PUSHPOOL_FLOW_RUN_ID": "r1"})

    def env_of(job: AciJobVariables) -> dict[str, str | None]:
        spec = group_spec(config, "demo", "g1", request, job)
        return {v.name: v.value for v in spec.body.containers[0].environment_variables}

    assert env_of(AciJobVariables())["AZURE_CLIENT_ID"] == "00000000-0000-0000-0000-0000000000c1"
    assert "AZURE_CLIENT_ID" not in env_of(AciJobVariables(identity=other))  # not the pool's
    mine = AciJobVariables(env={"AZURE_CLIENT_ID": "mine"})
    assert env_of(mine)["AZURE_CLIENT_ID"] == "mine"  # the deployment's own wins
