"""The CLI against a live server: a server whose URL and admin key the CLI reads from its
environment, and one call of the CLI with its exit code and output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli.main import app
from service.settings import Settings
from support.server import LiveServer, live_server


@contextmanager
def cli_server(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with live_server(Settings(home=home)) as server:
        monkeypatch.setenv("PUSHPOOL_API_URL", server.url)
        monkeypatch.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output
