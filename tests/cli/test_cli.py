"""The `pushpool` CLI against a live server: commands, --output json, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.factories import REPO
from support.server import LiveServer, live_server
from typer.testing import CliRunner

from service.cli.introspect import parameter_schema
from service.cli.main import app
from service.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with live_server(Settings(home=tmp_path / "home")) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        monkeypatch.chdir(REPO)
        yield server


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def invoke(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.output


def test_deploy_run_watch_and_inspect(live: LiveServer, cli: CliRunner) -> None:
    code, out = invoke(cli, "deploy", "examples/hello.py:hello", "--name", "cli")
    assert code == 0, out
    code, out = invoke(cli, "run", "hello/cli", "--param", "name=5", "--watch")
    assert code == 0, out
    assert "Hello, 5!" in out and "COMPLETED" in out
    code, out = invoke(cli, "runs", "ls", "--output", "json")
    runs = json.loads(out)["items"]
    assert code == 0 and runs[0]["state"]["type"] == "COMPLETED"
    code, out = invoke(cli, "runs", "inspect", runs[0]["id"], "--output", "json")
    assert json.loads(out)["parameters"] == {"name": "5"}
    code, out = invoke(cli, "runs", "logs", runs[0]["id"], "--output", "json")
    assert "Hello, 5!" in [line["message"] for line in json.loads(out)]
    code, out = invoke(cli, "deployment", "inspect", "hello/cli", "--output", "json")
    assert json.loads(out)["parameter_schema"]["properties"]["name"]["type"] == "string"
    code, out = invoke(cli, "runs", "result", runs[0]["id"])
    assert code == 0 and json.loads(out) == "Hello, 5!"


def test_failing_run_watch_exits_non_zero(live: LiveServer, cli: CliRunner) -> None:
    invoke(cli, "deploy", "examples/failing.py:fail", "--name", "cli")
    code, out = invoke(cli, "run", "fail/cli", "--watch")
    assert code == 1 and "FAILED" in out
    failed = json.loads(invoke(cli, "runs", "ls", "--output", "json")[1])["items"][0]
    code, out = invoke(cli, "runs", "result", failed["id"])
    assert code == 1 and "is FAILED: it has no result" in out


def test_schedule_and_tick(live: LiveServer, cli: CliRunner) -> None:
    code, out = invoke(
        cli,
        "deploy",
        "examples/hello.py:hello",
        "--name",
        "cron",
        "--cron",
        "*/5 * * * *",
        "--timezone",
        "Europe/Berlin",
        "--pool",
        "local",
        "--output",
        "json",
    )
    assert code == 0, out
    assert json.loads(out)["schedules"][0]["timezone"] == "Europe/Berlin"
    code, out = invoke(cli, "scheduler", "tick", "--output", "json")
    assert code == 0 and json.loads(out)["materialised"] >= 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deploy", "examples/hello.py", "--name", "x"), "must look like"),
        (("deploy", "examples/hello.py:hello", "--name", "x", "--cron", "61 * * * *"), "cron"),
        (("deploy", "examples/missing.py:f", "--name", "x"), "does not exist"),
        (("deploy", "examples/hello.py:nope", "--name", "x"), "no top-level function"),
        (("run", "nope/nope"), "no deployment"),
        (("runs", "inspect", "nope"), "not found"),
        (("work-pool", "create", "local"), "already exists"),
        (("work-pool", "create", "z", "--type", "nope"), "unknown work pool type"),
        (("work-pool", "create", "z", "--config", "[1]"), "JSON object"),
        (("deploy", "examples/hello.py:hello", "--name", "x", "--param", "oops"), "key=value"),
    ],
)
def test_errors_are_one_line_and_non_zero(
    live: LiveServer, cli: CliRunner, args: tuple[str, ...], message: str
) -> None:
    code, out = invoke(cli, *args)
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], out
    assert "Traceback" not in out


def test_work_pools_and_keys(live: LiveServer, cli: CliRunner) -> None:
    assert invoke(cli, "work-pool", "create", "extra", "--concurrency-limit", "2")[0] == 0
    _, out = invoke(cli, "work-pool", "ls", "--output", "json")
    assert {p["name"] for p in json.loads(out)} == {"local", "extra"}
    _, out = invoke(cli, "work-pool", "inspect", "extra", "--output", "json")
    assert json.loads(out)["concurrency_limit"] == 2
    assert invoke(cli, "work-pool", "delete", "extra")[0] == 0
    code, out = invoke(cli, "api-key", "create", "ci", "--output", "json")
    assert code == 0, out
    created = json.loads(out)
    _, out = invoke(cli, "api-key", "ls", "--output", "json")
    assert created["key"] not in out and live.api_key not in out
    assert invoke(cli, "api-key", "revoke", created["id"])[0] == 0


def test_unreachable_server_is_one_line(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSHPOOL_API_URL", "http://127.0.0.1:9")
    code, out = invoke(cli, "work-pool", "ls")
    assert code == 1 and "cannot reach" in out and len(out.strip().splitlines()) == 1


def test_parameter_schema_from_signature(tmp_path: Path) -> None:
    src = tmp_path / "flow.py"
    src.write_text(
        "from typing import Literal, Optional\n"
        "def f(a: int, b: str = 'x', *, c: Optional[float] = None, d: list[int] = [1],\n"
        "      e: Literal['x', 'y'] = 'x', g: 'bool' = True, h=3): ...\n"
    )
    schema = parameter_schema(src, "f")
    props = schema["properties"]
    assert schema["required"] == ["a"] and schema["additionalProperties"] is False
    assert props["a"]["type"] == "integer"
    assert props["b"] == {"type": "string", "title": "b", "default": "x"}
    assert props["c"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert props["d"] == {
        "type": "array",
        "items": {"type": "integer"},
        "title": "d",
        "default": [1],
    }
    assert props["e"]["enum"] == ["x", "y"]
    assert props["g"]["type"] == "boolean"
    assert props["h"] == {"title": "h", "default": 3}


def test_parameter_schema_of_enums_paths_dataclasses_and_models(tmp_path: Path) -> None:
    src = tmp_path / "flow.py"
    src.write_text(
        "import enum, dataclasses\n"
        "from pathlib import Path\n"
        "from pydantic import BaseModel\n"
        "class Color(enum.Enum):\n    RED = 'red'\n    BLUE = 'blue'\n"
        "@dataclasses.dataclass\nclass Point:\n    x: int\n    y: int = 0\n"
        "class Box(BaseModel):\n    corner: Point\n    tags: set[str] = set()\n"
        "    inner: 'Box | None' = None\n"
        "class Plain:\n    a: int\n"
        "def f(c: Color, p: Path, pt: Point, b: Box, o: Plain, u: 'Color | None' = None): ...\n"
    )
    props = parameter_schema(src, "f")["properties"]
    assert props["c"] == {"enum": ["red", "blue"], "title": "c"}
    assert props["p"] == {"type": "string", "title": "p"}
    assert props["pt"]["properties"] == {"x": {"type": "integer"}, "y": {"type": "integer"}}
    assert props["pt"]["required"] == ["x"]
    box = props["b"]
    assert box["properties"]["corner"]["properties"]["x"] == {"type": "integer"}
    assert box["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert box["properties"]["inner"] == {}  # Box inside Box: left open, no endless schema
    assert props["o"] == {"title": "o"}  # not a dataclass or model: open
    assert props["u"]["anyOf"] == [{"enum": ["red", "blue"]}, {"type": "null"}]


@pytest.mark.parametrize(
    ("default", "what"),
    [
        ("{1, 2}", "a set"),
        ("frozenset()", "a set"),
        ("set()", "a set"),
        ("b'raw'", "bytes"),
        ("1j", "a complex number"),
        ("1e999", "a non-finite float"),
        ("-float('inf')", "a non-finite float"),
        ("float('nan')", "a non-finite float"),
        ("math.inf", "a non-finite float"),
        ("[1, b'x']", "bytes"),
        ("{1: 'a'}", "non-string keys"),
    ],
)
def test_unusual_defaults_are_one_clear_error(
    cli: CliRunner, tmp_path: Path, default: str, what: str
) -> None:
    src = tmp_path / "flow.py"
    src.write_text(f"import math\ndef f(n: int, odd={default}): ...\n")
    code, out = invoke(cli, "deploy", f"{src}:f", "--name", "odd", "--source", str(tmp_path))
    assert code == 1, out
    assert "parameter 'odd': its default is" in out and what in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) <= 3, out


def test_runs_logs_strips_terminal_escapes(live: LiveServer, cli: CliRunner) -> None:
    from service.models import LogLine

    code, out = invoke(cli, "deploy", "examples/hello.py:hello", "--name", "esc")
    code, out = invoke(cli, "run", "hello/esc", "--watch")
    run_id = json.loads(invoke(cli, "runs", "ls", "--output", "json")[1])["items"][0]["id"]
    hostile = "\x1b]0;owned\x07\x1b[2J\x1b[1A\rclean\x1b[31m red\x1b[0m\x9b2K\x07"
    line = LogLine(run_id=run_id, timestamp=live.services.clock(), message=hostile)
    live.services.store.append_logs(run_id, [line])
    code, out = invoke(cli, "runs", "logs", run_id)
    assert code == 0
    assert "clean red" in out
    assert not any(c in out for c in "\x1b\x07\x9b\r")


def test_strip_escapes_keeps_text_and_tabs() -> None:
    from service.cli.terminal import strip_escapes

    assert strip_escapes("a\tb \x1b[1;31mc\x1b[0m") == "a\tb c"
    assert strip_escapes("x\x1bPdevice\x1b\\y\x1b7z") == "xyz"


def test_deploy_takes_flow_settings_as_defaults(live: LiveServer, cli: CliRunner) -> None:
    code, out = invoke(cli, "deploy", "examples/etl.py:etl", "--name", "cli")
    assert code == 0, out
    deployment = json.loads(invoke(cli, "deployment", "inspect", "etl/cli", "--output", "json")[1])
    assert (deployment["flow_name"], deployment["retries"]) == ("etl", 1)
    code, out = invoke(cli, "deploy", "examples/etl.py:etl", "--name", "cli", "--retries", "0")
    assert code == 0, out
    shown = invoke(cli, "deployment", "inspect", "etl/cli", "--output", "json")[1]
    assert json.loads(shown)["retries"] == 0


def test_concurrency_limit_commands(live: LiveServer, cli: CliRunner) -> None:
    code, out = invoke(cli, "concurrency-limit", "create", "db", "2")
    assert code == 0 and "at most 2" in out, out
    code, out = invoke(cli, "concurrency-limit", "ls", "--output", "json")
    assert json.loads(out) == [{"tag": "db", "limit": 2, "active_slots": 0}]
    code, out = invoke(cli, "concurrency-limit", "create", "db", "0")
    assert code == 1 and "limit" in out
    assert invoke(cli, "concurrency-limit", "delete", "db")[0] == 0
    code, out = invoke(cli, "concurrency-limit", "delete", "db")
    assert code == 1 and "not found" in out
