"""The runner end to end: ``python -m runner_image`` against an in-test fake service.

The fake service implements the four runner endpoints of the contract and records
everything it receives; each test configures a spec, starts the runner as a real
subprocess, and checks the states, logs and exit code.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from runner_image.logs import (
    BATCH_MAX,
    MAX_MESSAGE_BYTES,
    LogShipper,
    TeeStream,
    truncate_message,
)
from runner_image.outcome import qualified_name, serialize_result

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"

RUN_ID = "run-123"
#: The single-use credential in the runner's environment (the fake service's bootstrap).
TOKEN = "ppb_s3cr3t-bootstrap-4f9a8c1d"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


# -- fake service -------------------------------------------------------------------


@dataclass
class FakeService:
    """Implements the runner API for one flow run; thread-safe recording."""

    url: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    state: str = "PENDING"
    states: list[dict[str, Any]] = field(default_factory=list)
    log_batches: list[list[dict[str, Any]]] = field(default_factory=list)
    heartbeats: int = 0
    heartbeat_state: str | None = None
    refuse_running: bool = False
    #: endpoint name -> how many of the next requests to fail with 503
    fail_next: dict[str, int] = field(default_factory=dict)
    auth_headers: set[str] = field(default_factory=set)
    #: The run token the runner made and exchanged the bootstrap credential for.
    run_token: str | None = None
    exchanges: int = 0
    #: (seq, batch) as received, duplicates included.
    received: list[tuple[int | None, list[dict[str, Any]]]] = field(default_factory=list)
    #: Parameter schemas the runner recorded, and the status the fake answers them with.
    schemas: list[dict[str, Any]] = field(default_factory=list)
    schema_status: int = 204
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, **spec: Any) -> None:
        with self.lock:
            self.spec = {
                "id": RUN_ID,
                "flow_name": "test-flow",
                "deployment_name": "test-deployment",
                "entrypoint": "hello.py:hello",
                "source": {"type": "local", "path": str(EXAMPLES)},
                "parameters": {},
                "parameter_schema": None,
                "run_count": 1,
                "heartbeat_seconds": 30,
                **spec,
            }
            self.state = "PENDING"
            self.states = []
            self.log_batches = []
            self.heartbeats = 0
            self.heartbeat_state = None
            self.refuse_running = False
            self.fail_next = {}
            self.auth_headers = set()
            self.run_token = None
            self.exchanges = 0
            self.received = []
            self.schemas = []
            self.schema_status = 204

    @property
    def state_names(self) -> list[str]:
        return [s["state"] for s in self.states]

    @property
    def logs(self) -> list[dict[str, Any]]:
        return [entry for batch in self.log_batches for entry in batch]

    def messages(self, stream: str | None = None) -> list[str]:
        return [e["message"] for e in self.logs if stream is None or e["stream"] == stream]

    def final(self) -> dict[str, Any]:
        assert self.states, "no state was reported"
        return self.states[-1]

    # -- ASGI app --

    def app(self) -> Starlette:
        base = f"/api/runner/flow-runs/{RUN_ID}"
        return Starlette(
            routes=[
                Route(f"{base}/exchange", self._exchange, methods=["POST"]),
                Route(f"{base}/spec", self._guard("spec", self._spec), methods=["GET"]),
                Route(f"{base}/state", self._guard("state", self._state), methods=["POST"]),
                Route(f"{base}/logs", self._guard("logs", self._logs), methods=["POST"]),
                Route(f"{base}/heartbeat", self._guard("heartbeat", self._beat), methods=["POST"]),
                Route(
                    f"{base}/parameter-schema",
                    self._guard("parameter-schema", self._schema),
                    methods=["PUT"],
                ),
            ]
        )

    async def _exchange(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        body = await request.json()
        with self.lock:
            self.auth_headers.add(header)
            if self.fail_next.get("exchange", 0) > 0:
                self.fail_next["exchange"] -= 1
                return JSONResponse({"detail": "try again"}, status_code=503)
            if header != f"Bearer {TOKEN}" or self.run_token not in (None, body["token"]):
                return JSONResponse({"detail": "invalid bootstrap credential"}, status_code=401)
            self.run_token = body["token"]
            self.exchanges += 1
            return Response(status_code=204)

    def _guard(self, name: str, handler: Callable[[Any], Response]) -> Any:
        async def endpoint(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            body = await request.json() if request.method in ("POST", "PUT") else None
            with self.lock:
                self.auth_headers.add(header)
                if (
                    self.run_token is None
                    or header != f"Bearer {self.run_token}"
                    or (name != "spec" and self.state in TERMINAL)
                ):
                    return JSONResponse({"detail": "invalid run token"}, status_code=401)
                if self.fail_next.get(name, 0) > 0:
                    self.fail_next[name] -= 1
                    return JSONResponse({"detail": "try again"}, status_code=503)
                return handler(body)

        return endpoint

    def _spec(self, body: Any) -> Response:
        return JSONResponse(self.spec)

    def _state(self, body: Any) -> Response:
        target = body["state"]
        if target == "RUNNING" and (self.refuse_running or self.state != "PENDING"):
            return JSONResponse({"detail": f"{self.state} -> RUNNING"}, status_code=409)
        self.states.append(body)
        self.state = target
        return JSONResponse({"state": target, "name": target.capitalize()})

    def _logs(self, body: Any) -> Response:
        seq = body.get("seq")
        self.received.append((seq, body["logs"]))
        if seq is None or seq not in {s for s, _ in self.received[:-1]}:
            self.log_batches.append(body["logs"])
        return Response(status_code=204)

    def _schema(self, body: Any) -> Response:
        self.schemas.append(body["parameter_schema"])
        if self.schema_status == 409:
            return JSONResponse({"detail": "has one already"}, status_code=409)
        return Response(status_code=self.schema_status)

    def _beat(self, body: Any) -> Response:
        self.heartbeats += 1
        if self.heartbeat_state is not None:
            self.state = self.heartbeat_state
        return JSONResponse({"state": self.state})


@pytest.fixture(scope="module")
def server() -> Iterator[FakeService]:
    service = FakeService()
    # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections; without
    # it every JSON response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    service.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        service.app(),
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        http="h11",
        loop="asyncio",
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "fake service did not start"
        time.sleep(0.01)
    yield service
    uv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def service(server: FakeService) -> FakeService:
    server.reset()
    return server


# -- running the runner -------------------------------------------------------------


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def runner_env(service: FakeService, **overrides: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PUSHPOOL_API_URL=service.url,
        PUSHPOOL_FLOW_RUN_ID=RUN_ID,
        PUSHPOOL_BOOTSTRAP_TOKEN=TOKEN,
        PUSHPOOL_DELIVERY_WINDOW_SECONDS="10",
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def start_runner(cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner_image"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], started: float, timeout: float = 20) -> Result:
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"runner timed out\nstdout:\n{stdout}\nstderr:\n{stderr}")
    result = Result(proc.returncode, stdout, stderr, time.monotonic() - started)
    assert TOKEN not in stdout + stderr, "the bootstrap credential was printed"
    assert "ppr_" not in stdout + stderr, "the run token was printed"
    return result


def run_runner(service: FakeService, cwd: Path, **env: str | None) -> Result:
    started = time.monotonic()
    result = finish(start_runner(cwd, runner_env(service, **env)), started)
    shipped = json.dumps(service.logs) + json.dumps(service.states)
    assert TOKEN not in shipped and "ppr_" not in shipped, "a secret was shipped"
    if "PUSHPOOL_BOOTSTRAP_TOKEN" not in env:
        assert service.auth_headers == {f"Bearer {TOKEN}", f"Bearer {service.run_token}"}
        assert service.exchanges == 1
    return result


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def write_flow(directory: Path, name: str, code: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code)
    return path


# -- end-to-end scenarios -----------------------------------------------------------


@pytest.mark.slow
def test_hello_completes_with_result_and_logs(service: FakeService, tmp_path: Path) -> None:
    service.reset(parameters={"name": "pushpool"})

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    assert service.state_names == ["RUNNING", "COMPLETED"]
    assert service.final()["result"] == "Hello, pushpool!"
    assert "Hello, pushpool!" in result.stdout  # tee: still printed
    stdout_lines = [e for e in service.logs if e["stream"] == "stdout"]
    assert [e["message"] for e in stdout_lines] == ["Hello, pushpool!"]
    assert stdout_lines[0]["level"] == "INFO" and stdout_lines[0]["logger"] is None
    assert stdout_lines[0]["timestamp"].endswith("+00:00")
    logged = [e for e in service.logs if e["stream"] == "logging" and e["logger"] == "hello"]
    assert [(e["level"], e["message"]) for e in logged] == [("INFO", "Greeted pushpool")]
    assert all(len(batch) <= BATCH_MAX for batch in service.log_batches)


@pytest.mark.slow
def test_failing_flow_reports_failed(service: FakeService, tmp_path: Path) -> None:
    service.reset(entrypoint="failing.py:fail", parameters={"message": "kaboom"})

    result = run_runner(service, tmp_path)

    assert result.returncode == 1
    assert service.state_names == ["RUNNING", "FAILED"]
    error = service.final()["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "kaboom"
    assert "failing.py" in error["traceback"] and "raise ValueError" in error["traceback"]
    assert "runner_image" not in error["traceback"]  # runner frames are trimmed
    assert "About to fail with 'kaboom'" in service.messages("stdout")


@pytest.mark.slow
def test_sigterm_cancels_a_sleeping_flow(service: FakeService, tmp_path: Path) -> None:
    service.reset(entrypoint="sleepy.py:sleep", parameters={"seconds": 30})
    started = time.monotonic()
    proc = start_runner(tmp_path, runner_env(service))
    wait_for(lambda: "Sleeping for 30 s" in service.messages("stdout"))  # inside the loop

    proc.send_signal(signal.SIGTERM)
    result = finish(proc, started)

    assert result.returncode == 143, result.stderr
    assert service.state_names == ["RUNNING", "CANCELLED"]
    # everything the flow printed before SIGTERM was shipped (final flush)
    assert service.messages("stdout") == result.stdout.splitlines()
    assert result.seconds < 10


@pytest.mark.slow
@pytest.mark.parametrize(
    "code",
    [
        "import asyncio\n\nasync def main():\n    print('started')\n    await asyncio.sleep(30)\n",
        (
            "import threading, time\n\n"
            "def main():\n"
            "    threading.Thread(target=time.sleep, args=(30,)).start()  # not a daemon\n"
            "    print('started')\n"
            "    try:\n"
            "        time.sleep(30)\n"
            "    except BaseException:\n"
            "        return 'swallowed the interruption'\n"
        ),
    ],
    ids=["async", "swallowing-with-thread"],
)
def test_sigterm_cancels_other_flows(service: FakeService, tmp_path: Path, code: str) -> None:
    write_flow(tmp_path, "stubborn.py", code)
    service.reset(entrypoint="stubborn.py:main", source={"type": "image"})
    started = time.monotonic()
    proc = start_runner(tmp_path, runner_env(service))
    wait_for(lambda: "started" in service.messages("stdout"))

    proc.send_signal(signal.SIGTERM)
    result = finish(proc, started)

    assert result.returncode == 143, result.stderr
    assert service.state_names == ["RUNNING", "CANCELLED"]
    assert result.seconds < 10


@pytest.mark.slow
def test_heartbeat_cancelling_cancels_the_flow(service: FakeService, tmp_path: Path) -> None:
    service.reset(entrypoint="sleepy.py:sleep", parameters={"seconds": 30}, heartbeat_seconds=1)
    service.heartbeat_state = "CANCELLING"

    result = run_runner(service, tmp_path)

    assert result.returncode == 143, result.stderr
    assert service.state_names == ["RUNNING", "CANCELLED"]
    assert service.final()["message"] == "Flow run cancelled by the service"
    assert service.heartbeats >= 1
    assert result.seconds < 10


@pytest.mark.slow
def test_parameters_are_validated_against_the_schema(service: FakeService, tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a"],
    }
    service.reset(
        entrypoint="typed_params.py:add",
        parameters={"a": "one", "b": 2},
        parameter_schema=schema,
    )

    result = run_runner(service, tmp_path)

    assert result.returncode == 1
    assert service.state_names == ["FAILED"]  # never RUNNING
    error = service.final()["error"]
    assert error["type"] == "ParameterValidationError"
    assert "parameters.a" in error["message"] and "integer" in error["message"]


IMAGE_FLOW = """
import datetime, enum, pathlib
from pushpool import flow

class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"

class Opaque:
    pass

@flow
def paint(when: datetime.date, colour: Colour, n: int = 2, where: pathlib.Path | None = None,
          thing: Opaque | None = None) -> str:
    return f"{n} x {colour.value} on {when.isoformat()}"
"""


@pytest.mark.slow
def test_an_image_source_records_its_schema_once(service: FakeService, tmp_path: Path) -> None:
    """No schema on an image source's deployment: the runner derives one from the code
    (the same pydantic rules its parameters are checked with) and records it."""
    from jsonschema import Draft202012Validator

    write_flow(tmp_path, "paint.py", IMAGE_FLOW)
    service.reset(
        entrypoint="paint.py:paint",
        source={"type": "image"},
        parameters={"when": "2026-12-03", "colour": "red"},
    )

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    assert service.final()["result"] == "2 x red on 2026-12-03"
    [schema] = service.schemas
    assert schema["title"] == "paint" and schema["additionalProperties"] is False
    assert sorted(schema["required"]) == ["colour", "when"]
    assert schema["properties"]["n"]["default"] == 2
    check = Draft202012Validator(schema)
    assert check.is_valid({"when": "2026-12-03", "colour": "blue", "where": "/tmp/x"})
    assert not check.is_valid({"when": "3 December", "colour": "red"})  # the date pattern
    assert not check.is_valid({"when": "2026-12-03", "colour": "green"})  # not an enum value
    assert not check.is_valid({"when": "2026-12-03", "colour": "red", "n": "two"})
    assert not check.is_valid({"when": "2026-12-03", "colour": "red", "other": 1})


@pytest.mark.slow
def test_a_schema_is_not_recorded_when_the_deployment_has_one(
    service: FakeService, tmp_path: Path
) -> None:
    write_flow(tmp_path, "paint.py", IMAGE_FLOW)
    schema = {"type": "object"}
    service.reset(
        entrypoint="paint.py:paint",
        source={"type": "image"},
        parameters={"when": "2026-12-03", "colour": "red"},
        parameter_schema=schema,
    )
    assert run_runner(service, tmp_path).returncode == 0
    assert service.schemas == []
    # a local source is read at deploy time: nothing to record either
    service.reset(parameters={"name": "x"})
    assert run_runner(service, tmp_path).returncode == 0
    assert service.schemas == []


@pytest.mark.slow
def test_a_refused_schema_does_not_fail_the_run(service: FakeService, tmp_path: Path) -> None:
    write_flow(tmp_path, "paint.py", IMAGE_FLOW)
    service.reset(
        entrypoint="paint.py:paint",
        source={"type": "image"},
        parameters={"when": "2026-12-03", "colour": "red"},
    )
    service.schema_status = 409
    result = run_runner(service, tmp_path)
    assert result.returncode == 0, result.stderr
    assert service.state_names == ["RUNNING", "COMPLETED"]
    assert len(service.schemas) == 1


@pytest.mark.slow
def test_valid_typed_parameters(service: FakeService, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    service.reset(
        entrypoint="typed_params.py:add",
        parameters={"a": 40, "label": "answer"},
        parameter_schema=schema,
    )

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    assert service.final()["result"] == {"label": "answer", "a": 40, "b": 2, "total": 42}


@pytest.mark.slow
def test_unknown_parameter_fails_before_running(service: FakeService, tmp_path: Path) -> None:
    service.reset(parameters={"nme": "typo"})

    result = run_runner(service, tmp_path)

    assert result.returncode == 1
    assert service.state_names == ["FAILED"]
    assert service.final()["error"]["type"] == "ParameterValidationError"
    assert "nme" in service.final()["error"]["message"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("entrypoint", "fragment"),
    [
        ("../escape.py:main", "outside the source root"),
        ("/etc/passwd.py:main", "relative to the source root"),
        ("hello.py:nope", "not found"),
        ("hello.py", "no ':'"),
    ],
)
def test_bad_entrypoints_fail(
    service: FakeService, tmp_path: Path, entrypoint: str, fragment: str
) -> None:
    root = tmp_path / "root"
    write_flow(root, "hello.py", "def hello():\n    return 1\n")
    write_flow(tmp_path, "escape.py", "def main():\n    print('escaped!')\n")
    service.reset(entrypoint=entrypoint, source={"type": "local", "path": str(root)})

    result = run_runner(service, tmp_path)

    assert result.returncode == 1
    assert service.state_names == ["FAILED"]
    error = service.final()["error"]
    assert error["type"] == "EntrypointError"
    assert fragment in error["message"]
    assert "escaped!" not in result.stdout


@pytest.mark.slow
def test_import_error_is_reported(service: FakeService, tmp_path: Path) -> None:
    write_flow(tmp_path, "broken.py", "import does_not_exist_anywhere\n\ndef f():\n    pass\n")
    service.reset(entrypoint="broken.py:f", source={"type": "image"})

    result = run_runner(service, tmp_path)

    assert result.returncode == 1
    error = service.final()["error"]
    assert error["type"] == "FlowImportError"
    assert "ModuleNotFoundError" in error["message"]
    assert "does_not_exist_anywhere" in error["message"]


@pytest.mark.slow
def test_async_flow(service: FakeService, tmp_path: Path) -> None:
    service.reset(entrypoint="async_flow.py:fetch_all", parameters={"count": 3})

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    assert service.final()["result"] == [0, 1, 4]
    assert sorted(service.messages("stdout")) == ["task 0 done", "task 1 done", "task 2 done"]


@pytest.mark.slow
def test_running_refused_does_not_run_the_flow(service: FakeService, tmp_path: Path) -> None:
    service.reset()
    service.refuse_running = True

    result = run_runner(service, tmp_path)

    assert result.returncode != 0
    assert service.state_names == []
    assert "Hello" not in result.stdout
    assert "RUNNING" in result.stderr


@pytest.mark.slow
def test_invalid_token_stops_the_runner(service: FakeService, tmp_path: Path) -> None:
    result = run_runner(service, tmp_path, PUSHPOOL_BOOTSTRAP_TOKEN="ppb_wrong-token")

    assert result.returncode == 3  # a runner fault: the flow did not run
    assert "401" in result.stderr
    assert service.state_names == []


@pytest.mark.slow
def test_missing_environment_exits_2(service: FakeService, tmp_path: Path) -> None:
    env = runner_env(service, PUSHPOOL_FLOW_RUN_ID=None, PUSHPOOL_BOOTSTRAP_TOKEN=None)

    result = finish(start_runner(tmp_path, env), time.monotonic())

    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "PUSHPOOL_FLOW_RUN_ID" in result.stderr and "PUSHPOOL_BOOTSTRAP_TOKEN" in result.stderr


@pytest.mark.slow
def test_transient_errors_are_retried(service: FakeService, tmp_path: Path) -> None:
    service.reset()
    service.fail_next = {"exchange": 1, "spec": 1, "state": 2, "logs": 1}

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    assert service.state_names == ["RUNNING", "COMPLETED"]
    assert "Hello, world!" in service.messages("stdout")


@pytest.mark.slow
def test_token_is_hidden_from_the_flow(service: FakeService, tmp_path: Path) -> None:
    code = (
        "import os\n\n"
        "def peek():\n"
        "    print('token:', os.environ.get('PUSHPOOL_BOOTSTRAP_TOKEN'))\n"
        "    return sorted(k for k in os.environ if k.startswith('PUSHPOOL_'))\n"
    )
    write_flow(tmp_path, "peek.py", code)
    service.reset(entrypoint="peek.py:peek", source={"type": "image"})

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "token: None" in service.messages("stdout")
    assert service.final()["result"] == [
        "PUSHPOOL_API_URL",
        "PUSHPOOL_DELIVERY_WINDOW_SECONDS",
        "PUSHPOOL_FLOW_RUN_ID",
    ]


@pytest.mark.slow
def test_many_and_long_lines_are_batched(service: FakeService, tmp_path: Path) -> None:
    code = (
        "import logging, sys\n\n"
        "def chatty():\n"
        "    for i in range(1200):\n"
        "        print(f'line {i}')\n"
        "    print('x' * 40000)\n"
        "    sys.stderr.write('to stderr\\n')\n"
        "    print('no newline at the end', end='')\n"
        "    return object()\n"
    )
    write_flow(tmp_path, "chatty.py", code)
    service.reset(entrypoint="chatty.py:chatty", source={"type": "image"})

    result = run_runner(service, tmp_path)

    assert result.returncode == 0, result.stderr
    stdout = service.messages("stdout")
    assert stdout[:1200] == [f"line {i}" for i in range(1200)]
    assert len(stdout[1200].encode()) <= MAX_MESSAGE_BYTES and stdout[1200].startswith("xxx")
    assert stdout[-1] == "no newline at the end"
    assert "to stderr" in service.messages("stderr")
    assert max(len(batch) for batch in service.log_batches) <= BATCH_MAX
    assert service.final()["result"]["repr"].startswith("<object object at")


@pytest.mark.slow
def test_git_source(service: FakeService, tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    write_flow(origin, "flows/main.py", "from helper import VALUE\n\ndef go():\n    return VALUE\n")
    write_flow(origin, "flows/helper.py", "VALUE = 'from git'\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=origin, check=True)
    subprocess.run([*git, "add", "."], cwd=origin, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "flows"], cwd=origin, check=True)
    workdir = tmp_path / "work"
    workdir.mkdir()
    source = {"type": "git", "url": origin.as_uri(), "ref": "main"}
    service.reset(entrypoint="flows/main.py:go", source=source)

    result = run_runner(service, workdir)

    assert result.returncode == 0, result.stderr
    assert service.final()["result"] == "from git"
    assert list(workdir.iterdir()) == []  # the clone is removed afterwards


# -- units (in-process, fast) -------------------------------------------------------


def test_truncate_message_limits_utf8_bytes() -> None:
    assert truncate_message("short") == "short"
    long = "é" * 10_000  # 20 000 bytes
    cut = truncate_message(long)
    assert len(cut.encode()) <= MAX_MESSAGE_BYTES
    assert cut.endswith("[truncated]")


def test_tee_stream_splits_lines_and_writes_through() -> None:
    original = io.StringIO()
    entries: list[dict[str, Any]] = []
    tee = TeeStream(original, "stdout", entries.append, lambda s: s.replace(TOKEN, "***"))

    tee.write("a\nb")
    tee.write("c\r\n")
    print("with", TOKEN, file=tee)
    tee.write("tail")
    tee.finish()

    assert [e["message"] for e in entries] == ["a", "bc", "with ***", "tail"]
    assert original.getvalue() == "a\nbc\r\nwith ***\ntail"


def test_log_shipper_batches_and_flushes_on_close() -> None:
    sent: list[list[dict[str, Any]]] = []
    seqs: list[int] = []

    def send(batch: list[dict[str, Any]], seq: int, deadline: float | None) -> None:
        sent.append(batch)
        seqs.append(seq)

    shipper = LogShipper(send, interval=60)
    shipper.start()
    for i in range(1234):
        shipper.add({"message": str(i)})
    shipper.close()

    assert [len(b) for b in sent if b] and all(len(b) <= BATCH_MAX for b in sent)
    assert [e["message"] for b in sent for e in b] == [str(i) for i in range(1234)]
    assert seqs == list(range(len(sent)))


def test_serialize_result() -> None:
    assert serialize_result({"a": [1, 2.5, None]}) == {"a": [1, 2.5, None]}
    assert serialize_result(float("nan")) == {"repr": "nan"}
    assert serialize_result({1, 2}) == {"repr": "{1, 2}"}

    class Big:
        def __repr__(self) -> str:
            return "x" * 5000

    assert serialize_result(Big()) == {"repr": "x" * 2000}


def test_qualified_name() -> None:
    class Local(Exception):
        pass

    assert qualified_name(ValueError) == "ValueError"
    assert qualified_name(Local) == f"{__name__}.test_qualified_name.<locals>.Local"
