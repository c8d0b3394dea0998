"""Block secrets on Cloud Run: Secret Manager secrets and versions the job references with
``secretKeyRef`` (never the value), readable by the job's account only, updated on
rotation, removed at deprovision (the GCP emulator, through the real client library)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from emulators.gcp import GcpEmulator
from support.blocks import with_secret
from support.cloud_run import PROJECT, request_for

from provisioners.cloud_run import CloudRunProvisioner
from provisioners.cloud_run.names import secret_id
from provisioners.errors import ProvisionerError

MARKER = "marker-cloud-run-secret-3b7c"
ROTATED = "marker-cloud-run-rotated-0e41"
ACCOUNT = "runner@demo-project.iam.gserviceaccount.com"
ACCESSOR = "roles/secretmanager.secretAccessor"
SOURCE = "secret/db.password"  # a "." the secret id cannot hold
Make = Callable[..., CloudRunProvisioner]


def secret_refs(emulator: GcpEmulator, job: str) -> dict[str, dict[str, str]]:
    [container] = emulator.run.jobs[job]["template"]["template"]["containers"]
    return {
        e["name"]: e["valueSource"]["secretKeyRef"] for e in container["env"] if "valueSource" in e
    }


def test_the_job_references_a_secret_version_never_the_value(
    emulator: GcpEmulator, make_provisioner: Make
) -> None:
    provisioner = make_provisioner(service_account=ACCOUNT)
    ref = provisioner.submit(with_secret(request_for(env={"MODE": "x"}), MARKER, SOURCE))
    assert MARKER not in json.dumps(emulator.run.jobs[ref.id])
    name = f"projects/{PROJECT}/secrets/{secret_id('demo', SOURCE)}"
    assert secret_refs(emulator, ref.id) == {"DB_PASSWORD": {"secret": name, "version": "1"}}
    assert emulator.secrets.value(f"{name}/versions/1") == MARKER
    assert emulator.secrets.readers(name, ACCESSOR) == [f"serviceAccount:{ACCOUNT}"]
    assert emulator.secrets.secrets[name].body["labels"] == {"pushpool-pool": "demo"}


def test_rotation_reaches_the_next_run_and_an_unchanged_value_is_not_rewritten(
    emulator: GcpEmulator, make_provisioner: Make
) -> None:
    provisioner = make_provisioner(service_account=ACCOUNT)
    first = provisioner.submit(with_secret(request_for(), MARKER, SOURCE))
    same = provisioner.submit(with_secret(request_for(), MARKER, SOURCE))
    # A fresh control plane process (no memory of what it wrote) and a rotated value.
    rotated = make_provisioner(service_account=ACCOUNT).submit(
        with_secret(request_for(), ROTATED, SOURCE)
    )
    versions = [secret_refs(emulator, r.id)["DB_PASSWORD"]["version"] for r in (first, same)]
    assert versions == ["1", "1"]
    latest = secret_refs(emulator, rotated.id)["DB_PASSWORD"]
    assert latest["version"] == "2"
    assert emulator.secrets.value(f"{latest['secret']}/versions/2") == ROTATED


def test_deprovision_removes_the_pools_secrets_and_no_other(
    emulator: GcpEmulator, make_provisioner: Make
) -> None:
    other = make_provisioner("demo-2", service_account=ACCOUNT)
    other.submit(with_secret(request_for(), "other-pool-value", SOURCE))
    provisioner = make_provisioner(service_account=ACCOUNT)
    provisioner.submit(with_secret(request_for(), MARKER, SOURCE))
    provisioner.deprovision()
    left = [name.rsplit("/", 1)[-1] for name in emulator.secrets.secrets]
    assert left == [secret_id("demo-2", SOURCE)]


def test_secrets_need_the_jobs_service_account(
    emulator: GcpEmulator, provisioner: CloudRunProvisioner
) -> None:
    with pytest.raises(ProvisionerError, match="service account") as caught:
        provisioner.submit(with_secret(request_for(), MARKER, SOURCE))
    assert MARKER not in str(caught.value)
    assert emulator.secrets.secrets == {} and emulator.run.jobs == {}


def test_the_permission_list_names_every_secret_manager_call() -> None:
    """Each ``Gcp.call("secrets", method)`` is listed as its REST method (e.g.
    ``add_secret_version`` -> ``secretmanager.projects.secrets.addVersion``)."""
    from provisioners.cloud_run import gcp, permissions

    called = set(re.findall(r'"secrets",\s*"(\w+)"', Path(gcp.__file__).read_text()))
    verbs = {re.sub(r"_secrets?", "", method) for method in called}
    rest = {re.sub(r"_(\w)", lambda m: m[1].upper(), verb) for verb in verbs}
    listed = {m for m, _, _ in permissions.CONTROL_PLANE if m.startswith("secretmanager.")}
    assert len(called) == 6
    assert listed == {f"secretmanager.projects.secrets.{name}" for name in rest}


def test_secrets_no_deployment_references_are_pruned_and_retried(
    emulator: GcpEmulator, make_provisioner: Make
) -> None:
    other = make_provisioner("demo-2", service_account=ACCOUNT)
    other.submit(with_secret(request_for(), "other-pool-value", "secret/b"))
    provisioner = make_provisioner(service_account=ACCOUNT)
    for source in ("secret/a", "secret/b", "secret/c"):
        provisioner.submit(with_secret(request_for(), MARKER, source))

    def left() -> list[str]:
        return sorted(name.rsplit("/", 1)[-1] for name in emulator.secrets.secrets)

    emulator.fail("DELETE", r"/secrets/", 503, "unavailable")
    assert provisioner.prune_secrets({"secret/a"}) == 1  # one of the two refused: kept
    assert len(left()) == 3  # a, the refused b, and the other pool's
    assert provisioner.prune_secrets({"secret/a"}) == 1  # retried on the next pass
    assert left() == sorted([secret_id("demo", "secret/a"), secret_id("demo-2", "secret/b")])
    assert provisioner.prune_secrets({"secret/a"}) == 0  # idempotent
    # referenced again: created and granted again (not taken for still there)
    ref = provisioner.submit(with_secret(request_for(), ROTATED, "secret/b"))
    (version,) = secret_refs(emulator, ref.id).values()
    name = f"projects/{PROJECT}/secrets/{secret_id('demo', 'secret/b')}"
    assert emulator.secrets.value(f"{version['secret']}/versions/{version['version']}") == ROTATED
    assert emulator.secrets.readers(name, ACCESSOR) == [f"serviceAccount:{ACCOUNT}"]
