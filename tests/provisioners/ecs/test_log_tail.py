"""Last words on ECS: the tail of the task's CloudWatch log stream (``GetLogEvents``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from provisioners.ecs import EcsProvisioner


def test_log_tail_reads_the_tasks_stream(
    provisioner: EcsProvisioner, request_for: Callable[..., Any], boto: Callable[[str], Any]
) -> None:
    ref = provisioner.submit(request_for(job={"cpu": 256, "memory": 512}))
    group, stream = ref.data["log_group"], ref.data["log_stream"]
    assert group and stream
    logs = boto("logs")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": f"line {i}"} for i in range(30)]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)
    assert provisioner.log_tail(ref, max_lines=5) == [f"line {i}" for i in range(25, 30)]


def test_log_tail_of_a_stream_that_never_appeared_is_empty(
    provisioner: EcsProvisioner, request_for: Callable[..., Any]
) -> None:
    ref = provisioner.submit(request_for(job={"cpu": 256, "memory": 512}))
    assert provisioner.log_tail(ref) == []
    ref.data.pop("log_stream")
    assert provisioner.log_tail(ref) == []
