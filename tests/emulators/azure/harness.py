"""The ``aci`` entry of the Provisioner conformance suite: the real SDK against the emulator,
with the emulator playing the container (``sleep`` runs until stopped, ``sh -c "exit N"``
terminates at once with exit code N)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.harness import Harness

from emulators.azure.server import SUBSCRIPTION, Emulator, emulated
from emulators.azure.state import Group
from provisioners.aci import AciProvisioner
from provisioners.aci.quota import QuotaLimiter

RESOURCE_GROUP = "conf"


def pool_config(**extra: Any) -> dict[str, Any]:
    return {
        "subscription_id": SUBSCRIPTION,
        "resource_group": RESOURCE_GROUP,
        "location": "westeurope",
        "image": "pushpool-runner:test",
        **extra,
    }


def play_the_container(emulator: Emulator) -> None:
    def on_create(name: str, group: Group) -> None:
        props = group.body["properties"]["containers"][0]["properties"]
        command = props.get("command") or []
        emulator.azure.start(name)
        if command[:2] == ["sh", "-c"] and command[2].startswith("exit "):
            emulator.azure.exit(name, int(command[2].split()[1]))

    emulator.azure.on_create = on_create


def aci_harness() -> Iterator[Harness]:
    with pytest.MonkeyPatch.context() as env, emulated(env) as emulator:
        emulator.add_resource_group(RESOURCE_GROUP)
        play_the_container(emulator)
        yield Harness(
            provisioner=AciProvisioner("conf", pool_config(), limiter=QuotaLimiter()),
            sleep_job=lambda s: {"command": ["sleep", str(s)]},
            exit_job=lambda code: {"command": ["sh", "-c", f"exit {code}"]},
        )
