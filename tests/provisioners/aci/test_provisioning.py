"""Provisioning an ACI pool with the CLI against the ARM emulator: plan, create, record,
re-plan (nothing), deprovision (exactly what was created, the subscription as before)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulators.azure.server import SUBSCRIPTION, Emulator
from support.e2e import cli_server, invoke
from support.server import LiveServer

from provisioners.aci import AciProvisioner
from provisioners.aci.infra.resources import CONTROL_PLANE_ACTIONS, SUBNET_JOIN_ACTION

pytestmark = pytest.mark.slow
PRINCIPAL = "11111111-2222-3333-4444-555555555555"
KINDS = (
    "resource-group",
    "managed-identity",
    "container-registry",
    "role-assignment acr-pull",
    "custom-role",
    "role-assignment control-plane",
    "storage-account",
    "blob-container",
    "storage-lifecycle-policy",
    "role-assignment results-writer",
)


@pytest.fixture
def live(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    with cli_server(tmp_path / "home", monkeypatch) as server:
        yield server


def create_args(rg: str) -> list[str]:
    return [
        "work-pool", "create", "demo", "--type", "aci",
        "--set", f"subscription_id={SUBSCRIPTION}",
        "--set", f"resource_group={rg}",
        "--set", "location=westeurope",
        "--set", f"control_plane_principal_id={PRINCIPAL}",
        "--provision-infra", "--yes",
    ]  # fmt: skip


def test_provision_then_replan_then_deprovision(emulator: Emulator, live: LiveServer) -> None:
    before = copy.deepcopy(emulator.azure.resources)
    code, out = invoke(*create_args("pushpool-demo"))
    assert code == 0, out
    assert out.count("will create") == len(KINDS), out
    for kind in KINDS:
        assert f"created {kind}" in out, (kind, out)
    assert "Microsoft.ContainerInstance/containerGroups/write" in out
    assert "docker push" in out
    config = live.client.get("/work-pools/demo").json()["config"]
    assert config["identity_id"].endswith("/userAssignedIdentities/pushpool-demo")
    assert config["image"].endswith(".azurecr.io/pushpool-runner:latest")
    assert len(config["provisioned"]) == len(KINDS)
    stored = emulator.azure.resources
    tagged = [r for r in stored.values() if (r.get("tags") or {}).get("pushpool-pool") == "demo"]
    assert len(tagged) == 4  # group, identity, registry, storage account: the rest take none
    role = next(r for r in stored.values() if r["type"].endswith("roleDefinitions"))
    assert role["properties"]["permissions"][0]["actions"] == CONTROL_PLANE_ACTIONS
    assignments = [r for r in stored.values() if r["type"].endswith("roleAssignments")]
    assert {a["properties"]["principalId"] for a in assignments} >= {PRINCIPAL}

    code, out = invoke("work-pool", "provision-infra", "demo", "--yes")
    assert code == 0, out
    assert "Nothing to create" in out and "will create" not in out
    puts = len(emulator.azure.calls("PUT"))

    code, out = invoke("work-pool", "delete", "demo", "--deprovision", "--yes")
    assert code == 0, out
    assert out.count("removed ") == len(KINDS), out
    assert emulator.azure.resources == before
    assert len(emulator.azure.calls("PUT")) == puts


def test_an_existing_resource_group_is_used_and_never_removed(
    emulator: Emulator, live: LiveServer
) -> None:
    rg = emulator.add_resource_group("theirs")
    code, out = invoke(*create_args("theirs"))
    assert code == 0, out
    assert "created resource-group" not in out
    provisioned = live.client.get("/work-pools/demo").json()["config"]["provisioned"]
    assert "resource-group" not in {r["resource"] for r in provisioned}
    assert len(provisioned) == len(KINDS) - 1
    code, out = invoke("work-pool", "delete", "demo", "--deprovision", "--yes")
    assert code == 0, out
    assert list(emulator.azure.resources) == [rg.lower()]


def test_a_refused_create_is_one_line_with_arms_code(emulator: Emulator) -> None:
    from emulators.azure.harness import pool_config

    emulator.azure.inject("PUT", r"/registries/", 403, "AuthorizationFailed", "no write here")
    p = AciProvisioner("demo", pool_config(resource_group="pushpool-demo"))
    with pytest.raises(Exception) as info:
        p.provision(p.plan())
    message = str(info.value)
    assert "AuthorizationFailed: no write here" in message and "\n" not in message
    assert "already in place: resource-group/pushpool-demo, managed-identity" in message


def test_subnets_get_the_join_action_and_an_assignment_each(emulator: Emulator) -> None:
    from emulators.azure.harness import pool_config

    emulator.add_resource_group("net")
    subnet = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/net/providers/"
        "Microsoft.Network/virtualNetworks/vnet/subnets/aci"
    )
    base = pool_config(resource_group="pushpool-demo", control_plane_principal_id=PRINCIPAL)
    first = AciProvisioner("demo", base)
    recorded = first.provision(first.plan())
    stored = emulator.azure.resources
    role = next(r for r in stored.values() if r["type"].endswith("roleDefinitions"))
    assert SUBNET_JOIN_ACTION not in role["properties"]["permissions"][0]["actions"]

    p = AciProvisioner("demo", {**base, **recorded, "subnet_ids": [subnet]})
    plan = p.plan()
    assert [(s.resource, s.name) for s in plan.to_create] == [
        ("custom-role", "pushpool-demo-control-plane"), ("role-assignment", "subnet-join-1"),
    ]  # fmt: skip
    recorded = p.provision(plan)
    role = next(r for r in stored.values() if r["type"].endswith("roleDefinitions"))
    assert role["properties"]["permissions"][0]["actions"] == [
        *CONTROL_PLANE_ACTIONS, SUBNET_JOIN_ACTION,
    ]  # fmt: skip
    assert [s.lower() for s in role["properties"]["assignableScopes"]] == [
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/pushpool-demo",
        f"/subscriptions/{SUBSCRIPTION}/resourcegroups/net",
    ]
    on_subnet = [
        r for r in stored.values()
        if r["type"].endswith("roleAssignments") and r["properties"]["scope"] == subnet
    ]  # fmt: skip
    assert [a["properties"]["principalId"] for a in on_subnet] == [PRINCIPAL]
    assert (
        SUBNET_JOIN_ACTION
        in p.setup_notes()["Azure role the control plane needs in this resource group"]
    )
    done = AciProvisioner("demo", {**base, **recorded, "subnet_ids": [subnet]})
    assert done.plan().empty
    done.deprovision()
    assert list(stored) == [f"/subscriptions/{SUBSCRIPTION}/resourcegroups/net"]


def test_the_result_store_is_private_expiring_and_only_the_identitys(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emulators.azure.harness import pool_config
    from emulators.azure.resources import BLOB_CONTRIBUTOR

    from provisioners.aci.names import storage_account_name
    from pushpool.errors import ResultNotFound
    from pushpool.results import AzureBlobResultStore, parse_result_storage, store_for

    config = pool_config(resource_group="pushpool-demo", result_retention_days=7)
    first = AciProvisioner("demo", config)
    values = first.provision(first.plan())
    account = storage_account_name("demo", SUBSCRIPTION)
    assert 3 <= len(account) <= 24 and account.isalnum() and account.islower()
    assert parse_result_storage(values["result_storage"]) == ("az", f"{account}/results", "")
    stored = emulator.azure.resources
    rg = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/pushpool-demo"
    base = f"{rg}/providers/microsoft.storage/storageaccounts/{account}"
    props = stored[base]["properties"]
    assert stored[base]["tags"] == {"pushpool-pool": "demo"}
    assert (props["minimumTlsVersion"], props["allowBlobPublicAccess"]) == ("TLS1_2", False)
    assert props["supportsHttpsTrafficOnly"] is True
    container = stored[f"{base}/blobservices/default/containers/results"]
    assert container["properties"]["publicAccess"] == "None"
    (rule,) = stored[f"{base}/managementpolicies/default"]["properties"]["policy"]["rules"]
    assert rule["definition"]["filters"]["prefixMatch"] == ["results/"]
    assert rule["definition"]["actions"]["baseBlob"]["delete"] == {
        "daysAfterModificationGreaterThan": 7
    }
    identity = next(r for r in stored.values() if r["type"].endswith("userAssignedIdentities"))
    (writer,) = [
        r for r in stored.values()
        if r["type"].endswith("roleAssignments")
        and r["properties"]["roleDefinitionId"].endswith(BLOB_CONTRIBUTOR)
    ]  # fmt: skip
    assert writer["properties"]["principalId"] == identity["properties"]["principalId"]
    assert (
        writer["properties"]["scope"].lower() == f"{base}/blobservices/default/containers/results"
    )
    again = AciProvisioner("demo", {**config, **values})
    assert again.plan().empty
    longer = AciProvisioner("demo", {**config, **values, "result_retention_days": 14})
    assert [(s.resource, s.name) for s in longer.plan().to_create] == [
        ("storage-lifecycle-policy", "default")
    ]

    # what the runner does with the URL (the emulator's blob endpoint stands in for Azure's)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", emulator.connection_string(account))
    store = store_for(values["result_storage"])
    assert isinstance(store, AzureBlobResultStore)
    store.write("flow-runs/r1/result", b'J{"rows": 3}')
    assert store.read("flow-runs/r1/result") == b'J{"rows": 3}'
    assert emulator.blobs.keys(account, "results") == ["flow-runs/r1/result"]
    again.deprovision()
    assert not any("microsoft.storage" in key for key in stored)
    assert emulator.blobs.keys(account, "results") == []  # the account took its blobs along
    with pytest.raises(ResultNotFound):  # Azure's ContainerNotFound
        store_for(values["result_storage"]).read("flow-runs/r1/result")


def test_aci_result_storage_must_be_azure_blob() -> None:
    from emulators.azure.harness import pool_config

    for storage, message in (
        ("/tmp/results", "a container group's disk goes with the group"),
        ("gs://bucket/results", "a container group's disk goes with the group"),
        ("az://Account/c1/x", "is no storage account name"),
    ):
        with pytest.raises(ValueError, match=message):
            AciProvisioner("demo", pool_config(result_storage=storage))
    ok = AciProvisioner("demo", pool_config(result_storage="az://acct/results/p"))
    assert ok.config.result_storage == "az://acct/results/p"
