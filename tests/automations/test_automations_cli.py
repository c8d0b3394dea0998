"""``pushpool automation create -f|ls|inspect|pause|resume|delete`` against a live server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import LiveServer, live_server
from typer.testing import CliRunner

from service.cli.main import app
from service.settings import Settings

YAML = """\
name: alert-on-failure
description: Tell the team when a run fails
trigger:
  event: pushpool.flow-run.Failed
  labels: {deployment: nightly}
actions:
  - type: notify
    url: https://hooks.slack.com/services/T/B/X
"""


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    settings = Settings(
        home=tmp_path / "home", automation_notify_allowlist=["https://hooks.slack.com/"]
    )
    with live_server(settings) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


def test_the_whole_lifecycle_from_a_yaml_file(live: LiveServer, tmp_path: Path) -> None:
    cli = CliRunner()
    path = tmp_path / "automation.yaml"
    path.write_text(YAML)
    made = cli.invoke(app, ["automation", "create", "-f", str(path)])
    assert made.exit_code == 0 and "alert-on-failure" in made.output, made.output
    listed = cli.invoke(app, ["automation", "ls", "-o", "json"])
    assert [a["name"] for a in json.loads(listed.output)] == ["alert-on-failure"]
    assert cli.invoke(app, ["automation", "pause", "alert-on-failure"]).exit_code == 0
    shown = cli.invoke(app, ["automation", "inspect", "alert-on-failure", "-o", "json"])
    doc = json.loads(shown.output)
    assert doc["automation"]["paused"] is True and doc["events"] == []
    assert cli.invoke(app, ["automation", "resume", "alert-on-failure"]).exit_code == 0
    assert cli.invoke(app, ["automation", "delete", "alert-on-failure"]).exit_code == 0
    gone = cli.invoke(app, ["automation", "inspect", "alert-on-failure"])
    assert gone.exit_code == 1 and "not found" in gone.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntrigger: {event: a}\nactions: []\n", "actions"),
        (YAML.replace("event:", "evnt:"), "evnt"),
        (YAML.replace("hooks.slack.com", "evil.example"), "allowlist"),
        ("- not a mapping\n", "mapping"),
        ("name: [unclosed\n", "YAML"),
    ],
)
def test_a_bad_file_is_one_clear_line_and_creates_nothing(
    live: LiveServer, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "automation.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["automation", "create", "-f", str(path)])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert live.client.get("/automations").json() == []


ACTING = """\
name: stop-everything
trigger: {event: ops.stop}
actions:
  - {type: pause-schedules, deployment: hello/default}
  - {type: pause-work-pool, work_pool: local}
"""


def test_inspect_shows_each_new_actions_outcome(live: LiveServer, tmp_path: Path) -> None:
    from support.factories import deployment_body

    schedules = [{"interval_seconds": 3600}]
    assert live.client.post("/deployments", json=deployment_body(schedules=schedules)).is_success
    path = tmp_path / "automation.yaml"
    path.write_text(ACTING)
    cli = CliRunner()
    assert cli.invoke(app, ["automation", "create", "-f", str(path)]).exit_code == 0
    event = {"name": "ops.stop", "resource": {"id": "x"}}
    assert live.client.post("/events", json=event).status_code == 201
    live.client.post("/scheduler/tick")
    shown = cli.invoke(app, ["automation", "inspect", "stop-everything"])
    assert shown.exit_code == 0, shown.output
    assert "0: pause-schedules" in shown.output and "1: pause-work-pool" in shown.output
    assert shown.output.count("action.succeeded") == 2 and '"schedules": 1' in shown.output
    assert live.client.get("/work-pools/local").json()["paused"] is True


def test_proactive_and_compound_automations_are_created_and_listed(
    live: LiveServer, tmp_path: Path
) -> None:
    from service.cli.automations import describe
    from tests.automations.test_proactive import ABSENCE_YAML

    cli = CliRunner()
    absence = tmp_path / "absence.yaml"
    absence.write_text(ABSENCE_YAML)
    made = cli.invoke(app, ["automation", "create", "-f", str(absence)])
    assert made.exit_code == 0, made.output
    both = tmp_path / "both.yaml"
    both.write_text(
        "name: both-failed\ntrigger:\n  type: compound\n  require: all\n  within: 3600\n"
        "  triggers:\n    - {event: pushpool.flow-run.Failed, labels: {deployment: a}}\n"
        "    - {event: pushpool.flow-run.Failed, labels: {deployment: b}}\n"
        "actions:\n  - {type: notify, url: 'https://hooks.slack.com/services/T/B/X'}\n"
    )
    assert cli.invoke(app, ["automation", "create", "-f", str(both)]).exit_code == 0
    listed = cli.invoke(app, ["automation", "ls"])
    assert listed.exit_code == 0 and "nightly-etl-missing" in listed.output, listed.output
    triggers = [
        a["trigger"] for a in json.loads(cli.invoke(app, ["automation", "ls", "-o", "json"]).output)
    ]
    assert [describe(t) for t in triggers] == [
        "all of (pushpool.flow-run.Failed, pushpool.flow-run.Failed) within 3600s",
        "no pushpool.flow-run.Completed within 90000s",
    ]
