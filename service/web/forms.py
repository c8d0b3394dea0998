"""The Run form: fields generated from a deployment's parameter JSON Schema, and the
submitted form turned back into typed parameters.

The browser validates what HTML can (required, number ranges, lengths, patterns, dates;
``app.js`` checks JSON fields); the server parses every field here (a clear error naming
the field) and then validates the whole against the schema with the same
``check_parameters`` as the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service.errors import InvalidInput

PREFIX = "param."


@dataclass
class Field:
    name: str
    kind: str  # text, integer, number, boolean, date, datetime, select, json
    label: str
    required: bool
    value: str  # what the input shows first
    description: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)


def _main_type(prop: Mapping[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and isinstance(prop.get("anyOf"), list):
        kinds = [o.get("type") for o in prop["anyOf"] if isinstance(o, Mapping)]
        real = [k for k in kinds if k not in (None, "null")]
        kind = real[0] if len(real) == 1 else None
    return kind if isinstance(kind, str) else None


def _kind(prop: Mapping[str, Any]) -> str:
    if isinstance(prop.get("enum"), list):
        return "select"
    kind = _main_type(prop)
    if kind == "string":
        return {"date": "date", "date-time": "datetime"}.get(prop.get("format", ""), "text")
    return kind if kind in ("integer", "number", "boolean") else "json"


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "json" or (kind == "select" and not isinstance(value, str)):
        return json.dumps(value)
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "datetime" and isinstance(value, str):
        return value[:16]  # datetime-local shows minutes
    return str(value)


def _attrs(kind: str, prop: Mapping[str, Any]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if kind in ("integer", "number"):
        attrs["step"] = "1" if kind == "integer" else "any"
        for key, attr in (("minimum", "min"), ("maximum", "max")):
            if isinstance(prop.get(key), int | float):
                attrs[attr] = str(prop[key])
    if kind == "text":
        for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(prop.get(key), int):
                attrs[attr] = str(prop[key])
        if isinstance(prop.get("pattern"), str):
            attrs["pattern"] = prop["pattern"]
    return attrs


def fields(schema: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> list[Field]:
    """One field per schema property (or per default parameter without a schema)."""
    props = (schema or {}).get("properties") or {name: {} for name in defaults}
    required = set((schema or {}).get("required") or [])
    out = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        kind = _kind(prop)
        value = defaults.get(name, prop.get("default"))
        options = [(json.dumps(v), str(v)) for v in prop.get("enum") or []]
        shown = json.dumps(value) if kind == "select" and value is not None else None
        out.append(
            Field(
                name=name,
                kind=kind,
                label=str(prop.get("title") or name),
                required=name in required and name not in defaults,
                value=shown if shown is not None else _shown(kind, value),
                description=str(prop.get("description") or ""),
                attrs=_attrs(kind, prop),
                options=options,
            )
        )
    return out


def _parse_one(f: Field, raw: str) -> Any:
    where = f"parameters.{f.name}"
    try:
        if f.kind == "integer":
            return int(raw)
        if f.kind == "number":
            return float(raw)
        if f.kind == "boolean":
            return raw in ("true", "on", "1")
        if f.kind in ("select", "json"):
            return json.loads(raw)
    except ValueError as exc:
        expected = {"integer": "a whole number", "number": "a number"}.get(f.kind, "valid JSON")
        raise InvalidInput(where, f"{raw[:50]!r} is not {expected}") from exc
    if f.kind == "datetime" and len(raw) == 16:
        return raw + ":00+00:00"  # the form's datetime-local is in UTC
    return raw


def parse(form_fields: list[Field], form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters the user entered (fields left empty keep the deployment default)."""
    params: dict[str, Any] = {}
    for f in form_fields:
        raw = form.get(PREFIX + f.name)
        if f.kind == "boolean":
            params[f.name] = raw is not None and raw != "false"
            continue
        if raw is None or raw == "":
            continue
        params[f.name] = _parse_one(f, raw)
    return params
