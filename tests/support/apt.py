"""Installing a Debian package for the tests (as root on a fresh CI machine)."""

from __future__ import annotations

import os
import subprocess

APT_TIMEOUT = 900


def apt_install(package: str, timeout: float = APT_TIMEOUT) -> str | None:
    """``apt-get update`` then install ``package``; ``None`` on success, else why it failed."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
    ):
        try:
            done = subprocess.run(
                argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(argv[:2])} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(argv[:2])} exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None
