"""The Azure SDK costs nothing until an ACI pool is used: not the Lambda handler, not an
ECS pool, not even importing or configuring the ``aci`` provisioner; the first ARM call."""

from __future__ import annotations

import json
import subprocess
import sys

from emulators.azure.harness import pool_config

SCRIPT = """
import json, sys
import service.lambda_handler
from provisioners.base import get_provisioner, provisioner_class
provisioner_class("ecs")
aci = get_provisioner("aci", "p", {config})
before = sorted(m for m in sys.modules if m.startswith("azure"))
try:
    aci.status_many([])           # no refs: no call
    aci.groups.get("x")           # the first ARM call imports the SDK (and fails: no Azure)
except Exception:
    pass
after = any(m.startswith("azure.mgmt.containerinstance") for m in sys.modules)
print(json.dumps({{"before": before, "after": after}}))
"""


def test_the_azure_sdk_is_imported_only_on_the_first_arm_call() -> None:
    script = SCRIPT.format(config=repr(pool_config()))
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        # An unroutable emulator URL: no credential lookup, no network, a fast failure.
        env={"PATH": "/usr/bin:/bin", "PUSHPOOL_AZURE_EMULATOR_URL": "http://127.0.0.1:9"},
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"before": [], "after": True}
