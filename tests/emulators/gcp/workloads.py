"""What an emulated execution does, decided from its job's container (a test's choice)."""

from __future__ import annotations

from typing import Any


def conformance_workload(job: dict[str, Any]) -> str | int | None:
    """``sleep N`` runs until cancelled; ``sh -c "exit N"`` ends at once with code N."""
    container = job["template"]["template"]["containers"][0]
    command = container.get("command") or []
    if command[:1] == ["sleep"]:
        return "running"
    if command[:2] == ["sh", "-c"] and command[2].startswith("exit "):
        return int(command[2].split()[1])
    return None
