"""Request bodies and paths tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


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
