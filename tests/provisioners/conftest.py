"""Harnesses for the Provisioner conformance suite: one per pool type.

A harness knows how to make its platform run a controlled workload (sleep, exit with a
code) and how to let the platform make progress. A new provisioner joins the suite by
adding one entry to ``HARNESSES``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.harness import Harness

from provisioners.base import get_provisioner


def _process(tmp_path: Path) -> Iterator[Harness]:
    provisioner = get_provisioner("process", "conf", {"working_dir": str(tmp_path / "runs")})
    py = sys.executable
    yield Harness(
        provisioner=provisioner,
        sleep_job=lambda s: {"command": [py, "-c", f"import time; time.sleep({s})"]},
        exit_job=lambda code: {"command": [py, "-c", f"raise SystemExit({code})"]},
    )


HARNESSES: dict[str, Callable[[Path], Iterator[Harness]]] = {"process": _process}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    yield from HARNESSES[request.param](tmp_path)
