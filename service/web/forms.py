"""Forms generated from a JSON Schema: a deployment's Run form (its parameter schema), a
work pool's config (its type's config model) and a block document (its type's schema);
and the submitted form turned back into typed values.

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
    kind: str  # text, integer, number, boolean, date, datetime, select, json, password
    label: str
    required: bool
    value: str  # what the input shows first
    description: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    placeholder: str = ""
    error: str = ""  # the server's message for this field, shown next to it


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
    if prop.get("writeOnly") is True:
        return "password"
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


def _field(name: str, prop: Mapping[str, Any], value: Any, required: bool) -> Field:
    kind = _kind(prop)
    options = [(json.dumps(v), str(v)) for v in prop.get("enum") or []]
    shown = json.dumps(value) if kind == "select" and value is not None else None
    return Field(
        name=name,
        kind=kind,
        label=str(prop.get("title") or name),
        required=required,
        value="" if kind == "password" else shown if shown is not None else _shown(kind, value),
        description=str(prop.get("description") or ""),
        attrs=_attrs(kind, prop),
        options=options,
    )


def fields(schema: Mapping[str, Any] | None, defaults: Mapping[str, Any]) -> list[Field]:
    """One field per schema property (or per default parameter without a schema)."""
    props = (schema or {}).get("properties") or {name: {} for name in defaults}
    required = set((schema or {}).get("required") or [])
    out = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        value = defaults.get(name, prop.get("default"))
        out.append(_field(name, prop, value, name in required and name not in defaults))
    return out


def document_fields(schema: Mapping[str, Any], current: Mapping[str, Any]) -> list[Field]:
    """Fields for a stored document (a pool's config, a block's values): each shows its
    ``current`` value, never the schema's default (a placeholder says it), so a field
    left empty stays unset; booleans are a three-way choice (unset, true, false); secret
    (``writeOnly``) fields are password inputs that are never prefilled."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    out = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, Mapping) else {}
        f = _field(name, prop, current.get(name), name in required)
        if f.kind == "boolean":
            f.kind, f.options = "select", [("true", "true"), ("false", "false")]
            f.value = "" if current.get(name) is None else json.dumps(current[name])
        if "default" in prop and prop["default"] is not None:
            f.placeholder = f"default: {_shown(_kind(prop), prop['default'])}"
        out.append(f)
    return out


def show_error(form_fields: list[Field], exc: InvalidInput, root: str) -> bool:
    """Put ``exc``'s message next to the field it names (``root.<name>...``); whether
    one was found (else the page shows it above the form)."""
    head, _, rest = exc.field.partition(".")
    name = rest.split(".")[0] if head == root else ""
    for f in form_fields:
        if f.name == name:
            f.error = exc.message
            return True
    return False


def refill(form_fields: list[Field], form: Mapping[str, str], prefix: str = PREFIX) -> None:
    """Show what the user typed again after an error (never a secret)."""
    for f in form_fields:
        if prefix + f.name in form and f.kind != "password":
            f.value = form[prefix + f.name]


def _parse_one(f: Field, raw: str, root: str) -> Any:
    where = f"{root}.{f.name}"
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


def parse(
    form_fields: list[Field],
    form: Mapping[str, str],
    prefix: str = PREFIX,
    root: str = "parameters",
) -> dict[str, Any]:
    """The values the user entered; a field left empty is left out (a parameter keeps the
    deployment default, a config field its default, a secret its stored value). A value
    that does not parse raises ``InvalidInput`` naming ``root.<field>``."""
    params: dict[str, Any] = {}
    for f in form_fields:
        raw = form.get(prefix + f.name)
        if f.kind == "boolean":
            params[f.name] = raw is not None and raw != "false"
            continue
        if raw is None or raw == "":
            continue
        params[f.name] = _parse_one(f, raw, root)
    return params
