"""Fixtures for the ``aci`` pool type: the real Azure SDK against the ARM emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from emulators.azure.harness import RESOURCE_GROUP, pool_config
from emulators.azure.server import Emulator, emulated
from support.clock import FakeClock

from provisioners.aci import AciProvisioner, quota
from provisioners.aci.arm import ArmClient
from provisioners.aci.quota import QuotaLimiter
from service.pools import WorkPoolCreate, create_pool
from service.services import Services

TOKEN = "secret-bootstrap-0123456789"


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with emulated(monkeypatch) as emu:
        yield emu


@pytest.fixture
def provisioner(emulator: Emulator) -> AciProvisioner:
    emulator.add_resource_group(RESOURCE_GROUP)
    arm = ArmClient(pool_config()["subscription_id"], retry_total=0)
    return AciProvisioner("demo", pool_config(), arm=arm, limiter=QuotaLimiter())


@pytest.fixture
def aci_services(
    services: Services, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Services, Emulator]]:
    seconds = lambda: clock().timestamp()  # noqa: E731
    with emulated(monkeypatch, seconds) as emulator:
        emulator.add_resource_group(RESOURCE_GROUP)
        config = pool_config()
        key = (config["subscription_id"].lower(), config["location"])
        # In-memory windows: the store's are tested apart (test_quota: two limiters, one
        # store), and through the store the 1,000-run drive is too slow for the suite.
        monkeypatch.setitem(quota._limiters, key, QuotaLimiter(seconds))
        # The emulator enforces ACI's quotas too: a create over them would be answered
        # with 429 / ContainerGroupQuotaReached (and requeued), never run.
        emulator.azure.rate_limits, emulator.azure.max_groups = (100, 300), 100
        emulator.azure.on_create = lambda name, group: emulator.azure.start(name)
        create_pool(services, WorkPoolCreate(name="azure", type="aci", config=config))
        yield services, emulator
