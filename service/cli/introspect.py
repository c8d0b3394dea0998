"""A flow's parameter schema, read from its source with ``ast`` (the code is not run)."""

from __future__ import annotations

import ast
import contextlib
from pathlib import Path
from typing import Any

from service.cli.client import CliError

_SIMPLE = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "dict": {"type": "object"},
    "list": {"type": "array"},
    "tuple": {"type": "array"},
    "None": {"type": "null"},
    "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}


def _annotation(node: ast.expr | None) -> dict[str, Any]:
    if node is None:
        return {}
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return {}
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        return dict(_SIMPLE.get(name, {}))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right])
    if isinstance(node, ast.Subscript):
        base = (
            node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        )
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base == "Optional":
            return _union([args[0], ast.Constant(None)])
        if base == "Union":
            return _union(args)
        if base == "Literal":
            values = [a.value for a in args if isinstance(a, ast.Constant)]
            return {"enum": values}
        if base in ("list", "List", "Sequence", "set", "Set", "tuple", "Tuple"):
            item = _annotation(args[0]) if base not in ("tuple", "Tuple") else {}
            return {"type": "array", **({"items": item} if item else {})}
        if base in ("dict", "Dict", "Mapping"):
            return {"type": "object"}
    return {}


def _union(nodes: list[ast.expr]) -> dict[str, Any]:
    options = [_annotation(n) for n in nodes]
    if any(not o for o in options):
        return {}
    return {"anyOf": options}


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return node
    return None


def parameter_schema(path: Path, function: str) -> dict[str, Any]:
    """JSON Schema of ``function``'s parameters in the file at ``path``."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise CliError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    fn = _function(tree, function)
    if fn is None:
        raise CliError(f"{path} has no top-level function {function!r}")
    args = fn.args
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    pairs = [
        *zip(positional, defaults, strict=True),
        *zip(args.kwonlyargs, args.kw_defaults, strict=True),
    ]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg, default in pairs:
        prop = _annotation(arg.annotation)
        prop["title"] = arg.arg
        if default is None:
            required.append(arg.arg)
        else:
            with contextlib.suppress(ValueError):
                prop["default"] = ast.literal_eval(default)
        properties[arg.arg] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "title": fn.name,
        "properties": properties,
        "additionalProperties": args.kwarg is not None,
    }
    if required:
        schema["required"] = required
    return schema


#: ``@flow(...)`` keywords that become deployment defaults, and the field each sets.
_FLOW_DEFAULTS = {
    "name": "flow_name",
    "retries": "retries",
    "retry_delay_seconds": "retry_delay_seconds",
}


def flow_defaults(path: Path, function: str) -> dict[str, Any]:
    """Deployment defaults from ``@flow(name=, retries=, retry_delay_seconds=)`` on
    ``function``, read without running the file; values that are not literals of the
    right type (a list of delays, a variable) are left to the deployment's own defaults."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError):
        return {}  # parameter_schema reports these
    fn = _function(tree, function)
    calls = [d for d in fn.decorator_list if isinstance(d, ast.Call)] if fn else []
    call = next((d for d in calls if _is_flow_call(d)), None)
    if call is None:
        return {}
    defaults: dict[str, Any] = {}
    for keyword in call.keywords:
        field = _FLOW_DEFAULTS.get(keyword.arg or "")
        if field is None:
            continue
        try:
            value = ast.literal_eval(keyword.value)
        except ValueError:
            continue
        if _fits(field, value):
            defaults[field] = value
    return defaults


def _fits(field: str, value: Any) -> bool:
    if field == "flow_name":
        return isinstance(value, str) and bool(value)
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_flow_call(node: ast.Call) -> bool:
    target = node.func
    name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
    return name == "flow"
