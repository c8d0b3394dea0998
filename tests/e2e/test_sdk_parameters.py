"""The parameter round trip through the API: a flow deployed with the CLI (local and git
sources), run with JSON values, receives them as their annotated types (pydantic)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.e2e import cli_server, invoke
from support.server import LiveServer

pytestmark = pytest.mark.slow
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

FLOW = '''
import dataclasses
import enum
from datetime import date, datetime
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel

from pushpool import flow


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Order(BaseModel):
    id: int
    placed: date
    lines: list[str] = []


def seen(value):
    """The received value's type and a JSON-ready picture of it."""
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [seen(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", {k: seen(v) for k, v in value.items()}]
    if isinstance(value, (date, datetime, Path)):
        return [type(value).__name__, str(value)]
    if isinstance(value, enum.Enum):
        return [type(value).__name__, value.value]
    if dataclasses.is_dataclass(value):
        return [type(value).__name__, dataclasses.asdict(value)]
    if isinstance(value, BaseModel):
        return [type(value).__name__, value.model_dump(mode="json")]
    return [type(value).__name__, value]


@flow
def typed(
    day: date,
    at: datetime,
    color: Color,
    where: Path,
    mode: Literal["fast", "slow"],
    maybe: Optional[int],
    days: list[date],
    counts: dict[str, int],
    pair: tuple[int, str],
    point: Point,
    order: Order,
    ratio: float = 0.5,
) -> dict:
    received = dict(locals())
    return {name: seen(value) for name, value in received.items()}
'''

VALUES: dict[str, Any] = {
    "day": "2026-03-01",
    "at": "2026-03-01T12:30:00+00:00",
    "color": "blue",
    "where": "/data/in.csv",
    "mode": "slow",
    "maybe": None,
    "days": ["2026-01-01", "2026-01-02"],
    "counts": {"a": 1},
    "pair": [3, "x"],
    "point": {"x": 1},
    "order": {"id": 7, "placed": "2026-02-03", "lines": ["l1"]},
}
RECEIVED: dict[str, Any] = {
    "day": ["date", "2026-03-01"],
    "at": ["datetime", "2026-03-01 12:30:00+00:00"],
    "color": ["Color", "blue"],
    "where": ["PosixPath", "/data/in.csv"],
    "mode": ["str", "slow"],
    "maybe": ["NoneType", None],
    "days": ["list", [["date", "2026-01-01"], ["date", "2026-01-02"]]],
    "counts": ["dict", {"a": ["int", 1]}],
    "pair": ["tuple", [["int", 3], ["str", "x"]]],
    "point": ["Point", {"x": 1, "y": 0}],
    "order": ["Order", {"id": 7, "placed": "2026-02-03", "lines": ["l1"]}],
    "ratio": ["float", 0.5],
}
#: Values the deployment's schema refuses at the API (422), before any run exists.
REFUSED: list[dict[str, Any]] = [
    {"day": "yesterday"},
    {"color": "green"},
    {"mode": "medium"},
    {"maybe": "three"},
    {"days": ["2026-01-01", 5]},
    {"counts": []},
    {"point": {"y": 1}},
    {"order": {"id": "seven", "placed": "2026-02-03"}},
]


def wait_done(live: LiveServer, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = live.client.get(f"/flow-runs/{run_id}").json()
        if run["state"]["type"] in TERMINAL:
            return run
        assert time.monotonic() < deadline, run["state"]
        time.sleep(0.2)


def git_repo(tmp_path: Path) -> str:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "typed.py").write_text(FLOW)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "typed flow"], check=True)
    return f"file://{repo}"


def test_every_parameter_type_round_trips_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "typed.py").write_text(FLOW)
    monkeypatch.chdir(tmp_path)
    with cli_server(tmp_path / "home", monkeypatch, report_grace_seconds=0) as live:
        sources = {"local": str(local), "git": git_repo(tmp_path)}
        for name, source in sources.items():
            code, out = invoke("deploy", "typed.py:typed", "--name", name, "--source", source)
            assert code == 0, out
        deployments = {d["name"]: d for d in live.client.get("/deployments").json()}
        for name in sources:
            dep = deployments[name]
            assert dep["parameter_schema"]["properties"]["color"]["enum"] == ["red", "blue"]
            for bad in REFUSED:
                r = live.client.post(
                    f"/deployments/{dep['id']}/runs", json={"parameters": VALUES | bad}
                )
                assert r.status_code == 422, (name, bad, r.text)
            r = live.client.post(f"/deployments/{dep['id']}/runs", json={"parameters": VALUES})
            assert r.status_code == 201, r.text
            done = wait_done(live, r.json()["id"])
            assert done["state"]["type"] == "COMPLETED", (name, done["state"])
            assert done["result"] == RECEIVED, (name, json.dumps(done["result"]))
