"""Process pool isolation: private run directories, an allowlisted environment, host
commands only where an admin allows them, sources under allowed roots, and an orphan sweep
that signals and deletes only what it started."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.factories import EXAMPLES, deployment_body
from support.git import make_repo

from provisioners.base import SubmitRequest, get_provisioner
from provisioners.errors import ProvisionerError
from provisioners.process import ProcessJobVariables, ProcessProvisioner

PY = sys.executable
GIT_SOURCE = {"type": "git", "url": "https://example.com/r.git"}


def request(
    run_id: str, job: dict[str, object], env: dict[str, str] | None = None
) -> SubmitRequest:
    return SubmitRequest(
        run_id=run_id,
        attempt=1,
        flow_name="f",
        deployment_name="d",
        env=env or {},
        job_variables=job,
    )


def pool(tmp_path: Path, **config: object) -> ProcessProvisioner:
    provisioner = get_provisioner(
        "process", "iso", {"working_dir": str(tmp_path / "runs"), **config}
    )
    assert isinstance(provisioner, ProcessProvisioner)
    return provisioner


def wait(provisioner: ProcessProvisioner, ref: object) -> None:
    deadline = time.monotonic() + 20
    while not provisioner.status(ref).finished:  # type: ignore[arg-type]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_run_directories_are_private_and_under_pushpool_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path / "home"))
    provisioner = ProcessProvisioner("p", {"allow_job_commands": True})
    assert provisioner.root == tmp_path / "home" / "runs" / "p"
    ref = provisioner.submit(request("r1", {"command": [PY, "-c", "pass"]}))
    run_dir = Path(ref.data["dir"])
    assert run_dir.parent == provisioner.root
    for directory in (run_dir, provisioner.root, provisioner.root.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    wait(provisioner, ref)
    provisioner.teardown(ref)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory another user owns")
def test_a_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    provisioner = pool(tmp_path, allow_job_commands=True)
    provisioner.root.mkdir(parents=True)
    os.chown(provisioner.root, 65534, 65534)
    with pytest.raises(ProvisionerError, match="not a directory owned by"):
        provisioner.submit(request("r1", {"command": [PY, "-c", "pass"]}))
    os.chown(provisioner.root, 0, 0)
    planted = provisioner.root / "r2-1"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    with pytest.raises(ProvisionerError, match="not a directory owned by"):
        provisioner.submit(request("r2", {"command": [PY, "-c", "pass"]}))


def test_the_flow_never_sees_the_servers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-secret")
    monkeypatch.setenv("PUSHPOOL_API_KEY", "pp_server")
    monkeypatch.setenv("LANG", "C.UTF-8")
    provisioner = pool(tmp_path, allow_job_commands=True, env={"POOL_VAR": "p"})
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    ref = provisioner.submit(
        request("r1", {"command": [PY, "-c", dump], "env": {"JOB_VAR": "j"}}, {"RUNNER": "r"})
    )
    wait(provisioner, ref)
    env = json.loads((Path(ref.data["dir"]) / "output.log").read_text())
    assert "AWS_SECRET_ACCESS_KEY" not in env and "PUSHPOOL_API_KEY" not in env
    assert env["LANG"] == "C.UTF-8" and "PATH" in env
    assert (env["POOL_VAR"], env["JOB_VAR"], env["RUNNER"]) == ("p", "j", "r")
    provisioner.teardown(ref)


@pytest.mark.parametrize(
    "job",
    [
        {"command": [PY, "-c", "pass"]},
        {"python": PY},
        {"env": {"LD_PRELOAD": "/tmp/evil.so"}},
        {"env": {"PYTHONSTARTUP": "/tmp/evil.py"}},
        {"env": {"PATH": "/tmp"}},
        {"env": {"BASH_ENV": "/tmp/evil.sh"}},
    ],
)
def test_host_commands_in_job_variables_need_the_pools_consent(
    tmp_path: Path, job: dict[str, object]
) -> None:
    with pytest.raises(ProvisionerError, match="allow_job_commands"):
        pool(tmp_path).submit(request("r1", job))
    variables = ProcessJobVariables.model_validate(job)
    assert (
        pool(tmp_path)
        .deployment_problems(GIT_SOURCE, variables)[0][1]
        .endswith("or set allow_job_commands in it")
    )
    assert pool(tmp_path, allow_job_commands=True).deployment_problems(GIT_SOURCE, variables) == []


def test_deploy_refuses_host_commands_and_sources_outside_the_roots(api: TestClient) -> None:
    r = api.post("/api/deployments", json=deployment_body(job_variables={"command": ["id"]}))
    assert r.status_code == 422 and "allow_job_commands" in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "job_variables", "command"]
    config = {"allowed_source_roots": [str(EXAMPLES)]}
    api.post("/api/work-pools", json={"name": "rooted", "type": "process", "config": config})
    outside = deployment_body(work_pool="rooted", source={"type": "local", "path": "/etc"})
    r = api.post("/api/deployments", json=outside)
    assert r.status_code == 422 and "allowed_source_roots" in r.text
    inside = deployment_body(work_pool="rooted")
    assert api.post("/api/deployments", json=inside).status_code == 201


def test_a_pool_without_source_roots_allows_no_local_source(
    api: TestClient, tmp_path: Path
) -> None:
    api.post("/api/work-pools", json={"name": "bare", "type": "process"})
    r = api.post("/api/deployments", json=deployment_body(work_pool="bare"))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "source", "path"]
    message = r.json()["message"]
    assert "'bare' allows no local source" in message and "allowed_source_roots" in message
    assert "PATCH /api/work-pools/bare" in message
    assert "pushpool work-pool update bare --set 'allowed_source_roots=[" in message
    empty = {"name": "empty", "type": "process", "config": {"allowed_source_roots": []}}
    api.post("/api/work-pools", json=empty)
    assert api.post("/api/deployments", json=deployment_body(work_pool="empty")).status_code == 422
    git = {"type": "git", "url": make_repo(tmp_path / "repo")}  # a ref the API can check
    assert (
        api.post("/api/deployments", json=deployment_body(work_pool="bare", source=git)).status_code
        == 201
    )
    assert api.get("/api/deployments").json() and all(
        d["work_pool"] != "empty" for d in api.get("/api/deployments").json()
    )


def test_relative_source_roots_are_refused(api: TestClient) -> None:
    body = {"name": "rel", "type": "process", "config": {"allowed_source_roots": ["examples"]}}
    r = api.post("/api/work-pools", json=body)
    assert r.status_code == 422 and "absolute" in r.text


def test_a_symlink_escaping_the_root_is_refused(api: TestClient, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "flows").mkdir(parents=True)
    (root / "escape").symlink_to(EXAMPLES)
    rooted = {"name": "rooted", "type": "process", "config": {"allowed_source_roots": [str(root)]}}
    api.post("/api/work-pools", json=rooted)
    escaping = deployment_body(
        work_pool="rooted", source={"type": "local", "path": str(root / "escape")}
    )
    r = api.post("/api/deployments", json=escaping)
    assert r.status_code == 422 and str(EXAMPLES) in r.json()["message"], r.text
    dotdot = deployment_body(
        work_pool="rooted", source={"type": "local", "path": f"{root}/flows/../../"}
    )
    assert api.post("/api/deployments", json=dotdot).status_code == 422


def test_an_entrypoint_symlink_escaping_its_source_is_refused_by_the_api(
    api: TestClient, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "hello.py").symlink_to(EXAMPLES / "hello.py")  # inside the roots, outside src
    (source / "inside.py").symlink_to(source / "hello.py")
    roots = {"allowed_source_roots": [str(tmp_path), str(EXAMPLES)]}
    api.post("/api/work-pools", json={"name": "linked", "type": "process", "config": roots})
    local = {"type": "local", "path": str(source)}
    r = api.post("/api/deployments", json=deployment_body(work_pool="linked", source=local))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "entrypoint"]
    assert "hello.py resolves outside the source directory" in r.json()["message"]
    at_home = deployment_body(
        name="inside", entrypoint="inside.py:hello", work_pool="linked", source=local
    )
    assert api.post("/api/deployments", json=at_home).status_code == 422  # via hello.py, out
    (source / "own.py").write_text("def hello():\n    pass\n")
    own = deployment_body(name="own", entrypoint="own.py:hello", work_pool="linked", source=local)
    assert api.post("/api/deployments", json=own).status_code == 201


def test_the_runner_refuses_an_escaping_symlink_and_a_pool_without_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner_image.errors import SourceError
    from runner_image.source import prepare_source

    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(EXAMPLES)
    monkeypatch.setenv("PUSHPOOL_ALLOWED_SOURCE_ROOTS", str(root))
    with pytest.raises(SourceError, match="allowed roots"):
        prepare_source({"type": "local", "path": str(root / "escape")}, tmp_path)
    monkeypatch.setenv("PUSHPOOL_ALLOWED_SOURCE_ROOTS", "")
    with pytest.raises(SourceError, match="allows no local source"):
        prepare_source({"type": "local", "path": str(EXAMPLES)}, tmp_path)


def test_the_pool_tells_the_runner_its_roots_even_when_there_are_none(tmp_path: Path) -> None:
    provisioner = pool(tmp_path)
    job = ProcessJobVariables()
    assert provisioner._environment(request("r1", {}), job)["PUSHPOOL_ALLOWED_SOURCE_ROOTS"] == ""
    rooted = pool(tmp_path, allowed_source_roots=["/a", "/b"])
    assert rooted._environment(request("r1", {}), job)["PUSHPOOL_ALLOWED_SOURCE_ROOTS"] == "/a:/b"


def test_the_runner_checks_the_source_root_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner_image.errors import SourceError
    from runner_image.source import prepare_source

    monkeypatch.setenv("PUSHPOOL_ALLOWED_SOURCE_ROOTS", str(EXAMPLES))
    assert prepare_source({"type": "local", "path": str(EXAMPLES)}, tmp_path).root == EXAMPLES
    with pytest.raises(SourceError, match="allowed roots"):
        prepare_source({"type": "local", "path": "/etc"}, tmp_path)


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process group that is not pushpool's."""
    proc = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_a_planted_pid_record_is_ignored(
    tmp_path: Path, bystander: subprocess.Popen[bytes]
) -> None:
    provisioner = pool(tmp_path, allow_job_commands=True)
    provisioner.root.mkdir(parents=True)
    victim_dir = tmp_path / "precious"
    victim_dir.mkdir()
    for name, record in {
        "planted-1": {"run_id": "planted", "pid": bystander.pid, "dir": str(victim_dir)},
        "noticks-1": {"run_id": "noticks", "pid": bystander.pid, "start_ticks": None},
        "wrongticks-1": {"run_id": "wrongticks", "pid": bystander.pid, "start_ticks": 1},
    }.items():
        run_dir = provisioner.root / name
        run_dir.mkdir()
        record.setdefault("dir", str(run_dir))
        (run_dir / "pid.json").write_text(json.dumps(record))
    orphans = provisioner.list_orphans(set())
    assert {o.id for o in orphans} == {"noticks-1", "wrongticks-1"}  # "planted" names elsewhere
    for ref in orphans:
        provisioner.teardown(ref)
    time.sleep(0.2)
    assert bystander.poll() is None  # never signalled
    assert victim_dir.exists()
    assert not (provisioner.root / "noticks-1").exists()


def test_cancel_signals_only_the_process_it_started(tmp_path: Path) -> None:
    provisioner = pool(tmp_path, allow_job_commands=True)
    ref = provisioner.submit(request("r1", {"command": [PY, "-c", "import time; time.sleep(30)"]}))
    provisioner.cancel(ref, grace_seconds=5)
    wait(provisioner, ref)
    assert provisioner.status(ref).exit_code == 128 + signal.SIGTERM
    provisioner.teardown(ref)
