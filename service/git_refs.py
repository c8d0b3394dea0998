"""Does a git source resolve? ``git ls-remote``, bounded in time, never prompting.

Used by the CLI before it deploys (on the user's machine) and by the API when a
deployment's runs would clone on the server machine itself (process pools): there the
runner fetches that URL anyway, so checking it adds no reach. Other pools clone in their
cloud container, which the server may not be able to reach; and where ``git`` is not
installed (Lambda) nothing is checked: the runner reports a bad ref when the run starts.
"""

from __future__ import annotations

import os
import re
import subprocess

#: How long a check waits for ``git ls-remote``.
GIT_TIMEOUT_SECONDS = 20.0


class GitUnavailable(Exception):
    """``git`` is not installed here: the source cannot be checked."""


def git_ref_problem(url: str, ref: str | None, timeout: float = GIT_TIMEOUT_SECONDS) -> str | None:
    """Why ``url`` at ``ref`` (``HEAD`` when none) does not resolve, or ``None`` if it does
    (or ``ref`` is a commit id, which ``ls-remote`` does not advertise; the runner checks it
    out). Raises :class:`GitUnavailable` where git is not installed."""
    target = ref or "HEAD"
    try:
        done = subprocess.run(
            ["git", "ls-remote", "--exit-code", url, target],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},  # never ask for a password
            check=False,
        )
    except FileNotFoundError:
        raise GitUnavailable("git is not installed") from None
    except subprocess.TimeoutExpired:
        return f"git source {url}: no answer within {timeout:.0f}s (git ls-remote)"
    if done.returncode == 2 and is_commit(ref):
        return None
    if done.returncode == 2:
        return f"git source {url} has no ref {target!r}"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["git ls-remote failed"])[-1]
        return f"git source {url} does not resolve: {reason}"
    return None


def is_commit(ref: str | None) -> bool:
    return ref is not None and re.fullmatch(r"[0-9a-fA-F]{7,40}", ref) is not None
