"""The API refuses a git source that does not resolve when the server itself would clone
it (a process pool), and accepts it unchecked where git is not installed (Lambda)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.factories import deployment_body
from support.git import make_repo


@pytest.fixture
def repo_url(tmp_path: Path) -> str:
    return make_repo(tmp_path / "repo")


def _git_body(url: str, ref: str | None) -> dict[str, object]:
    return deployment_body(
        name="g", entrypoint="flow.py:f", source={"type": "git", "url": url, "ref": ref}
    )


def test_a_ref_that_does_not_resolve_is_a_422_naming_it(api: TestClient, repo_url: str) -> None:
    resp = api.post("/api/deployments", json=_git_body(repo_url, "nope"))
    assert resp.status_code == 422, resp.text
    assert "has no ref 'nope'" in resp.text and "source.ref" in resp.text
    resp = api.post("/api/deployments", json=_git_body(repo_url + "-missing", None))
    assert resp.status_code == 422 and "does not resolve" in resp.text, resp.text
    assert api.get("/api/deployments").json() == []
    assert api.post("/api/deployments", json=_git_body(repo_url, "main")).status_code == 201
    commit = "0123456789abcdef0123456789abcdef01234567"  # not advertised: the runner checks
    assert api.post("/api/deployments", json=_git_body(repo_url, commit)).status_code == 200


def test_without_git_the_ref_is_left_to_the_runner(
    api: TestClient, repo_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert api.post("/api/deployments", json=_git_body(repo_url, "nope")).status_code == 201
