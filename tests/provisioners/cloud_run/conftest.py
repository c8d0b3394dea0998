"""Fixtures for the ``cloud-run`` pool type: the GCP emulator (tests/emulators/gcp) on
loopback, reached by the real Google client libraries over REST, and drongo in process.

No MagicMock anywhere: faults are injected by the emulator answering Google's own error
shapes, so the product's error translation runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from emulators.gcp import GcpEmulator, running_emulator
from support.cloud_run import CONFIG, POOL, Sleeps

from provisioners.cloud_run import CloudRunProvisioner
from provisioners.cloud_run.gcp import EMULATOR_ENV
from provisioners.ratelimit import Backoff, TokenBucket


@pytest.fixture(scope="module")
def _server() -> Iterator[GcpEmulator]:
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def emulator(_server: GcpEmulator, monkeypatch: pytest.MonkeyPatch) -> GcpEmulator:
    """A fresh emulated project; the product's clients point at it."""
    _server.reset()
    monkeypatch.setenv(EMULATOR_ENV, _server.url)
    return _server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_provisioner(emulator: GcpEmulator, sleeps: Sleeps) -> Callable[..., CloudRunProvisioner]:
    def make(pool: str = POOL, **config: Any) -> CloudRunProvisioner:
        return CloudRunProvisioner(
            pool,
            {**CONFIG, **config},
            limiter=TokenBucket(1000, 1000, sleep=sleeps),
            sleep=sleeps,
            backoff=Backoff(attempts=4),
        )

    return make


@pytest.fixture
def provisioner(make_provisioner: Callable[..., CloudRunProvisioner]) -> CloudRunProvisioner:
    return make_provisioner()
