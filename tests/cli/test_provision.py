"""The CLI's provisioning flow (plan, confirm, apply, record, deprovision), driven through a
small provisioner type whose "account" is a JSON file — a double of our own Provisioner
interface, so the flow is tested apart from any cloud."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.server import LiveServer, live_server
from typer.testing import CliRunner

from provisioners.base import (
    REGISTRY,
    InfraRef,
    InfraState,
    InfraStatus,
    PlanStep,
    PoolConfig,
    Progress,
    Provisioner,
    ProvisionPlan,
    SubmitRequest,
)
from service.cli.main import app
from service.settings import Settings

pytestmark = pytest.mark.slow
RESOURCES = ("cluster", "role", "log-group")


class FileCloudConfig(PoolConfig):
    account: str
    cluster: str | None = None
    provisioned: list[str] = []


class FileCloud(Provisioner):
    type = "filecloud"
    config_model = FileCloudConfig
    config: FileCloudConfig

    def _account(self) -> dict[str, Any]:
        path = Path(self.config.account)
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self, account: dict[str, Any]) -> None:
        Path(self.config.account).write_text(json.dumps(account))

    def plan(self) -> ProvisionPlan:
        have = self._account()
        names = [f"{self.pool_name}-{r}" for r in RESOURCES]
        return ProvisionPlan(
            [PlanStep(r, n, n in have) for r, n in zip(RESOURCES, names, strict=True)]
        )

    def provision(self, plan: ProvisionPlan, progress: Progress | None = None) -> dict[str, Any]:
        account = self._account()
        created = []
        for step in plan.to_create:
            account[step.name] = {"tags": {"pushpool:pool": self.pool_name}}
            self._save(account)
            created.append(step.name)
            if progress:
                progress(step)
        return {"cluster": f"{self.pool_name}-cluster", "provisioned": created}

    def deprovision(self, progress: Progress | None = None) -> None:
        account = self._account()
        for name in reversed(self.config.provisioned):
            if account.pop(name, None) is not None and progress:
                progress(PlanStep("resource", name, True))
        self._save(account)

    def submit(self, request: SubmitRequest) -> InfraRef:
        return InfraRef(type=self.type, id=request.idempotency_key)

    def find(self, request: SubmitRequest) -> InfraRef | None:
        return None

    def status(self, ref: InfraRef) -> InfraStatus:
        return InfraStatus(InfraState.MISSING)

    def cancel(self, ref: InfraRef, grace_seconds: float) -> None:
        return None

    def teardown(self, ref: InfraRef) -> None:
        return None

    def list_orphans(self, live_run_ids: set[str]) -> list[InfraRef]:
        return []


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setitem(REGISTRY, "filecloud", f"{__name__}:FileCloud")
    with live_server(Settings(home=tmp_path / "home")) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


@pytest.fixture
def account(tmp_path: Path) -> Path:
    path = tmp_path / "account.json"
    path.write_text(json.dumps({"someone-elses-bucket": {"tags": {}}}))
    return path


def invoke(*args: str, answer: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=answer)
    return result.exit_code, result.output


def create(account: Path, *extra: str, answer: str | None = None) -> tuple[int, str]:
    return invoke(
        "work-pool",
        "create",
        "demo",
        "--type",
        "filecloud",
        "--set",
        f"account={account}",
        "--provision-infra",
        *extra,
        answer=answer,
    )


def test_provision_records_and_rerun_is_empty(live: LiveServer, account: Path) -> None:
    code, out = create(account, "--yes")
    assert code == 0, out
    assert "will create" in out and out.count("created ") >= 3
    pool = live.client.get("/work-pools/demo").json()
    assert pool["config"]["cluster"] == "demo-cluster"
    assert pool["config"]["provisioned"] == ["demo-cluster", "demo-role", "demo-log-group"]
    code, out = invoke("work-pool", "provision-infra", "demo", "--yes")
    assert code == 0 and "Nothing to create" in out and "will create" not in out


def test_answering_no_changes_nothing(live: LiveServer, account: Path) -> None:
    before = account.read_text()
    code, out = create(account, answer="n\n")
    assert code == 1 and "aborted; nothing was created" in out
    assert account.read_text() == before
    assert live.client.get("/work-pools/demo").status_code == 404


def test_dry_run_shows_the_plan_only(live: LiveServer, account: Path) -> None:
    code, out = create(account, "--dry-run")
    assert code == 0 and "will create" in out
    assert live.client.get("/work-pools/demo").status_code == 404
    assert json.loads(account.read_text()) == {"someone-elses-bucket": {"tags": {}}}


def test_deprovision_leaves_the_account_as_it_was(live: LiveServer, account: Path) -> None:
    before = json.loads(account.read_text())
    assert create(account, "--yes")[0] == 0
    assert len(json.loads(account.read_text())) == 4
    code, out = invoke("work-pool", "delete", "demo", "--deprovision", "--yes")
    assert code == 0, out
    assert json.loads(account.read_text()) == before
    assert live.client.get("/work-pools/demo").status_code == 404


def test_deprovision_refused_while_deployments_use_the_pool(
    live: LiveServer, account: Path
) -> None:
    assert create(account, "--yes")[0] == 0
    body = {
        "name": "d",
        "flow_name": "f",
        "entrypoint": "f.py:f",
        "work_pool": "demo",
        "source": {"type": "image"},
    }
    assert live.client.post("/deployments", json=body).status_code == 201
    code, out = invoke("work-pool", "delete", "demo", "--deprovision", "--yes")
    assert code == 1 and "used by 1 deployment" in out
    assert len(json.loads(account.read_text())) == 4


def test_process_pools_need_no_infrastructure(live: LiveServer) -> None:
    code, out = invoke("work-pool", "create", "p2", "--provision-infra")
    assert code == 0 and "needs no infrastructure" in out
    assert os.environ["PUSHPOOL_API_URL"] == live.url
