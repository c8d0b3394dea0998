"""A real git repository for tests that deploy a git source."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_repo(where: Path) -> str:
    """A repository at ``where`` (branch ``main``, one commit of ``flow.py``): its URL."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(where)], check=True)
    (where / "flow.py").write_text("def f():\n    pass\n")
    git = ["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return f"file://{where}"
