"""Obtaining flow code: local directories, git clones (file:// URLs), the image's cwd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from runner_image.errors import SourceError
from runner_image.source import (
    CLONE_PREFIX,
    looks_like_sha,
    prepare_source,
    redact_url,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True)
    return proc.stdout.strip()


def commit(repo: Path, content: str) -> str:
    (repo / "flow.py").write_text(f"VERSION = {content!r}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", content)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A repo with history: v1 (tag), v2 (main), v3 (branch 'feature')."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "v1")
    git(repo, "tag", "v1.0")
    commit(repo, "v2")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, "v3")
    git(repo, "checkout", "-q", "main")
    return repo


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def version(root: Path) -> str:
    return (root / "flow.py").read_text().split("=")[1].strip().strip("'")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ref", "expected"),
    [(None, "v2"), ("main", "v2"), ("feature", "v3"), ("v1.0", "v1")],
)
def test_clone_branch_or_tag(origin: Path, workdir: Path, ref: str | None, expected: str) -> None:
    checkout = prepare_source({"type": "git", "url": origin.as_uri(), "ref": ref}, workdir)

    assert version(checkout.root) == expected
    assert checkout.root.is_relative_to(workdir)
    assert checkout.root.parent.name.startswith(CLONE_PREFIX)
    assert git(checkout.root, "rev-parse", "--is-shallow-repository") == "true"
    checkout.cleanup()
    assert list(workdir.iterdir()) == []


@pytest.mark.slow
def test_clone_commit_sha(origin: Path, workdir: Path) -> None:
    first = git(origin, "rev-list", "--max-parents=0", "HEAD")
    feature_tip = git(origin, "rev-parse", "feature")

    for ref, expected in [(first, "v1"), (feature_tip[:10], "v3")]:
        checkout = prepare_source({"type": "git", "url": origin.as_uri(), "ref": ref}, workdir)
        assert version(checkout.root) == expected
        checkout.cleanup()


@pytest.mark.slow
def test_clone_unknown_ref_fails_clearly(origin: Path, workdir: Path) -> None:
    with pytest.raises(SourceError, match="git: could not check out 'no-such-branch'"):
        prepare_source({"type": "git", "url": origin.as_uri(), "ref": "no-such-branch"}, workdir)
    assert list(workdir.iterdir()) == []  # nothing left behind


@pytest.mark.slow
def test_clone_bad_url_fails_clearly(tmp_path: Path, workdir: Path) -> None:
    missing = (tmp_path / "nope").as_uri()
    with pytest.raises(SourceError, match="git: could not clone"):
        prepare_source({"type": "git", "url": missing, "ref": None}, workdir)


@pytest.mark.slow
def test_clone_error_hides_credentials(workdir: Path) -> None:
    url = "http://user:hunter2secret@127.0.0.1:9/repo.git"  # port 9: connection refused
    with pytest.raises(SourceError) as info:
        prepare_source({"type": "git", "url": url}, workdir)
    assert "hunter2secret" not in str(info.value)
    assert "***@127.0.0.1:9" in str(info.value)


def test_git_source_validation(workdir: Path) -> None:
    with pytest.raises(SourceError, match="no 'url'"):
        prepare_source({"type": "git"}, workdir)
    with pytest.raises(SourceError, match="invalid git ref"):
        prepare_source({"type": "git", "url": "file:///x", "ref": "--upload-pack=evil"}, workdir)


def test_local_source(tmp_path: Path, workdir: Path) -> None:
    (tmp_path / "code").mkdir()

    assert prepare_source({"type": "local", "path": str(tmp_path / "code")}).root == (
        tmp_path / "code"
    )
    assert prepare_source({"type": "local", "path": "../code"}, workdir).root == tmp_path / "code"
    with pytest.raises(SourceError, match="not a directory"):
        prepare_source({"type": "local", "path": str(tmp_path / "missing")}, workdir)
    with pytest.raises(SourceError, match="no 'path'"):
        prepare_source({"type": "local"}, workdir)


def test_local_cleanup_never_deletes(tmp_path: Path) -> None:
    checkout = prepare_source({"type": "local", "path": str(tmp_path)})
    checkout.cleanup()
    assert tmp_path.is_dir()


def test_image_source_is_the_working_directory(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    assert prepare_source({"type": "image"}).root == workdir.resolve()
    assert prepare_source(None).root == workdir.resolve()


def test_unknown_source_type(workdir: Path) -> None:
    with pytest.raises(SourceError, match="unknown source type 's3'"):
        prepare_source({"type": "s3"}, workdir)


def test_looks_like_sha() -> None:
    assert looks_like_sha("a" * 40)
    assert looks_like_sha("DEADBEEF12")
    assert not looks_like_sha("main")
    assert not looks_like_sha("abc")  # too short
    assert not looks_like_sha("v1.0")


def test_redact_url() -> None:
    assert redact_url("https://github.com/o/r.git") == "https://github.com/o/r.git"
    assert (
        redact_url("https://x-token:ghp_abc@github.com/o/r.git") == "https://***@github.com/o/r.git"
    )
