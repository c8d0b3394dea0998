"""Validation that needs more than a pydantic model: JSON Schema, pool configs, job variables."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from service.errors import InvalidInput


def _path(prefix: str, parts: Any) -> str:
    return ".".join([prefix, *(str(p) for p in parts)])


def check_json_schema(schema: dict[str, Any]) -> None:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(
            _path("parameter_schema", exc.absolute_path), f"not a valid JSON Schema: {exc.message}"
        ) from exc


def check_parameters(
    schema: dict[str, Any] | None, parameters: dict[str, Any], *, partial: bool = False
) -> None:
    """Validate parameters against a deployment's JSON Schema.

    ``partial`` (deploy time) ignores missing required parameters: they may come with a run.
    """
    if not schema:
        return
    from jsonschema.validators import validator_for

    if partial:
        schema = {k: v for k, v in schema.items() if k != "required"}
    validator = validator_for(schema)(schema)
    error = next(iter(sorted(validator.iter_errors(parameters), key=lambda e: e.path)), None)
    if error is not None:
        where = _path("parameters", error.absolute_path) if error.absolute_path else "parameters"
        raise InvalidInput(where, error.message)


def check_model(model: type[BaseModel], data: dict[str, Any], field: str) -> BaseModel:
    """Validate ``data`` with ``model``; the first error names ``field.<path>``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(_path(field, first["loc"]), first["msg"]) from exc
