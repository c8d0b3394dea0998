"""How a finished flow is reported: result serialisation and error payloads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_REPR = 2000
MAX_TRACEBACK = 64 * 1024
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class Outcome:
    """The terminal state to report (if any) and the process exit code."""

    state: str | None
    exit_code: int
    message: str | None = None
    result: Any = None
    error: dict[str, str] | None = None


def serialize_result(value: Any) -> Any:
    """``value`` itself if it is valid JSON, else ``{"repr": ...}``."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return {"repr": _safe_repr(value)[:MAX_REPR]}
    return value


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def qualified_name(cls: type) -> str:
    """``ValueError``, ``mymodule.MyError``; runner errors keep their bare name."""
    module = cls.__module__
    if module == "builtins" or module.startswith("runner_image"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def error_payload(exc: BaseException) -> dict[str, str]:
    """The ``error`` object of a FAILED state; runner frames are left out of the traceback."""
    return {
        "type": qualified_name(type(exc)),
        "message": _exception_message(exc),
        "traceback": format_traceback(exc)[-MAX_TRACEBACK:],
    }


def _exception_message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} with unprintable message>"


def format_traceback(exc: BaseException) -> str:
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    if tb is None:  # raised by the runner itself: keep everything
        tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb))
