"""What the CLI reads from a user before it calls the API: durations and instants, parameter
files, a git source that must resolve, and what a redeploy changes. Errors are
:class:`CliError` naming the option at fault."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from service.cli.client import CliError
from service.git_refs import is_commit

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
#: How long a deploy waits for ``git ls-remote``.
GIT_TIMEOUT_SECONDS = 20.0  # = service.git_refs.GIT_TIMEOUT_SECONDS (not imported: lazily)
#: How long a deploy waits for the clone it reads the flow's parameters from.
GIT_CLONE_TIMEOUT_SECONDS = 120.0
#: The deployment fields a redeploy reports when they change.
DIFF_FIELDS = (
    "entrypoint",
    "work_pool",
    "source",
    "schedules",
    "parameters",
    "retries",
    "retry_delay_seconds",
    "concurrency_limit",
    "catchup",
    "paused",
    "tags",
    "job_variables",
    "timeout_seconds",
    "blocks",
)


def parse_duration(text: str, option: str) -> timedelta:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d``, ``1w`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise CliError(f"{option} {text!r} is not a duration like 30s, 10m, 2h or 1d")
    unit = (match[2] or "s").lower()
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[unit])


def parse_instant(text: str, option: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is this machine's local time."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option} {text!r} is not an ISO 8601 date-time like 2026-01-31T09:00 "
            "(with an offset such as +01:00 or Z, or local time without one)"
        ) from None
    return value if value.tzinfo is not None else value.astimezone()


def since_instant(text: str, now: datetime, option: str = "--since") -> datetime:
    """``--since``: a duration back from ``now`` (``1h``) or an ISO date-time."""
    if _DURATION.match(text):
        return now - parse_duration(text, option)
    return parse_instant(text, option)


def start_at(start_in: str | None, at: str | None, now: datetime) -> datetime | None:
    """The instant ``--start-in`` / ``--start-at`` ask for (UTC), or None for now."""
    if start_in is not None and at is not None:
        raise CliError("give --start-in or --start-at, not both")
    if start_in is not None:
        return now + parse_duration(start_in, "--start-in")
    if at is not None:
        return parse_instant(at, "--start-at").astimezone(UTC)
    return None


def read_object_file(path: Path, option: str, what: str) -> dict[str, Any]:
    """A JSON or YAML (``.yaml``/``.yml``) file holding one object (``what`` says of
    what). A parse error gives the position only: no line of the file is ever echoed
    (it may hold secrets)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"{option} {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise CliError(f"{option} {path} is not valid YAML{where}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CliError(
                f"{option} {path} is not valid JSON at line {exc.lineno}, column {exc.colno}"
            ) from None
    if not isinstance(data, dict):
        raise CliError(f"{option} {path} must hold an object of {what}")
    return data


def read_params_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML (``.yaml``/``.yml``) file holding one object of parameters."""
    return read_object_file(path, "--params-file", "parameter names to values")


def check_git_source(url: str, ref: str | None, timeout: float = GIT_TIMEOUT_SECONDS) -> None:
    """Fail now, not at run time, when the repository or the ref does not resolve."""
    from service.git_refs import GitUnavailable, git_ref_problem

    try:
        problem = git_ref_problem(url, ref, timeout)
    except GitUnavailable:
        raise CliError("git is not installed: cannot check the --source repository") from None
    if problem is not None:
        raise CliError(problem)


@contextmanager
def git_checkout(
    url: str, ref: str | None, timeout: float = GIT_CLONE_TIMEOUT_SECONDS
) -> Iterator[Path]:
    """The files of ``ref`` (default: the remote's HEAD) in a temporary directory, removed
    afterwards: the code a run of a git-source deployment will run, read (never executed)
    for its parameter schema. A branch or tag is cloned shallow; a commit id fully."""
    with tempfile.TemporaryDirectory(prefix="pushpool-deploy-") as tmp:
        dest = Path(tmp) / "src"
        if is_commit(ref):
            _git(["clone", "--quiet", "--no-checkout", "--", url, str(dest)], url, timeout)
            _git(["-C", str(dest), "checkout", "--quiet", str(ref)], url, timeout)
        else:
            branch = ["--branch", ref] if ref else []
            args = ["clone", "--quiet", "--depth", "1", *branch, "--", url, str(dest)]
            _git(args, url, timeout)
        yield dest


def _git(args: list[str], url: str, timeout: float) -> None:
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
            check=False,
        )
    except FileNotFoundError:
        raise CliError("git is not installed: cannot read the --source repository") from None
    except subprocess.TimeoutExpired:
        raise CliError(f"git source {url}: no clone within {timeout:.0f}s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git failed"])[-1]
        raise CliError(f"git source {url}: cannot read the flow's code: {reason}")


def check_inside(root: Path, relative: Path) -> None:
    """The entrypoint file, symlinks followed, lies inside the source directory."""
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise CliError(
            f"{relative} resolves to {resolved}, outside the source directory {root}: "
            "a run would not find it"
        )


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def deployment_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per field a redeploy changes: ``retries: 3 -> 0``."""
    return [
        f"{name}: {_show(old.get(name))} -> {_show(new.get(name))}"
        for name in DIFF_FIELDS
        if _show(old.get(name)) != _show(new.get(name))
    ]
