"""``pushpool deploy --image``: a deployment whose code is in a container image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import LiveServer, live_server
from typer.testing import CliRunner

from service.cli.main import app
from service.settings import Settings

pytestmark = pytest.mark.slow

CLUSTER = "arn:aws:ecs:eu-west-1:123456789012:cluster/pushpool-ecs"


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with live_server(Settings(home=tmp_path / "home")) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        monkeypatch.chdir(tmp_path)  # no flow code here: it is in the image
        pool = {"name": "ecs", "type": "ecs", "config": {"region": "eu-west-1", "cluster": CLUSTER}}
        assert server.client.post("/work-pools", json=pool).status_code == 201
        yield server


def deploy(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["deploy", *args])
    return result.exit_code, result.output


def test_an_image_deployment_needs_no_local_code(live: LiveServer) -> None:
    code, out = deploy(
        "flows/paint.py:paint",
        "--name",
        "img",
        "--pool",
        "ecs",
        "--image",
        "example/flows:1",
        "--param",
        "n=3",
        "--env",
        "MODE=fast",
        "--output",
        "json",
    )
    assert code == 0, out
    dep = json.loads(out)
    assert dep["source"] == {"type": "image"}
    assert dep["entrypoint"] == "flows/paint.py:paint" and dep["flow_name"] == "paint"
    assert dep["job_variables"]["image"] == "example/flows:1"
    assert dep["job_variables"]["env"] == {"MODE": "fast"}
    assert dep["parameter_schema"] is None  # the first run records it
    assert dep["parameters"] == {"n": 3}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--source", "."), "without --source or --ref"),
        (("--ref", "main"), "without --source or --ref"),
        (("--image", " "), "is not an image reference"),
    ],
)
def test_image_options_that_do_not_fit_are_one_clear_line(
    live: LiveServer, extra: tuple[str, ...], message: str
) -> None:
    args = ["flows/paint.py:paint", "--name", "img", "--pool", "ecs", "--image", "x/y:1", *extra]
    code, out = deploy(*args)
    assert code != 0
    assert message in out and "Traceback" not in out
    assert live.client.get("/deployments").json() == []


def test_an_entrypoint_outside_the_image_directory_is_refused(live: LiveServer) -> None:
    code, out = deploy("../up.py:f", "--name", "img", "--pool", "ecs", "--image", "x/y:1")
    assert code != 0 and "relative to the image's directory" in out
    assert live.client.get("/deployments").json() == []
