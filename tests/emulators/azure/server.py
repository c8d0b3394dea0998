"""The ARM emulator on a free loopback port, in a thread; the product's clients reach it
through ``PUSHPOOL_AZURE_EMULATOR_URL`` (plain HTTP, test-only authentication)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from support.server import free_port

from emulators.azure.app import make_app
from emulators.azure.blobs import BlobService
from emulators.azure.state import Azure
from provisioners.aci.arm import EMULATOR_ENV

SUBSCRIPTION = "00000000-0000-0000-0000-00000000a2c1"


@dataclass
class Emulator:
    url: str
    azure: Azure
    blobs: BlobService

    def blob_endpoint(self, account: str) -> str:
        """The account's Blob service URL (path-style, plain HTTP)."""
        return f"{self.url}/blob/{account}"

    def connection_string(self, account: str) -> str:
        """An ``AZURE_STORAGE_CONNECTION_STRING`` for ``account`` on this emulator (the
        key is a placeholder: the emulator checks that requests are signed, not how)."""
        key = base64.b64encode(f"emulator-key-{account}".encode()).decode()
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"BlobEndpoint={self.blob_endpoint(account)};"
        )

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
    blobs = BlobService(azure)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(azure, blobs),
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
        yield Emulator(f"http://127.0.0.1:{port}", azure, blobs)
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
