"""``pushpool events ls|follow`` against a live server over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import LiveServer, live_server
from typer.testing import CliRunner

from service.cli.client import ApiClient
from service.cli.events import watch
from service.cli.main import app
from service.settings import Settings


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with live_server(Settings(home=tmp_path / "home")) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


def emit(live: LiveServer, name: str, **labels: str) -> None:
    body = {"name": name, "resource": {"id": "shop.order.1", "labels": labels}}
    assert live.client.post("/events", json=body).status_code == 201


def test_ls_filters_and_prints_json_or_a_table(live: LiveServer) -> None:
    emit(live, "shop.order.paid", customer="acme")
    emit(live, "shop.order.shipped", customer="other")
    cli = CliRunner()
    result = cli.invoke(app, ["events", "ls", "-n", "shop.*", "-l", "customer=acme", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert [e["name"] for e in json.loads(result.output)] == ["shop.order.paid"]
    table = cli.invoke(app, ["events", "ls", "--resource", "shop.order.*"])
    assert "shop.order.shipped" in table.output and "shop.order.paid" in table.output
    bad = cli.invoke(app, ["events", "ls", "--label", "nonsense"])
    assert bad.exit_code == 1 and "label" in bad.output and "Traceback" not in bad.output


def test_follow_prints_each_new_event_once_oldest_first(live: LiveServer) -> None:
    emit(live, "before.start")
    client = ApiClient(live.url, live.api_key)
    printed: list[str] = []
    polls = iter(range(4))
    ticks = iter(range(100))

    def sleep(_: float) -> None:
        step = next(polls)
        if step == 0:
            emit(live, "live.one")
            emit(live, "live.two")
        elif step == 1:
            emit(live, "live.three")

    watch(client, {}, 0.1, 3.0, printed.append, sleep=sleep, monotonic=lambda: float(next(ticks)))
    names = [line.split()[1] for line in printed]
    assert names == ["live.one", "live.two", "live.three"]


def test_webhook_create_ls_call_and_delete(live: LiveServer, tmp_path: Path) -> None:
    import httpx

    template = tmp_path / "hook.j2"
    template.write_text('{"name": "ci.build.{{ body.status }}", "resource": {"id": "ci.build"}}')
    cli = CliRunner()
    made = cli.invoke(app, ["webhook", "create", "ci", "--template-file", str(template)])
    assert made.exit_code == 0, made.output
    url = made.output.split("POST ", 1)[1].strip()
    assert url.startswith(f"{live.url}/api/hooks/")
    listed = cli.invoke(app, ["webhook", "ls", "-o", "json"])
    assert [h["name"] for h in json.loads(listed.output)] == ["ci"]
    assert httpx.post(url, json={"status": "failed"}).status_code == 201
    shown = cli.invoke(app, ["events", "ls", "-n", "ci.*", "-o", "json"])
    assert [e["name"] for e in json.loads(shown.output)] == ["ci.build.failed"]
    both = cli.invoke(app, ["webhook", "create", "x", "--template", "{}", "--template-file", "f"])
    assert both.exit_code != 0
    assert cli.invoke(app, ["webhook", "delete", "ci"]).exit_code == 0
    assert httpx.post(url, json={"status": "ok"}).status_code == 404
    gone = cli.invoke(app, ["webhook", "delete", "ci"])
    assert gone.exit_code == 1 and "not found" in gone.output
