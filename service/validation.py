"""Validation that needs more than a pydantic model: JSON Schema, pool configs, job variables.

Parameter schemas are user input the service runs, so they are held to what is safe to
run inside a request: validation uses ``jsonschema-rs`` with the linear-time ``regex``
engine (a ``pattern`` it cannot take, e.g. a backreference, is refused at deploy), and
no ``$ref`` outside the schema itself is ever retrieved (refused at deploy, and the
retriever refuses any that get past).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from service.errors import InvalidInput

if TYPE_CHECKING:
    import jsonschema_rs

#: Keywords whose value is a URI reference another schema is fetched from.
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
#: Compiled size bounds for one ``pattern`` (bytes): ample for real patterns.
_REGEX_SIZE_LIMIT = 1 << 20


def _path(prefix: str, parts: Any) -> str:
    return ".".join([prefix, *(str(p) for p in parts)])


def _refuse_retrieval(uri: str) -> Any:
    raise InvalidInput("parameter_schema", f"$ref {uri!r}: only references inside the schema")


_Where = tuple[str | int, ...]


def _walk(node: Any) -> Iterator[tuple[_Where, Any]]:
    """Every value in ``node`` with its path (iterative: safe on any depth)."""
    stack: list[tuple[_Where, Any]] = [((), node)]
    while stack:
        here, item = stack.pop()
        yield here, item
        if isinstance(item, dict):
            stack.extend(((*here, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*here, i), v) for i, v in enumerate(item))


def _check_refs(schema: dict[str, Any], field: str) -> None:
    """Refuse every reference that does not point inside the schema (``#...``)."""
    for where, node in _walk(schema):
        if not isinstance(node, dict):
            continue
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if isinstance(ref, str) and not ref.startswith("#"):
                raise InvalidInput(
                    _path(field, (*where, keyword)),
                    f"{ref!r} is not retrieved: only references inside the schema "
                    "('#/...') are allowed",
                )


def _validator(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    import jsonschema_rs

    return jsonschema_rs.validator_for(
        schema,
        retriever=_refuse_retrieval,
        pattern_options=jsonschema_rs.RegexOptions(size_limit=_REGEX_SIZE_LIMIT),
    )


def check_json_schema(schema: dict[str, Any], field: str = "parameter_schema") -> None:
    """A schema the service can validate with in bounded time: a valid JSON Schema, no
    outside ``$ref``, every ``pattern`` linear-time. Errors name ``field``."""
    import jsonschema_rs

    _check_refs(schema, field)
    try:
        jsonschema_rs.meta.validate(schema)
        _validator(schema)
    except jsonschema_rs.ValidationError as exc:
        where = _path(field, exc.instance_path)
        raise InvalidInput(where, f"not a valid JSON Schema: {_first_line(exc.message)}") from exc
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        raise InvalidInput(field, _first_line(str(exc))) from exc


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "invalid"


def check_parameters(
    schema: dict[str, Any] | None, parameters: dict[str, Any], *, partial: bool = False
) -> None:
    """Validate parameters against a deployment's JSON Schema (checked at deploy).

    ``partial`` (deploy time) ignores missing required parameters: they may come with a run.
    """
    if not schema:
        return
    if partial:
        schema = {k: v for k, v in schema.items() if k != "required"}
    errors = list(_validator(schema).iter_errors(parameters))
    if errors:
        error = min(errors, key=lambda e: [str(p) for p in e.instance_path])
        path = error.instance_path
        where = _path("parameters", path) if path else "parameters"
        raise InvalidInput(where, _first_line(error.message))


def first_error(schema: dict[str, Any], instance: Any) -> tuple[list[str | int], str] | None:
    """The first problem (in path order) of ``instance`` against ``schema``, as (path,
    message), or None when it is valid."""
    errors = list(_validator(schema).iter_errors(instance))
    if not errors:
        return None
    error = min(errors, key=lambda e: [str(p) for p in e.instance_path])
    return list(error.instance_path), _first_line(error.message)


def check_model(model: type[BaseModel], data: dict[str, Any], field: str) -> BaseModel:
    """Validate ``data`` with ``model``; the first error names ``field.<path>``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(_path(field, first["loc"]), first["msg"]) from exc
