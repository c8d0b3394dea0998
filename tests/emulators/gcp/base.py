"""Plumbing shared by the emulated services: Google's error shape, faults, the request log."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An error answer in Google's JSON shape."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": STATUS_NAMES.get(self.status, "UNKNOWN"),
        }
        if self.reason:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": self.reason,
                    "domain": "googleapis.com",
                }
            ]
        return JSONResponse({"error": error}, status_code=self.status)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


@dataclass
class Fault:
    """Answer ``status`` to the next ``times`` requests matching method and path.

    ``after``: do the request first, then answer the error (an answer lost on the way).
    """

    method: str
    path: re.Pattern[str]
    status: int
    message: str
    reason: str = ""
    times: int = 1
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method and bool(self.path.search(path))


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    status: int = 0


@dataclass
class Journal:
    """The request log and the queued faults, shared by every service of one emulator."""

    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def count(self, method: str | None = None, pattern: str = "") -> int:
        """How many requests matched ``method`` (any if ``None``) and ``pattern`` (a regex)."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and re.search(pattern, r.path)
        )


def page(items: list[Any], query: dict[str, str], default_size: int = 100) -> tuple[list[Any], str]:
    """One page of ``items`` and the next page token ("" at the end)."""
    size = int(query.get("pageSize") or query.get("page_size") or default_size) or default_size
    start = int(query.get("pageToken") or query.get("page_token") or 0)
    chunk = items[start : start + size]
    token = str(start + size) if start + size < len(items) else ""
    return chunk, token


def parse(message_type: Any, raw: bytes) -> Any:
    """``raw`` parsed as ``message_type`` (proto-plus or protobuf); unknown fields: 400."""
    from google.protobuf import json_format

    text = raw.decode() or "{}"
    try:
        if hasattr(message_type, "from_json"):
            return message_type.from_json(text, ignore_unknown_fields=False)
        return json_format.Parse(text, message_type(), ignore_unknown_fields=False)
    except Exception as exc:
        raise ApiError(400, f"invalid {message_type.__name__}: {exc}") from exc
