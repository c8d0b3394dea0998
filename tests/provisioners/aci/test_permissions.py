"""The permission list is the truth: every ARM operation a pool's whole life makes
(provision, submit, status, logs, cancel, teardown, sweep, deprovision) is listed with its
permission, and the custom role grants exactly the control plane's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from emulators.azure.harness import pool_config
from emulators.azure.server import SUBSCRIPTION, Emulator

from provisioners.aci import AciProvisioner
from provisioners.aci.arm import ArmClient
from provisioners.aci.infra.resources import CONTROL_PLANE_ACTIONS, SUBNET_JOIN_ACTION
from provisioners.aci.permissions import CONTROL_PLANE, PROVISIONING, table
from provisioners.aci.quota import QuotaLimiter
from provisioners.base import SubmitRequest

SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/net/providers/"
    "Microsoft.Network/virtualNetworks/vnet/subnets/aci"
)


def test_every_arm_operation_is_listed_with_its_permission(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = ArmClient.call

    def spy(self: ArmClient, operation: str, fn: Callable[[], Any]) -> Any:
        seen.append(operation)
        return real(self, operation, fn)

    monkeypatch.setattr(ArmClient, "call", spy)
    emulator.add_resource_group("net")
    config = pool_config(
        resource_group="pushpool-demo",
        control_plane_principal_id="11111111-2222-3333-4444-555555555555",
        subnet_ids=[SUBNET],
    )
    first = AciProvisioner("demo", config)
    p = AciProvisioner("demo", {**config, **first.provision(first.plan())},
                       limiter=QuotaLimiter())  # fmt: skip
    run_id = str(uuid.uuid4())
    ref = p.submit(SubmitRequest(run_id, 1, "f", "d", env={"PUSHPOOL_FLOW_RUN_ID": run_id}))
    emulator.azure.start(str(ref.data["name"]))
    p.status_many([ref])
    emulator.azure.exit(str(ref.data["name"]), 137, "OOMKilled", logs="bye\n")
    p.status_many([ref])
    assert p.log_tail(ref) == ["bye"]
    p.cancel(ref, 0)
    p.teardown(ref)
    p.list_orphans(set())
    p.deprovision()

    listed = {op for op, _, _ in CONTROL_PLANE + PROVISIONING}
    assert set(seen) - listed == set()
    calls = {op for op, _, _ in CONTROL_PLANE if not op.startswith("(")}
    assert calls - set(seen) == set()  # nothing listed that the pool never calls
    granted = {perm for _, perm, _ in CONTROL_PLANE if perm.startswith("Microsoft.")}
    assert granted == {*CONTROL_PLANE_ACTIONS, SUBNET_JOIN_ACTION}
    notes = p.setup_notes()["ARM operations and the permissions they need"]
    assert notes == table() and SUBNET_JOIN_ACTION in notes
