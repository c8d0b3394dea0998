"""Shared by the end-to-end tests: a live server the CLI talks to, the CLI, a run's detail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from service.settings import Settings
from support.server import LiveServer, live_server


@contextmanager
def cli_server(
    home: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> Iterator[LiveServer]:
    """A live server (``PUSHPOOL_HOME`` at ``home``, other settings as given), with the
    environment pointing the CLI at it and its admin key."""
    with live_server(Settings(home=home, **settings)) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


def invoke(*args: str) -> tuple[int, str]:
    """Run the CLI in process: exit code and output."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def get_run(live: LiveServer, run_id: str) -> dict[str, Any]:
    r = live.client.get(f"/flow-runs/{run_id}")
    assert r.status_code == 200, r.text
    run: dict[str, Any] = r.json()
    return run
