"""A result store imports its cloud's client on first use only: naming a store (what the
runner does with ``PUSHPOOL_RESULT_STORAGE``) or using the local one imports none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLOUD = (
    "boto3",
    "botocore",
    "google.cloud.storage",
    "google.auth",
    "azure.storage",
    "azure.identity",
    "azure.core",
)
_PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in sys.modules if m.startswith({cloud!r}))))
"""


def imported(body: str, home: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body, cloud=CLOUD)],
        env={**os.environ, "PUSHPOOL_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    modules: list[str] = json.loads(out.strip().splitlines()[-1])
    return modules


def test_naming_any_store_and_using_the_local_one_import_no_cloud_client(tmp_path: Path) -> None:
    body = (
        "from pushpool import flow, task\n"
        "from pushpool.results import store_for\n"
        "for url in ('s3://b01/p', 'gs://b01/p', 'az://acct/results/p'):\n"
        "    store_for(url)\n"
        f"store_for({str(tmp_path)!r}).write('k', b'v')\n"
        "@task(persist_result=True)\n"
        "def one() -> int:\n"
        "    return 1\n"
        "@flow\n"
        "def f() -> int:\n"
        "    return one()\n"
        "assert f() == 1\n"
    )
    assert imported(body, tmp_path) == []


def test_the_cloud_stores_import_their_client_on_first_use(tmp_path: Path) -> None:
    gcs = imported(
        "import os\n"
        "os.environ['STORAGE_EMULATOR_HOST'] = 'http://127.0.0.1:9'\n"
        "from pushpool.results import store_for\n"
        "store_for('gs://b01/p')._blob('k')",
        tmp_path,
    )
    assert "google.cloud.storage" in gcs and not [m for m in gcs if m.startswith("azure")]
    azure = imported(
        "from pushpool.results import store_for\nstore_for('az://acct/res').client", tmp_path
    )
    assert "azure.storage.blob" in azure and "azure.identity" in azure
    assert not [m for m in azure if m.startswith("google")]


def test_the_runner_image_installs_every_stores_client() -> None:
    """The runner image (no service dependencies) carries what each store imports."""
    import re

    dockerfile = (Path(__file__).parents[2] / "runner_image" / "Dockerfile").read_text()
    match = re.search(r'^ARG STORAGE_CLIENTS="([^"]+)"$', dockerfile, re.M)
    assert match and "${STORAGE_CLIENTS}" in dockerfile
    assert set(match.group(1).split()) == {
        "boto3",  # s3://
        "google-cloud-storage",  # gs://
        "azure-storage-blob",  # az://
        "azure-identity",  # az:// with the run's managed identity
    }
