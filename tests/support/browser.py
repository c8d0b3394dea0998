"""Headless Chromium from the OS packages, driven by Playwright for Python.

Playwright's own browser download (``playwright install``) is never used: the tests launch
Debian's ``chromium`` (``/usr/bin/chromium``). When it is missing and we are root on a
machine with ``apt-get`` (a fresh CI machine), :func:`find_chromium` installs it first,
as :mod:`support.postgres` does for PostgreSQL. Where none of this is possible it raises
:class:`BrowserUnavailable` with the reason, and the browser tests skip with it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from support.apt import apt_install

CHROMIUM = Path("/usr/bin/chromium")
#: Set to another Chromium binary to use that one.
CHROMIUM_ENV = "PUSHPOOL_TEST_CHROMIUM"
#: Where the tests save screenshots (default: tests/.artifacts/screenshots).
SCREENSHOTS_ENV = "PUSHPOOL_SCREENSHOTS"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserUnavailable(RuntimeError):
    """No headless Chromium (or no Playwright) here; the message says why."""


def _binary() -> Path:
    return Path(os.environ.get(CHROMIUM_ENV) or CHROMIUM)


def find_chromium() -> Path:
    """The Chromium binary, installing Debian's package if it is missing and we may."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise BrowserUnavailable("Playwright for Python is not installed (the dev extra)") from None
    if _binary().exists():
        return _binary()
    if not (os.geteuid() == 0 and shutil.which("apt-get")):
        raise BrowserUnavailable(
            f"no Chromium at {_binary()}; install Debian's `chromium` package or set "
            + CHROMIUM_ENV
        )
    failure = apt_install("chromium")
    if not _binary().exists():
        raise BrowserUnavailable(f"no Chromium, and installing it did not work: {failure}")
    return _binary()


def screenshots_dir() -> Path:
    default = Path(__file__).resolve().parents[1] / ".artifacts" / "screenshots"
    path = Path(os.environ.get(SCREENSHOTS_ENV) or default)
    path.mkdir(parents=True, exist_ok=True)
    return path
