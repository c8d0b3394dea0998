"""Checking a run's parameters before the flow is called."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runner_image.errors import ParameterValidationError

MAX_REPORTED_ERRORS = 5


def validate_parameters(
    flow: Callable[..., Any], parameters: Mapping[str, Any], schema: Mapping[str, Any] | None
) -> None:
    """Raise :class:`ParameterValidationError` if ``parameters`` cannot be passed to ``flow``."""
    if schema:
        validate_against_schema(parameters, schema)
    check_signature(flow, parameters)


def validate_against_schema(parameters: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate with JSON Schema Draft 2020-12; name every failing parameter path."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ParameterValidationError(f"the parameter schema is invalid: {exc.message}") from None
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(parameters)), key=lambda e: list(map(str, e.path)))
    if errors:
        details = [f"{format_path(e.absolute_path)}: {e.message}" for e in errors]
        if len(details) > MAX_REPORTED_ERRORS:
            extra = len(details) - MAX_REPORTED_ERRORS
            details = [*details[:MAX_REPORTED_ERRORS], f"... and {extra} more"]
        raise ParameterValidationError("invalid parameters: " + "; ".join(details))


def format_path(path: Iterable[str | int]) -> str:
    """``["a", 0, "b"]`` -> ``"parameters.a[0].b"``."""
    text = "parameters"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def check_signature(flow: Callable[..., Any], parameters: Mapping[str, Any]) -> None:
    """Fail early (before RUNNING) if the keyword arguments do not fit the function."""
    try:
        signature = inspect.signature(flow)
    except (TypeError, ValueError):
        return  # builtins and some C callables have no signature: let the call decide
    try:
        signature.bind(**parameters)
    except TypeError as exc:
        message = f"parameters do not match the flow's signature: {exc}"
        raise ParameterValidationError(message) from None
