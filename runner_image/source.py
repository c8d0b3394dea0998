"""Getting the flow's code: a local directory, a git clone, or the image itself."""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from runner_image.errors import SourceError

GIT_TIMEOUT = 600.0
CLONE_PREFIX = ".pushpool-src-"


@dataclass
class SourceCheckout:
    """Where the code is; ``cleanup`` removes it if the runner created it."""

    root: Path
    temporary: bool = False

    def cleanup(self) -> None:
        if self.temporary:
            shutil.rmtree(self.root.parent, ignore_errors=True)


def prepare_source(source: Mapping[str, Any] | None, workdir: Path | None = None) -> SourceCheckout:
    """Return the source root described by the spec's ``source`` object."""
    workdir = Path.cwd() if workdir is None else workdir
    kind = (source or {}).get("type", "image")
    if kind == "image":
        return SourceCheckout(workdir.resolve())
    assert source is not None
    if kind == "local":
        return SourceCheckout(_local_root(source.get("path"), workdir))
    if kind == "git":
        url, ref = source.get("url"), source.get("ref")
        if not isinstance(url, str) or not url:
            raise SourceError("git source has no 'url'")
        if ref is not None and (not isinstance(ref, str) or ref.startswith("-")):
            raise SourceError(f"invalid git ref {ref!r}")
        return clone(url, ref or None, workdir)
    raise SourceError(f"unknown source type {kind!r} (expected 'local', 'git' or 'image')")


#: Set by the process pool when its config limits where a ``local`` source may be.
SOURCE_ROOTS_ENV = "PUSHPOOL_ALLOWED_SOURCE_ROOTS"


def _local_root(path: object, workdir: Path) -> Path:
    if not isinstance(path, str) or not path:
        raise SourceError("local source has no 'path'")
    root = (workdir / path).resolve()
    allowed = os.environ.get(SOURCE_ROOTS_ENV)
    if allowed is not None:
        roots = [Path(r).resolve() for r in allowed.split(os.pathsep) if r]
        if not roots:
            raise SourceError("the pool allows no local source (it has no allowed_source_roots)")
        if not any(root.is_relative_to(r) for r in roots):
            raise SourceError(f"local source path {path!r} is not under the pool's allowed roots")
    if not root.is_dir():
        raise SourceError(f"local source path {path!r} is not a directory")
    return root


def clone(url: str, ref: str | None, workdir: Path) -> SourceCheckout:
    """Clone ``url`` into a new temporary directory under ``workdir``; check out ``ref``."""
    parent = Path(tempfile.mkdtemp(prefix=CLONE_PREFIX, dir=workdir))
    checkout = SourceCheckout(parent / "repo", temporary=True)
    try:
        _clone_into(url, ref, checkout.root)
    except BaseException:
        checkout.cleanup()
        raise
    checkout.root = checkout.root.resolve()
    return checkout


def _clone_into(url: str, ref: str | None, dest: Path) -> None:
    if ref is None:
        _git(["clone", "--quiet", "--depth", "1", "--", url, str(dest)], url)
        return
    if not looks_like_sha(ref):
        try:  # branch or tag: a shallow clone is enough
            _git(["clone", "--quiet", "--depth", "1", "--branch", ref, "--", url, str(dest)], url)
            return
        except SourceError:
            shutil.rmtree(dest, ignore_errors=True)  # maybe another kind of ref: full clone
    _git(["clone", "--quiet", "--", url, str(dest)], url)
    _git(["checkout", "--quiet", ref, "--"], url, cwd=dest, what=f"check out {ref!r}")


def looks_like_sha(ref: str) -> bool:
    return 7 <= len(ref) <= 40 and all(c in string.hexdigits for c in ref)


def _git(args: list[str], url: str, *, cwd: Path | None = None, what: str = "") -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    command = ["git", "-c", "advice.detachedHead=false", *args]
    action = what or f"clone {redact_url(url)}"
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise SourceError("the 'git' executable is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise SourceError(f"git: could not {action}: timed out after {GIT_TIMEOUT:.0f}s") from exc
    if proc.returncode != 0:
        detail = _redact_output(proc.stderr.strip() or proc.stdout.strip(), url)
        raise SourceError(f"git: could not {action}: {detail or f'exit code {proc.returncode}'}")


def redact_url(url: str) -> str:
    """Drop credentials (``https://user:token@host``) from a URL for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def _redact_output(text: str, url: str) -> str:
    safe = redact_url(url)
    if safe != url:
        text = text.replace(url, safe)
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return text[-2000:]
