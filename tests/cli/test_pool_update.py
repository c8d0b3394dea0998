"""`pushpool work-pool update` against a live server: merged config, the server's
validation as one line, concurrency limit, --output json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.e2e import cli_server, invoke
from support.server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with cli_server(tmp_path / "home", monkeypatch) as server:
        yield server


def config_of(name: str) -> dict[str, object]:
    code, out = invoke("work-pool", "inspect", name, "--output", "json")
    assert code == 0, out
    return dict(json.loads(out)["config"])


def test_update_merges_config_from_sets_and_a_file(live: LiveServer, tmp_path: Path) -> None:
    roots = [str(tmp_path)]
    code, out = invoke("work-pool", "create", "p", "--set", "python=/usr/bin/python3")
    assert code == 0, out
    extra = tmp_path / "config.yaml"
    extra.write_text("allow_job_commands: true\n")
    code, out = invoke(
        "work-pool", "update", "p", "--set", f"allowed_source_roots={json.dumps(roots)}",
        "-f", str(extra), "--concurrency-limit", "3", "--output", "json",
    )  # fmt: skip
    assert code == 0, out
    pool = json.loads(out)
    assert pool["concurrency_limit"] == 3
    assert pool["config"] == {
        "python": "/usr/bin/python3",  # kept
        "allowed_source_roots": roots,
        "allow_job_commands": True,
    }
    code, out = invoke("work-pool", "update", "p", "--unset", "allow_job_commands")
    assert code == 0, out
    assert "Updated work pool p" in out
    assert "allow_job_commands" not in config_of("p")
    code, out = invoke("work-pool", "update", "p", "--no-concurrency-limit", "-o", "json")
    assert code == 0, out
    assert json.loads(out)["concurrency_limit"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "allowed_source_roots=relative/dir"), "allowed_source_roots"),
        (("--set", "no_such_key=1"), "no_such_key"),
        (("--unset", "absent"), "--unset absent: the pool's config has no such key"),
        ((), "nothing to change"),
        (("--concurrency-limit", "2", "--no-concurrency-limit"), "not both"),
    ],
)
def test_update_errors_are_one_line_and_change_nothing(
    live: LiveServer, args: tuple[str, ...], message: str
) -> None:
    assert invoke("work-pool", "create", "q", "--set", "python=/usr/bin/python3")[0] == 0
    code, out = invoke("work-pool", "update", "q", *args)
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], out
    assert config_of("q") == {"python": "/usr/bin/python3"}


def test_update_of_a_missing_pool_is_one_line(live: LiveServer) -> None:
    code, out = invoke("work-pool", "update", "nope", "--set", "x=1")
    assert code == 1
    assert [line for line in out.splitlines() if line.strip()] == [
        "Error: work pool 'nope' not found (HTTP 404)"
    ], out
