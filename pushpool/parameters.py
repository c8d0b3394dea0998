"""Flow arguments checked and converted from the function's annotations (pydantic).

The runner validates a run's JSON parameters with the same rules, so ``date``,
``Enum``, ``Path``, dataclasses, models, ... arrive as their types on both sides.
pydantic is imported only when an annotated flow is called.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pushpool.errors import ParameterError

_MODELS: dict[Callable[..., Any], Any] = {}

#: The shapes pydantic reads for these string formats. ``format`` is only an annotation
#: in JSON Schema 2020-12: a ``pattern`` is what lets the API refuse a malformed value.
FORMAT_PATTERNS = {
    "date-time": r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$",
    "date": r"^\d{4}-\d{2}-\d{2}$",
    "time": r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$",
}
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def parameters_model(fn: Callable[..., Any]) -> Any:
    """A pydantic model with one field per (non-variadic) parameter of ``fn``."""
    model = _MODELS.get(fn)
    if model is None:
        from typing import get_type_hints

        from pydantic import ConfigDict, create_model

        hints = get_type_hints(fn)
        fields: dict[str, Any] = {}
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind in _VARIADIC:
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[name] = (hints.get(name, Any), default)
        config = ConfigDict(arbitrary_types_allowed=True)
        model = create_model(f"{fn.__name__}_parameters", __config__=config, **fields)
        _MODELS[fn] = model
    return model


def coerce_arguments(
    fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``args, kwargs`` converted to ``fn``'s annotated types, or :class:`ParameterError`.

    Values that already are exactly their plain annotated type (``str``, ``int``,
    ``float``, ``bool``; or unannotated) are passed as they are without importing
    pydantic, which would return them unchanged (its import and model build are most
    of a trivial flow's run time)."""
    signature = inspect.signature(fn)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ParameterError(f"flow {name!r}: {exc}") from None
    plain = {
        key: value
        for key, value in bound.arguments.items()
        if signature.parameters[key].kind not in _VARIADIC
    }
    if _already_typed(fn, plain):
        return bound.args, bound.kwargs
    from pydantic import ValidationError

    try:
        validated = parameters_model(fn).model_validate(plain)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise ParameterError(f"flow {name!r}: invalid parameters: {details}") from None
    for key in plain:
        bound.arguments[key] = getattr(validated, key)
    return bound.args, bound.kwargs


_SCALARS = (str, int, float, bool)
_HINTS: dict[Callable[..., Any], dict[str, Any]] = {}


def _already_typed(fn: Callable[..., Any], arguments: dict[str, Any]) -> bool:
    """Every argument is exactly its annotated scalar type, or is not annotated."""
    hints = _HINTS.get(fn)
    if hints is None:
        from typing import get_type_hints

        try:
            hints = get_type_hints(fn)
        except Exception:  # an annotation that does not resolve: pydantic decides
            return False
        _HINTS[fn] = hints
    for name, value in arguments.items():
        hint = hints.get(name, Any)
        if hint is Any:
            continue
        if hint not in _SCALARS or type(value) is not hint:
            return False
    return True


def parameters_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """JSON Schema of ``fn``'s parameters as :func:`parameters_model` validates them;
    a parameter whose type has no JSON Schema is left open (``{}``), and date/time
    strings carry :data:`FORMAT_PATTERNS`. Extra keys are allowed only with ``**kwargs``."""
    from pydantic.json_schema import GenerateJsonSchema

    class _Lenient(GenerateJsonSchema):
        def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> dict[str, Any]:
            return {}

    schema: dict[str, Any] = parameters_model(fn).model_json_schema(schema_generator=_Lenient)
    _add_patterns(schema)
    kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
    schema["title"] = getattr(fn, "__name__", "flow")
    schema["additionalProperties"] = inspect.Parameter.VAR_KEYWORD in kinds
    return schema


def _add_patterns(node: Any) -> None:
    if isinstance(node, dict):
        pattern = FORMAT_PATTERNS.get(node.get("format", ""))
        if pattern and node.get("type") == "string":
            node.setdefault("pattern", pattern)
        for value in node.values():
            _add_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _add_patterns(value)
