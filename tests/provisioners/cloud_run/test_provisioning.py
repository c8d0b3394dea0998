"""Provisioning a cloud-run pool against the emulated project: plan, apply, record, plan
again (empty), deprovision exactly what was added, leave what was there before."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from emulators.gcp import GcpEmulator
from support.cloud_run import PROJECT, REGION

from provisioners.cloud_run import CloudRunProvisioner
from provisioners.cloud_run.infra.results import bucket_name
from provisioners.errors import ProvisionerError

CONTROL_PLANE = f"serviceAccount:control@{PROJECT}.iam.gserviceaccount.com"
RUNTIME = f"pushpool-demo@{PROJECT}.iam.gserviceaccount.com"
BUCKET = bucket_name("demo", PROJECT)
EXPECTED = [
    ("api", "run.googleapis.com"),
    ("api", "artifactregistry.googleapis.com"),
    ("api", "iam.googleapis.com"),
    ("api", "secretmanager.googleapis.com"),
    ("service-account", "pushpool-demo"),
    ("project-iam-binding", f"roles/logging.logWriter serviceAccount:{RUNTIME}"),
    ("project-iam-binding", f"roles/run.developer {CONTROL_PLANE}"),
    ("project-iam-binding", f"roles/logging.viewer {CONTROL_PLANE}"),
    ("service-account-iam-binding", f"roles/iam.serviceAccountUser {CONTROL_PLANE}"),
    (
        "project-iam-binding",
        f"roles/secretmanager.admin {CONTROL_PLANE} if pushpool demo secrets",
    ),
    ("artifact-registry-repository", "pushpool-demo"),
    ("storage-bucket", BUCKET),
    ("bucket-iam-binding", f"roles/storage.objectAdmin serviceAccount:{RUNTIME}"),
]


@pytest.fixture
def pool(make_provisioner: Callable[..., CloudRunProvisioner]) -> CloudRunProvisioner:
    return make_provisioner(image=None, control_plane_member=CONTROL_PLANE)


def recorded(
    provisioner: CloudRunProvisioner, make: Callable[..., CloudRunProvisioner]
) -> CloudRunProvisioner:
    values = provisioner.provision(provisioner.plan())
    return make(**{**provisioner.config.model_dump(exclude_none=True), **values})


def add_bystanders(emulator: GcpEmulator) -> None:
    """What was there before: the Run API on, an owner, a log writer, someone's repository."""
    project = emulator.project(PROJECT)
    project.services["run.googleapis.com"] = "ENABLED"
    project.policies.policies[f"projects/{PROJECT}"] = {
        "version": 1,
        "bindings": [
            {"role": "roles/owner", "members": ["user:owner@example.com"]},
            {"role": "roles/logging.logWriter", "members": ["serviceAccount:other@x.com"]},
        ],
    }
    name = f"projects/{PROJECT}/locations/{REGION}/repositories/someone-else"
    project.repositories[name] = {"name": name, "format": "DOCKER"}


def test_plan_apply_record_then_nothing_to_do(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    plan = pool.plan()
    assert [(s.resource, s.name) for s in plan.to_create] == EXPECTED
    created: list[str] = []
    values = pool.provision(plan, lambda step: created.append(step.name))
    assert created == [name for _, name in EXPECTED]
    assert values["service_account"] == RUNTIME
    assert values["repository"] == "pushpool-demo"
    assert values["image"] == (
        f"{REGION}-docker.pkg.dev/{PROJECT}/pushpool-demo/pushpool-runner:latest"
    )
    project = emulator.project(PROJECT).snapshot()
    assert project["policies"][f"serviceAccounts/{RUNTIME}"] == [
        ("roles/iam.serviceAccountUser", [CONTROL_PLANE])
    ]
    account = emulator.project(PROJECT).accounts[RUNTIME]
    assert "pushpool-pool=demo" in account["description"]
    repository = next(iter(emulator.project(PROJECT).repositories.values()))
    assert repository["labels"] == {"pushpool-pool": "demo"}
    again = make_provisioner(**{**pool.config.model_dump(exclude_none=True), **values})
    assert again.plan().empty


def test_deprovision_removes_what_it_added_and_keeps_what_it_found(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    add_bystanders(emulator)
    before = emulator.project(PROJECT).snapshot()
    plan = pool.plan()
    run_api = next(s for s in plan.steps if s.name == "run.googleapis.com")
    assert run_api.exists and "never removed" in run_api.detail
    provisioned = recorded(pool, make_provisioner)
    assert ("api", "run.googleapis.com") not in {
        (r.resource, r.name) for r in provisioned.config.provisioned
    }
    removed: list[str] = []
    provisioned.deprovision(lambda step: removed.append(step.name))
    assert removed == [name for _, name in reversed(EXPECTED) if name != "run.googleapis.com"]
    assert emulator.project(PROJECT).snapshot() == before
    assert emulator.storage.buckets == {}
    provisioned.deprovision()  # again: everything is gone, nothing fails


def test_a_repository_that_is_not_the_pools_is_used_but_never_removed(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    name = f"projects/{PROJECT}/locations/{REGION}/repositories/pushpool-demo"
    emulator.project(PROJECT).repositories[name] = {"name": name, "labels": {"team": "x"}}
    provisioned = recorded(pool, make_provisioner)
    assert provisioned.config.repository == "pushpool-demo"
    provisioned.deprovision()
    assert name in emulator.project(PROJECT).repositories


def test_deprovision_deletes_the_pools_jobs_first(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    from support.cloud_run import request_for

    provisioned = recorded(pool, make_provisioner)
    ref = provisioned.submit(request_for())
    emulator.run.start(ref.id)
    provisioned.deprovision()
    assert emulator.run.jobs == {}
    assert emulator.journal.count("POST", r":cancel$") == 1


def test_permission_denied_names_the_permission_and_what_is_in_place(
    emulator: GcpEmulator, pool: CloudRunProvisioner
) -> None:
    message = "Permission 'iam.serviceAccounts.create' denied on resource (or it may not exist)."
    emulator.fail("POST", r"/serviceAccounts$", 403, message, reason="IAM_PERMISSION_DENIED")
    with pytest.raises(ProvisionerError) as info:
        pool.provision(pool.plan())
    text = str(info.value)
    assert "\n" not in text
    assert "iam.serviceAccounts.create" in text and "403" in text
    assert "already in place: api/run.googleapis.com" in text
    assert pool.plan().to_create[0].resource == "service-account"  # resumes from there


def test_a_concurrent_policy_change_is_merged_not_lost(
    emulator: GcpEmulator, pool: CloudRunProvisioner
) -> None:
    emulator.fail("POST", r"/v3/projects/[^/]+:setIamPolicy$", 409, "concurrent", times=1)
    pool.provision(pool.plan())
    roles = dict(emulator.project(PROJECT).snapshot()["policies"][f"projects/{PROJECT}"])
    assert roles == {
        "roles/logging.logWriter": [f"serviceAccount:{RUNTIME}"],
        "roles/run.developer": [CONTROL_PLANE],
        "roles/logging.viewer": [CONTROL_PLANE],
        "roles/secretmanager.admin": [CONTROL_PLANE],  # under its condition
    }


def test_setup_notes_list_the_roles_and_the_push_commands(
    pool: CloudRunProvisioner, make_provisioner: Callable[..., CloudRunProvisioner]
) -> None:
    provisioned = recorded(pool, make_provisioner)
    notes = provisioned.setup_notes()
    roles = notes["IAM roles for this pool"]
    assert "roles/logging.logWriter" in roles and "roles/iam.serviceAccountUser" in roles
    assert "roles/run.developer" in roles and "roles/logging.viewer" in roles
    methods = notes["Google API methods and the permissions they need"]
    assert "run.executions.cancel" in methods and "iam.serviceAccounts.create" in methods
    push = notes["Build and push the runner image (runner_image/Dockerfile)"]
    assert f"docker push {REGION}-docker.pkg.dev/{PROJECT}/pushpool-demo/" in push


def test_the_result_bucket_is_private_expiring_and_only_the_runtime_accounts(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    from pushpool.results import GcsResultStore, parse_result_storage, store_for

    pool = make_provisioner(**{**pool.config.model_dump(exclude_none=True),
                               "result_retention_days": 7})  # fmt: skip
    provisioned = recorded(pool, make_provisioner)
    storage = provisioned.config.result_storage
    assert storage is not None and parse_result_storage(storage) == ("gs", BUCKET, "results")
    assert BUCKET.startswith("pushpool-demo-results-") and len(BUCKET) <= 63
    bucket = emulator.storage.buckets[BUCKET]
    assert bucket.body["labels"] == {"pushpool-pool": "demo"}
    assert bucket.body["location"] == REGION.upper()
    assert bucket.body["iamConfiguration"] == {
        "uniformBucketLevelAccess": {"enabled": True},
        "publicAccessPrevention": "enforced",
    }
    assert "encryption" not in bucket.body  # Google-managed keys
    assert bucket.body["lifecycle"] == {
        "rule": [
            {"action": {"type": "Delete"}, "condition": {"age": 7, "matchesPrefix": ["results/"]}}
        ]
    }
    grants = {b["role"]: b["members"] for b in bucket.bindings}
    assert grants["roles/storage.objectAdmin"] == [f"serviceAccount:{RUNTIME}"]
    project_roles = dict(emulator.project(PROJECT).snapshot()["policies"][f"projects/{PROJECT}"])
    assert not any("storage" in role for role in project_roles)  # the bucket only
    assert make_provisioner(**provisioned.config.model_dump(exclude_none=True)).plan().empty

    with pytest.MonkeyPatch.context() as env:  # what the runner does (its env names the store)
        env.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        store = store_for(storage)
        assert isinstance(store, GcsResultStore)
        store.write("flow-runs/r1/result", b'J{"rows": 3}')
        assert store.read("flow-runs/r1/result") == b'J{"rows": 3}'
    assert list(bucket.objects) == ["results/flow-runs/r1/result"]
    for i in range(3):  # more than one object: deprovision empties the bucket first
        bucket.objects[f"results/cache/{i}"] = b"x"
    provisioned.deprovision()
    assert emulator.storage.buckets == {}


def test_a_bucket_that_is_not_the_pools_is_used_but_never_emptied_or_removed(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    from emulators.gcp.storage import Bucket

    emulator.storage.buckets[BUCKET] = Bucket({"name": BUCKET, "labels": {"team": "x"}}, [])
    emulator.storage.buckets[BUCKET].objects["keep"] = b"theirs"
    step = next(s for s in pool.plan().steps if s.resource == "storage-bucket")
    assert step.exists and "never removed" in step.detail
    provisioned = recorded(pool, make_provisioner)
    assert provisioned.config.result_storage == f"gs://{BUCKET}/results"
    provisioned.deprovision()
    assert emulator.storage.buckets[BUCKET].objects == {"keep": b"theirs"}


def test_cloud_run_result_storage_must_be_gcs(
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    for storage, message in (
        ("/tmp/results", "a Cloud Run job's disk goes with the job"),
        ("s3://bucket/results", "a Cloud Run job's disk goes with the job"),
        ("gs://Bucket/x", "is no Cloud Storage bucket name"),
    ):
        with pytest.raises(ValueError, match=message):
            make_provisioner(result_storage=storage)
    assert make_provisioner(result_storage="gs://b01/p").config.result_storage == "gs://b01/p"


def test_every_storage_call_is_in_the_permission_list() -> None:
    import inspect
    import re

    from provisioners.cloud_run import permissions
    from provisioners.cloud_run.infra import clients

    called = set(re.findall(r'"(storage\.[a-zA-Z.]+)"', inspect.getsource(clients)))
    listed = {method for method, _, _ in permissions.PROVISIONING}
    assert called and called <= listed, called - listed


def test_the_control_plane_may_manage_the_pools_secrets_only(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    """One conditional binding: Secret Manager on ``pushpool-demo_*`` (and the project,
    where create and list are checked); other bindings' conditions survive the write."""
    from provisioners.cloud_run.names import secret_id

    project = emulator.project(PROJECT)
    theirs = {
        "role": "roles/storage.admin",
        "members": ["user:owner@example.com"],
        "condition": {"title": "t", "description": "d", "expression": "request.time < x"},
    }
    project.policies.policies[f"projects/{PROJECT}"] = {"version": 3, "bindings": [theirs]}
    provisioned = recorded(pool, make_provisioner)
    policy = project.policies.policies[f"projects/{PROJECT}"]
    assert policy["version"] == 3
    assert theirs in policy["bindings"]  # kept, condition and all
    (granted,) = [b for b in policy["bindings"] if b["role"] == "roles/secretmanager.admin"]
    assert granted["members"] == [CONTROL_PLANE]
    expression = granted["condition"]["expression"]
    assert 'resource.name.extract("/secrets/{id}").startsWith("pushpool-demo_")' in expression
    assert secret_id("demo", "secret/x").startswith("pushpool-demo_")
    assert 'resource.type == "cloudresourcemanager.googleapis.com/Project"' in expression
    again = make_provisioner(**provisioned.config.model_dump(exclude_none=True))
    assert again.plan().empty  # the conditional binding is found as made
    provisioned.deprovision()
    after = project.policies.policies[f"projects/{PROJECT}"]
    assert after["bindings"] == [theirs]


def test_a_pool_provisioned_before_the_secrets_grant_gets_it_on_the_next_run(
    emulator: GcpEmulator,
    pool: CloudRunProvisioner,
    make_provisioner: Callable[..., CloudRunProvisioner],
) -> None:
    provisioned = recorded(pool, make_provisioner)
    project = emulator.project(PROJECT)
    policy = project.policies.policies[f"projects/{PROJECT}"]
    policy["bindings"] = [b for b in policy["bindings"] if "condition" not in b]  # as before
    config = provisioned.config.model_dump(exclude_none=True)
    config["provisioned"] = [r for r in config["provisioned"] if "secretmanager" not in r["name"]]
    old = make_provisioner(**config)
    plan = old.plan()
    assert [s.name for s in plan.to_create] == [
        f"roles/secretmanager.admin {CONTROL_PLANE} if pushpool demo secrets"
    ]
    values = old.provision(plan)
    assert any("secretmanager" in r["name"] for r in values["provisioned"])  # recorded
    assert make_provisioner(**{**config, **values}).plan().empty
