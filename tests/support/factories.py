"""Request bodies and paths tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: Copies of the Lambda event samples in ../shared/events (kept equal by a test), so the
#: suite runs from any checkout.
EVENTS_DIR = Path(__file__).resolve().parent / "events"
SHARED_EVENTS_DIR = REPO.parent / "shared" / "events"


def deployment_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "default",
        "flow_name": "hello",
        "entrypoint": "hello.py:hello",
        "work_pool": "local",
        "source": {"type": "local", "path": str(EXAMPLES)},
    }
    body.update(overrides)
    return body
