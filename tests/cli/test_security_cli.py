"""The CLI side of the security model: what `server start` writes and says, recovering
an admin key on the server's machine, keys with roles, and a suite immune to the
user's PUSHPOOL_* variables."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from support.factories import REPO
from support.server import LiveServer, live_server
from typer.testing import CliRunner

from service.cli.main import app
from service.models import Role
from service.security import hash_secret
from service.settings import Settings
from service.store.sql import SqlStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PUSHPOOL_HOME", str(home))
    return home


def _start(monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)  # everything but serving
    result = CliRunner().invoke(app, ["server", "start", "--port", "4399"])
    return result.exit_code, result.output


def test_server_start_locks_down_home_and_never_prints_the_key(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    database = home / "pushpool.db"
    SqlStore(f"sqlite:///{database}").migrate()
    os.chmod(database, 0o644)

    code, out = _start(monkeypatch)

    assert code == 0, out
    assert (_mode(home), _mode(database)) == (0o700, 0o600)
    credentials = home / "credentials"
    assert _mode(credentials) == 0o600
    key = json.loads(credentials.read_text())["api_key"]
    assert key not in out and str(credentials) in " ".join(out.split())
    assert all(_mode(p) == 0o600 for p in home.glob("pushpool.db*"))


def test_a_new_database_is_never_readable_by_others(home: Path) -> None:
    from service.store import open_store

    old = os.umask(0o022)
    try:
        open_store(Settings()).close()
    finally:
        os.umask(old)
    assert (_mode(home), _mode(home / "pushpool.db")) == (0o700, 0o600)


def test_recover_key_mints_an_admin_key_from_the_store(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _start(monkeypatch)[0] == 0
    first = json.loads((home / "credentials").read_text())["api_key"]
    result = CliRunner().invoke(app, ["admin", "recover-key", "--name", "rescue"])
    assert result.exit_code == 0, result.output
    saved = json.loads((home / "credentials").read_text())
    assert saved["api_key"] != first and saved["api_key"] not in result.output
    store = SqlStore(f"sqlite:///{home / 'pushpool.db'}")
    found = store.find_api_key(hash_secret(saved["api_key"]))
    store.close()
    assert found is not None and (found.name, found.role) == ("rescue", Role.ADMIN)


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with live_server(Settings(home=tmp_path / "server")) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_api_keys_with_roles(live: LiveServer) -> None:
    made = json.loads(
        _cli("api-key", "create", "ci", "--role", "deployer", "--pool", "local", "-o", "json")
    )
    assert (made["role"], made["pools"]) == ("deployer", ["local"])
    listed = {k["name"]: k for k in json.loads(_cli("api-key", "ls", "-o", "json"))}
    assert (listed["ci"]["role"], listed["admin"]["role"]) == ("deployer", "admin")
    table = _cli("api-key", "ls")
    assert "deployer" in table and "role" in table
    result = CliRunner().invoke(app, ["api-key", "revoke", listed["admin"]["id"]])
    assert result.exit_code == 1 and "last admin key" in result.output


@pytest.mark.slow
def test_the_suite_ignores_the_users_pushpool_variables(tmp_path: Path) -> None:
    hostile = {
        "PUSHPOOL_HOME": str(tmp_path / "users-home"),
        "PUSHPOOL_DATABASE_URL": "sqlite:////nonexistent/dir/x.db",
        "PUSHPOOL_API_KEY": "pp_users_own_key",
        "PUSHPOOL_PORT": "1",
    }
    target = "tests/runner/test_runner.py::test_token_is_hidden_from_the_flow"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=REPO,
        env={**os.environ, **hostile},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:]


def test_the_default_pool_takes_local_sources_only_under_the_start_directory(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from service.store import open_store

    start_dir = tmp_path / "checkout"
    start_dir.mkdir()
    monkeypatch.chdir(start_dir)
    code, out = _start(monkeypatch)
    assert code == 0, out
    assert f"local sources under {start_dir}" in " ".join(out.split())
    store = open_store(Settings())
    try:
        assert store.get_pool("local").config["allowed_source_roots"] == [str(start_dir)]
    finally:
        store.close()


def test_an_old_local_pool_without_roots_gets_a_warning_naming_the_setting(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.store import open_store

    assert _start(monkeypatch)[0] == 0
    store = open_store(Settings())
    try:  # as a database from before source roots has it
        store.update_pool(
            "local", {"config": {"working_dir": str(home / "runs")}}, datetime.now(UTC)
        )
    finally:
        store.close()
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: None)
    result = CliRunner().invoke(app, ["server", "start", "--deploy", "examples/hello.py:hello"])
    assert result.exit_code == 0, result.output  # it still serves
    said = " ".join(result.output.split())
    assert "'local' allows no local source" in said and "allowed_source_roots" in said
    assert "PATCH /api/work-pools/local" in said
    assert "pushpool work-pool update local --set 'allowed_source_roots=[" in said
    assert "Not deployed examples/hello.py:hello" in said
