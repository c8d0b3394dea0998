"""Google's libraries are imported only when a cloud-run pool is used."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("google", "grpc")))))
"""


def imported(body: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(body=body)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    modules: list[str] = json.loads(out.strip().splitlines()[-1])
    return modules


def test_the_lambda_handler_and_the_ecs_path_import_no_google_library() -> None:
    body = (
        "import service.lambda_handler\n"
        "from provisioners.base import provisioner_class\n"
        "provisioner_class('ecs')"
    )
    assert imported(body) == []


def test_the_cloud_run_package_imports_google_only_on_first_call() -> None:
    assert (
        imported("from provisioners.base import provisioner_class\nprovisioner_class('cloud-run')")
        == []
    )
    used = imported(
        "import os\n"
        "os.environ['PUSHPOOL_GCP_EMULATOR_URL'] = 'http://127.0.0.1:9'\n"
        "from provisioners.cloud_run.gcp import Gcp\n"
        "Gcp('demo-project', 'us-central1').client('jobs')"
    )
    assert "google.cloud.run_v2" in used
