"""The commands a Prefect user reaches for every day, against the API in process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.factories import EXAMPLES, REPO, process_pool
from support.git import make_repo
from typer.testing import CliRunner

from service.cli import main
from service.cli.client import ApiClient
from service.services import Services


class InProcessClient(ApiClient):
    """The CLI's client, sending its requests to the app in this process."""

    def __init__(self, api: TestClient) -> None:
        super().__init__("http://testserver/api/", None)
        self.api = api

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.request(method, self.url + "/api" + path, **kwargs)


@pytest.fixture
def cli(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setattr(main, "_client", lambda: InProcessClient(api))
    monkeypatch.chdir(REPO)
    yield CliRunner()


def invoke(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(main.app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def ok(cli: CliRunner, *args: str) -> str:
    code, out = invoke(cli, *args)
    assert code == 0, out
    return out


@pytest.fixture
def paused_hello(cli: CliRunner, api: TestClient) -> str:
    """hello/daily on a paused pool: runs are created, nothing is started."""
    api.post("/api/work-pools", json=process_pool("hold", paused=True))
    ok(cli, "deploy", "examples/hello.py:hello", "--name", "daily", "--pool", "hold")
    return "hello/daily"


def test_version_and_classic_help(cli: CliRunner) -> None:
    assert ok(cli, "--version").strip() == "pushpool 0.1.0"
    help_text = ok(cli, "deploy", "--help")
    for tag in ("<bool>", "<str>", "<int>", "{entrypoint}", "list[str]"):
        assert tag not in help_text
    assert "ENTRYPOINT" in help_text and "TEXT" in help_text and "INT RANGE" in help_text
    assert "Times a failed or crashed run is retried" in help_text
    assert "At most this many runs" in help_text


def test_api_url_with_or_without_api_suffix() -> None:
    for url in ("http://h:4300", "http://h:4300/", "http://h:4300/api", "http://h:4300/api/"):
        assert ApiClient(url, None).url == "http://h:4300"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "greater than or equal to 1"),
        (["--interval", "90.7"], "should be a valid integer"),
        (["--timezone", "Europe/Berlin"], "--timezone applies to --cron"),
        (["--cron", "0 0 * * 5#2"], "'#' (nth weekday of the month) is not classic cron"),
        (["--cron", "* * * *", "--interval", "60"], "not both"),
    ],
)
def test_deploy_inputs_checked_at_the_door(
    cli: CliRunner, api: TestClient, args: list[str], message: str
) -> None:
    code, out = invoke(cli, "deploy", "examples/hello.py:hello", "--name", "bad", *args)
    assert code != 0 and message in out, out
    assert api.get("/api/deployments").json() == []


def test_git_source_that_does_not_resolve_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    url = make_repo(tmp_path / "repo")
    code, out = invoke(cli, "deploy", "flow.py:f", "--name", "g", "--source", url, "--ref", "nope")
    assert code == 1 and "has no ref 'nope'" in out, out
    code, out = invoke(cli, "deploy", "flow.py:f", "--name", "g", "--source", url + "-missing")
    assert code == 1 and "does not resolve" in out, out
    ok(cli, "deploy", "flow.py:f", "--name", "g", "--source", url, "--ref", "main")


def _commit(repo: Path, text: str, message: str) -> None:
    (repo / "flow.py").write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", message], check=True)


def test_git_source_deployments_get_the_schema_of_their_ref(
    cli: CliRunner, api: TestClient, tmp_path: Path
) -> None:
    """The schema comes from the file at the deployed ref (not the current directory),
    so a value that does not fit is refused at the door and by the API."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _commit(repo, "from datetime import date\ndef f(n: int, day: date): ...\n", "v1")
    subprocess.run(["git", "-C", str(repo), "tag", "v1"], check=True)
    first = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    _commit(repo, "def f(n: str, x: float = 1.5): ...\n", "v2")
    url = f"file://{repo}"
    code, out = invoke(
        cli, "deploy", "flow.py:f", "--name", "g", "--source", url, "--ref", "v1",
        "--param", "n=notanint",
    )  # fmt: skip
    assert code == 1 and "parameters.n" in out and "integer" in out, out
    ok(cli, "deploy", "flow.py:f", "--name", "g", "--source", url, "--ref", "v1")
    (dep,) = api.get("/api/deployments").json()
    props = dep["parameter_schema"]["properties"]
    assert props["n"]["type"] == "integer" and props["day"]["format"] == "date"
    bad = api.post(f"/api/deployments/{dep['id']}/runs", json={"parameters": {"n": "x"}})
    assert bad.status_code == 422, bad.text
    ok(cli, "deploy", "flow.py:f", "--name", "g", "--source", url, "--ref", first[:10])
    assert api.get("/api/deployments").json()[0]["parameter_schema"]["required"] == ["n", "day"]
    ok(cli, "deploy", "flow.py:f", "--name", "g", "--source", url)  # HEAD of main: v2
    props = api.get("/api/deployments").json()[0]["parameter_schema"]["properties"]
    assert props["n"]["type"] == "string" and props["x"]["default"] == 1.5
    code, out = invoke(cli, "deploy", "gone.py:f", "--name", "g", "--source", url)
    assert code == 1 and "gone.py is not in git source" in out, out


def test_entrypoint_symlink_escaping_the_source_is_refused(cli: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "flow.py").symlink_to(EXAMPLES / "hello.py")
    code, out = invoke(cli, "deploy", "flow.py:hello", "--name", "s", "--source", str(source))
    assert code == 1 and "outside the source directory" in out, out


def test_redeploy_prints_changes_and_keeps_schedules(cli: CliRunner, api: TestClient) -> None:
    ok(cli, "deploy", "examples/hello.py:hello", "--name", "r", "--cron", "0 9 * * *")
    out = ok(
        cli, "deploy", "examples/hello.py:hello", "--name", "r", "--retries", "2",
        "--timeout", "30m",
    )  # fmt: skip
    assert "Updated hello/r" in out and "retries: 0 -> 2" in out and "schedules" not in out
    assert "timeout_seconds: null -> 1800" in out
    assert api.get("/api/deployments").json()[0]["schedules"][0]["cron"] == "0 9 * * *"
    out = ok(cli, "deploy", "examples/hello.py:hello", "--name", "r", "--clear-schedules")
    assert "schedules: [{" in out and "-> []" in out and "retries: 2 -> 0" in out
    assert api.get("/api/deployments").json()[0]["schedules"] == []


def test_deployment_inspect_is_a_table_unless_json(cli: CliRunner, paused_hello: str) -> None:
    out = ok(cli, "deployment", "inspect", paused_hello)
    assert "entrypoint" in out and "hello.py:hello" in out and not out.lstrip().startswith("{")
    data = json.loads(ok(cli, "deployment", "inspect", paused_hello, "--output", "json"))
    assert data["name"] == "daily"


def test_pause_and_resume(cli: CliRunner, api: TestClient, paused_hello: str) -> None:
    assert "paused" in ok(cli, "deployment", "pause", paused_hello)
    assert api.get("/api/deployments").json()[0]["paused"] is True
    ok(cli, "deployment", "resume", paused_hello)
    assert api.get("/api/deployments").json()[0]["paused"] is False
    ok(cli, "work-pool", "resume", "hold")
    assert api.get("/api/work-pools/hold").json()["paused"] is False
    assert "paused" in ok(cli, "work-pool", "pause", "hold")
    assert api.get("/api/work-pools/hold").json()["paused"] is True


def test_deployment_run_with_params_file_json_params_start_in_and_tags(
    cli: CliRunner, api: TestClient, clock: FakeClock, paused_hello: str, tmp_path: Path
) -> None:
    params = tmp_path / "p.yaml"
    params.write_text("name: Ada\n")
    out = ok(
        cli, "deployment", "run", paused_hello, "--params-file", str(params),
        "--start-in", "10m", "--tag", "adhoc", "--name", "ten-past", "--output", "json",
    )  # fmt: skip
    run = json.loads(out)
    assert run["name"] == "ten-past" and run["parameters"] == {"name": "Ada"}
    assert run["tags"] == ["adhoc"] and run["state"]["type"] == "SCHEDULED"
    out = ok(
        cli, "run", paused_hello, "--param", "name=Bo", "--start-at", "2030-01-01T09:00:00Z",
        "--output", "json",
    )  # fmt: skip
    assert json.loads(out)["expected_start"].startswith("2030-01-01T09:00:00")
    code, out = invoke(cli, "run", paused_hello, "--start-in", "soon")
    assert code == 1 and "not a duration" in out


def test_idempotency_key_reused_with_other_parameters(cli: CliRunner, paused_hello: str) -> None:
    ok(cli, "run", paused_hello, "--idempotency-key", "k", "--param", "name=A")
    code, out = invoke(cli, "run", paused_hello, "--idempotency-key", "k", "--param", "name=B")
    assert code == 1 and "different parameters" in out and "HTTP 409" in out


def test_runs_ls_shows_started_runs_first_and_says_how_many_more(
    cli: CliRunner, api: TestClient, services: Services, paused_hello: str
) -> None:
    from service.states import StateType, set_state

    ids = [json.loads(ok(cli, "run", paused_hello, "-o", "json"))["id"] for _ in range(3)]
    set_state(
        services.store, ids[0], StateType.CANCELLED, now=services.clock(),
        expected=StateType.SCHEDULED,
    )  # fmt: skip
    out = ok(cli, "runs", "ls")
    assert ids[0][:8] in out and ids[1][:8] not in out
    out = ok(cli, "runs", "ls", "--scheduled", "--limit", "1")
    assert "1 run(s) shown of 2" in out and "--cursor" in out
    assert ok(cli, "runs", "ls", "--all").count("hello/daily") == 3
    assert "no runs" in ok(cli, "runs", "ls", "--tag", "nope")


def test_runs_ls_orders_and_filters_by_actual_start(
    cli: CliRunner, services: Services, paused_hello: str
) -> None:
    from datetime import timedelta

    from service.states import StateType, set_state

    made = [json.loads(ok(cli, "run", paused_hello, "-o", "json"))["id"] for _ in range(2)]
    late, early = sorted(made)  # same expected start: by it, `early` (larger id) is first
    t0 = services.clock()
    for run_id, minutes in ((early, 5), (late, 10)):
        at = t0 + timedelta(minutes=minutes)
        set_state(services.store, run_id, StateType.PENDING, now=at, expected=StateType.SCHEDULED)
        set_state(services.store, run_id, StateType.RUNNING, now=at, expected=StateType.PENDING)
    out = ok(cli, "runs", "ls")
    assert out.index(late[:8]) < out.index(early[:8])  # started last, listed first
    since = (t0 + timedelta(minutes=7)).isoformat()
    out = ok(cli, "runs", "ls", "--since", since)
    assert late[:8] in out and early[:8] not in out
    listed = json.loads(ok(cli, "runs", "ls", "--all", "-o", "json"))["items"]
    assert [r["id"] for r in listed] == [early, late]  # --all: by expected start


def test_runs_inspect_by_prefix_with_error_traceback_and_waiting_reason(
    cli: CliRunner, services: Services, paused_hello: str
) -> None:
    from service.states import StateType, set_state

    run = json.loads(ok(cli, "run", paused_hello, "-o", "json"))
    out = ok(cli, "runs", "inspect", run["id"][:8])
    assert run["name"] in out and "waiting: work pool 'hold' is paused" in out
    now = services.clock()
    set_state(services.store, run["id"], StateType.PENDING, now=now, expected=StateType.SCHEDULED)
    set_state(services.store, run["id"], StateType.RUNNING, now=now, expected=StateType.PENDING)
    error = {"type": "ValueError", "message": "bad", "traceback": "Traceback (most recent...)\n"}
    set_state(
        services.store, run["id"], StateType.FAILED, now=now, expected=StateType.RUNNING,
        message="ValueError: bad", fields={"error": error},
    )  # fmt: skip
    out = ok(cli, "runs", "inspect", run["name"])
    assert "error: ValueError: bad" in out and "Traceback (most recent...)" in out


def test_runs_logs_tail_and_since(cli: CliRunner, services: Services, paused_hello: str) -> None:
    from datetime import timedelta

    from service.models import LogLine

    run = json.loads(ok(cli, "run", paused_hello, "-o", "json"))
    now = services.clock()
    services.store.append_logs(
        run["id"],
        [
            LogLine(run_id=run["id"], timestamp=now - timedelta(hours=2 - i), message=f"line {i}")
            for i in range(3)
        ],
    )
    lines = json.loads(ok(cli, "runs", "logs", run["name"], "--tail", "2", "-o", "json"))
    assert [x["message"] for x in lines] == ["line 1", "line 2"]
    lines = json.loads(
        ok(cli, "runs", "logs", run["id"], "--since", "2030-01-01T00:00:00Z", "-o", "json")
    )
    assert lines == []


@pytest.mark.parametrize("cancel", [False, True])
def test_ctrl_c_on_watch_says_the_run_goes_on_or_cancels_it(
    cli: CliRunner,
    api: TestClient,
    paused_hello: str,
    monkeypatch: pytest.MonkeyPatch,
    cancel: bool,
) -> None:
    def interrupted(*args: object, **kwargs: object) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(main, "_follow", interrupted)
    flags = ["--watch", "--cancel-on-interrupt"] if cancel else ["--watch"]
    result = CliRunner().invoke(main.app, ["run", paused_hello, *flags])
    run = api.get("/api/flow-runs", params={"state": ["SCHEDULED", "CANCELLED"]}).json()
    state = run["items"][0]["state"]["type"]
    assert result.exit_code == 130
    if cancel:
        assert "cancelling flow run" in result.output and state == "CANCELLED"
    else:
        assert "goes on; cancel it with: pushpool runs cancel" in result.output
        assert state == "SCHEDULED"


def test_server_start_keeps_a_users_example_deployment(services: Services) -> None:
    from service.deployments import DeploymentUpdate, update

    main._deploy_in_process(services, str(EXAMPLES / "hello.py") + ":hello")
    dep = services.store.find_deployment("hello", "example")
    update(services, dep.id, DeploymentUpdate(retries=3, parameters={"name": "Ada"}))
    main._deploy_in_process(services, str(EXAMPLES / "hello.py") + ":hello")
    kept = services.store.find_deployment("hello", "example")
    assert kept.retries == 3 and kept.parameters == {"name": "Ada"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer vendors its own click)
            yield from _commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_option_and_argument_has_help() -> None:
    import typer.main

    missing = [
        f"{name} {param.name}"
        for name, command in _commands(typer.main.get_command(main.app))
        for param in command.params
        if not getattr(param, "help", None) and param.name != "help"
    ]
    assert missing == []


def test_a_deleted_deployments_runs_stay_reachable_by_its_id(
    cli: CliRunner, api: TestClient, paused_hello: str
) -> None:
    run = json.loads(ok(cli, "run", paused_hello, "-o", "json"))
    ok(cli, "runs", "cancel", run["name"])  # a SCHEDULED run would go with the deployment
    ok(cli, "deployment", "delete", paused_hello)
    page = json.loads(
        ok(cli, "runs", "ls", "--deployment", run["deployment_id"], "--output", "json")
    )
    assert [(r["id"], r["deployment_name"]) for r in page["items"]] == [(run["id"], "daily")]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1.5d", 129600)]
)
def test_durations(text: str, seconds: float) -> None:
    from service.cli.inputs import parse_duration

    assert parse_duration(text, "--start-in").total_seconds() == seconds


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.json", "{", "is not valid JSON"),
        ("p.yaml", "a: [", "is not valid YAML"),
        ("p.json", "[1, 2]", "must hold an object"),
        ("missing.json", None, "No such file"),
    ],
)
def test_bad_params_files(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    from service.cli.client import CliError
    from service.cli.inputs import read_params_file

    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(CliError, match=message):
        read_params_file(path)
