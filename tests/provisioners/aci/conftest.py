"""Fixtures for the ``aci`` pool type: the real Azure SDK against the ARM emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulators.azure.harness import RESOURCE_GROUP, pool_config
from emulators.azure.server import Emulator, azure_emulator

from provisioners.aci import AciProvisioner
from provisioners.aci.arm import EMULATOR_ENV, ArmClient
from provisioners.aci.quota import QuotaLimiter

TOKEN = "secret-bootstrap-0123456789"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with azure_emulator() as emu:
        monkeypatch.setenv(EMULATOR_ENV, emu.url)
        yield emu


@pytest.fixture
def provisioner(emulator: Emulator) -> AciProvisioner:
    emulator.add_resource_group(RESOURCE_GROUP)
    arm = ArmClient(pool_config()["subscription_id"], retry_total=0)
    return AciProvisioner("demo", pool_config(), arm=arm, limiter=QuotaLimiter())
