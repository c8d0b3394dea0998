"""`make run` installs without setuptools' "Editable installation." banner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from support.factories import REPO

# How setuptools (>= 69) emits the banner: SetuptoolsWarning.emit -> warnings.warn.
BANNER = (
    "import warnings\n"
    "warnings.warn('Editable installation.\\n!!\\n\\n  Please be careful with folders in "
    "your working directory with the same name as your package', UserWarning)\n"
)


def _run(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", BANNER], env=env, capture_output=True, text=True, check=True
    )
    return done.stderr


def test_make_install_filters_the_editable_banner() -> None:
    makefile = (REPO / "Makefile").read_text()
    match = re.search(r'^QUIET_EDITABLE := PYTHONWARNINGS="([^"]+)"$', makefile, re.MULTILINE)
    assert match is not None
    assert makefile.count("$(QUIET_EDITABLE) $(BIN)/pip install") == 2
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    assert "Editable installation" in _run(env)
    assert _run({**env, "PYTHONWARNINGS": match[1]}) == ""
