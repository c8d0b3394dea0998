"""A deployment's ``timeout_seconds``: the runner stops the flow and reports FAILED
(``TimedOut``); without a timeout the same flow runs to the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner.test_runner import FakeService, run_runner, write_flow
from runner.test_runner import server as _server_fixture
from runner.test_runner import service as _service_fixture

from runner_image.runner import FlowRunSpec
from runner_image.timeout import timeout_seconds

service = _service_fixture
server = _server_fixture

SLOW_FLOW = "import time\n\ndef main():\n    print('started')\n    time.sleep(float(30))\n"


@pytest.mark.slow
def test_a_flow_past_its_timeout_is_stopped_and_fails(service: FakeService, tmp_path: Path) -> None:
    write_flow(tmp_path, "slow.py", SLOW_FLOW)
    service.reset(entrypoint="slow.py:main", source={"type": "image"}, timeout_seconds=1)

    result = run_runner(service, tmp_path)

    assert result.returncode == 1, result.stderr
    assert service.state_names == ["RUNNING", "FAILED"]
    final = service.final()
    assert final["error"]["type"] == "TimedOut"
    assert "timeout of 1s" in final["message"]
    assert result.seconds < 10


@pytest.mark.slow
def test_a_flow_within_its_timeout_completes(service: FakeService, tmp_path: Path) -> None:
    service.reset(parameters={"name": "quick"}, timeout_seconds=60)
    result = run_runner(service, tmp_path)
    assert result.returncode == 0, result.stderr
    assert service.state_names == ["RUNNING", "COMPLETED"]


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, None), (0, None), (-5, None), (True, None), ("9", None), (5, 5.0)]
)
def test_spec_timeout_values(value: object, seconds: float | None) -> None:
    assert timeout_seconds(value) == seconds
    spec = FlowRunSpec.from_json({"entrypoint": "f.py:f", "timeout_seconds": value})
    assert spec.timeout_seconds == seconds
