"""The emulated subscription: container groups, their lifecycle, faults, quotas, requests.

Tests drive it directly (thread-safe): :meth:`Azure.start`, :meth:`Azure.exit`,
:meth:`Azure.fail_provisioning`, :meth:`Azure.inject`; ``on_create`` decides what a new
group does (default: it stays ``Creating`` until the test moves it).
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    code: str
    message: str
    headers: dict[str, str]
    times: int


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    body: Any
    at: float


@dataclass
class Group:
    """One container group: the body as PUT (secure values included), and its runtime."""

    body: dict[str, Any]
    id: str = ""
    provisioning: str = "Creating"
    container: str = "Waiting"
    exit_code: int | None = None
    detail: str | None = None
    stopped: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    logs: str = ""
    created_at: float = 0.0

    @property
    def cores(self) -> float:
        return sum(
            float(c["properties"]["resources"]["requests"]["cpu"])
            for c in self.body["properties"]["containers"]
        )


class Azure:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        #: ARM id (lowercased) -> group.
        self.groups: dict[str, Group] = {}
        #: Any other ARM resource (provisioning): id (lowercased) -> stored JSON.
        self.resources: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.on_create: Callable[[str, Group], None] = lambda name, group: None
        #: Quotas the emulator enforces like ACI: (creates per 5 min, per hour), max groups.
        self.rate_limits: tuple[int, int] | None = None
        self.max_groups: int | None = None
        self.create_times: list[float] = []
        self.delete_times: list[float] = []
        #: Resource Graph's index: group id (lowercased) -> the group as last indexed.
        self.graph: dict[str, dict[str, Any]] = {}
        #: Seconds between Resource Graph's full scans (0: the index is always current).
        self.graph_scan_seconds = 0.0

    # -- what tests do -------------------------------------------------------------------
    def inject(
        self,
        method: str,
        path: str,
        status: int,
        code: str,
        message: str = "injected",
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``path`` (a regex) with
        an ARM error."""
        with self.lock:
            self.faults.append(
                Fault(method.upper(), re.compile(path), status, code, message, headers or {}, times)
            )

    def group(self, name: str) -> Group:
        with self.lock:
            found = [g for k, g in self.groups.items() if k.endswith(f"/containergroups/{name}")]
            if len(found) != 1:
                raise KeyError(name)
            return found[0]

    def start(self, name: str) -> None:
        with self.lock:
            g = self.group(name)
            g.provisioning, g.container = "Succeeded", "Running"
            self._event(g, "Normal", "Started", "Started container")

    def exit(self, name: str, code: int, detail: str = "Completed", logs: str = "") -> None:
        with self.lock:
            g = self.group(name)
            g.provisioning, g.container, g.exit_code, g.detail = (
                "Succeeded",
                "Terminated",
                code,
                detail,
            )
            g.logs += logs
            if detail != "Completed":
                self._event(g, "Warning", detail, f"Container terminated: {detail}")

    def fail_provisioning(self, name: str, reason: str, message: str) -> None:
        with self.lock:
            g = self.group(name)
            g.provisioning = "Failed"
            self._event(g, "Warning", reason, message)

    def _event(self, g: Group, kind: str, name: str, message: str) -> None:
        now = datetime.now(UTC).isoformat()
        g.events.append(
            {
                "count": 1,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "name": name,
                "message": message,
                "type": kind,
            }
        )

    def secure_env(self, name: str) -> dict[str, str]:
        """The container's environment as the container would see it (secure values too)."""
        container = self.group(name).body["properties"]["containers"][0]["properties"]
        return {
            v["name"]: v.get("value", v.get("secureValue", ""))
            for v in container.get("environmentVariables", [])
        }

    def calls(self, method: str | None = None, contains: str = "") -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and contains in r.path
            ]

    def window_peaks(self, times: list[float]) -> tuple[int, int]:
        """The most operations seen in any 5-minute and any 1-hour window."""

        def peak(span: float) -> int:
            best, start = 0, 0
            for end, t in enumerate(times):
                while times[start] <= t - span:
                    start += 1
                best = max(best, end - start + 1)
            return best

        return peak(300.0), peak(3600.0)

    # -- what the app does ---------------------------------------------------------------
    def record(self, method: str, path: str, query: str, body: Any) -> Fault | None:
        with self.lock:
            self.requests.append(Recorded(method, path, query, copy.deepcopy(body), self.clock()))
            for fault in self.faults:
                if fault.method == method and fault.pattern.search(path) and fault.times > 0:
                    fault.times -= 1
                    return fault
            return None

    def new_operation(self, status: str = "Succeeded", error: dict[str, Any] | None = None) -> str:
        op = str(uuid.uuid4())
        self.operations[op] = {"id": op, "name": op, "status": status}
        if error:
            self.operations[op]["error"] = error
        return op
