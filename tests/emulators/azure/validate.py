"""Request bodies checked against the Azure SDK's own models, so a misspelt field fails.

``ContainerGroup.deserialize`` drops unknown keys silently and keeps read-only ones, so
a body is accepted only if (1) deserialising then serialising it (read-only fields left
out) gives back exactly the input, and (2) every ``required`` entry of the models'
``_validation`` tables is set, all the way down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _walk(value: Any, where: str, errors: list[str]) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", errors)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{where}.{key}", errors)
        return
    rules = getattr(value, "_validation", None)
    if rules is None or not hasattr(value, "_attribute_map"):
        return
    for attr, rule in rules.items():
        if rule.get("required") and getattr(value, attr, None) is None:
            errors.append(f"{where}.{attr} is required")
    for attr in value._attribute_map:
        _walk(getattr(value, attr, None), f"{where}.{attr}", errors)


def _diff(sent: Any, kept: Any, where: str) -> list[str]:
    if isinstance(sent, dict) and isinstance(kept, dict):
        out = [f"{where}.{k}: unknown or read-only field" for k in sent if k not in kept]
        for key in sent.keys() & kept.keys():
            out += _diff(sent[key], kept[key], f"{where}.{key}")
        return out
    if isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        return [
            e
            for i, (a, b) in enumerate(zip(sent, kept, strict=True))
            for e in _diff(a, b, f"{where}[{i}]")
        ]
    if sent != kept and not (isinstance(sent, int | float) and sent == kept):
        return [f"{where}: {sent!r} is not a valid value"]
    return []


def _typed_fields(instance: Any, where: str, errors: list[str]) -> None:
    """The newer (TypeSpec) SDK models keep the raw JSON: every key must be a field the
    model knows, none of them read-only, all the way down."""
    fields = {f._rest_name: (attr, f) for attr, f in type(instance)._attr_to_rest_field.items()}
    for key in list(instance):
        if key not in fields:
            errors.append(f"{where}.{key}: unknown field")
            continue
        attr, rest = fields[key]
        if rest._visibility == ["read"]:
            errors.append(f"{where}.{key}: read-only field")
        value = getattr(instance, attr)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Mapping) and hasattr(type(item), "_attr_to_rest_field"):
                _typed_fields(item, f"{where}.{key}", errors)


def check(model: Any, body: Any) -> tuple[Any, list[str]]:
    """``(instance, errors)``: the body as ``model`` and everything wrong with it."""
    if not isinstance(body, dict):
        return None, ["the body is not a JSON object"]
    if issubclass(model, Mapping):  # a TypeSpec model (azure-mgmt-resource, -containerregistry)
        errors: list[str] = []
        instance = model(body)
        _typed_fields(instance, model.__name__, errors)
        return instance, errors
    try:
        instance = model.deserialize(body)
    except Exception as exc:  # the SDK's DeserializationError and friends
        return None, [f"cannot read the body as {model.__name__}: {exc}"]
    errors = _diff(body, instance.serialize(keep_readonly=False), "body")
    _walk(instance, model.__name__, errors)
    return instance, errors
