"""The ARM emulator on a free loopback port, in a thread; the product's clients reach it
through ``PUSHPOOL_AZURE_EMULATOR_URL`` (plain HTTP, test-only authentication)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from support.server import free_port

from emulators.azure.app import make_app
from emulators.azure.state import Azure
from provisioners.aci.arm import EMULATOR_ENV

SUBSCRIPTION = "00000000-0000-0000-0000-00000000a2c1"


@dataclass
class Emulator:
    url: str
    azure: Azure

    def add_resource_group(self, name: str, location: str = "westeurope") -> str:
        path = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"
        with self.azure.lock:
            self.azure.resources[path.lower()] = {
                "id": path,
                "name": name,
                "type": "resourceGroups",
                "location": location,
                "properties": {"provisioningState": "Succeeded"},
                "tags": {},
            }
        return path


@contextmanager
def azure_emulator(clock: Callable[[], float] = time.monotonic) -> Iterator[Emulator]:
    azure = Azure(clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(azure),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the Azure emulator did not start")
        time.sleep(0.02)
    try:
        yield Emulator(f"http://127.0.0.1:{port}", azure)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def emulated(
    monkeypatch: pytest.MonkeyPatch, clock: Callable[[], float] = time.monotonic
) -> Iterator[Emulator]:
    """The emulator, with this process's ACI clients pointed at it."""
    with azure_emulator(clock) as emulator:
        monkeypatch.setenv(EMULATOR_ENV, emulator.url)
        yield emulator
