"""A flow's parameter schema, read from its source with ``ast`` (the code is not run).

The schema follows the rules pydantic applies in the runner: ``date``/``datetime`` are
formatted strings, ``Path``/``UUID`` strings, an ``Enum`` class of the same file its
values, a dataclass or pydantic model of the same file an object of its fields.
Anything else is left open (``{}``): the runner's pydantic check still applies.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

from pushpool.parameters import FORMAT_PATTERNS
from service.cli.client import CliError

_SIMPLE = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "dict": {"type": "object"},
    "list": {"type": "array"},
    "tuple": {"type": "array"},
    "set": {"type": "array"},
    "frozenset": {"type": "array"},
    "None": {"type": "null"},
    # the patterns are what the API checks (the shapes pydantic reads; it still refuses
    # e.g. February 30th in the runner)
    "datetime": {"type": "string", "format": "date-time", "pattern": FORMAT_PATTERNS["date-time"]},
    "date": {"type": "string", "format": "date", "pattern": FORMAT_PATTERNS["date"]},
    "time": {"type": "string", "format": "time", "pattern": FORMAT_PATTERNS["time"]},
    "Path": {"type": "string"},
    "PurePath": {"type": "string"},
    "PosixPath": {"type": "string"},
    "UUID": {"type": "string", "format": "uuid"},
}
_ENUM_BASES = frozenset({"Enum", "StrEnum", "IntEnum"})
_MODEL_BASES = frozenset({"BaseModel"})

#: The module's top-level classes by name (Enums, dataclasses and models resolve here).
Classes = dict[str, ast.ClassDef]


def _annotation(node: ast.expr | None, classes: Classes | None = None) -> dict[str, Any]:
    classes = classes or {}
    if node is None:
        return {}
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation(ast.parse(node.value, mode="eval").body, classes)
        except SyntaxError:
            return {}
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if name in _SIMPLE:
            return dict(_SIMPLE[name])
        return _class_schema(classes, name)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], classes)
    if isinstance(node, ast.Subscript):
        return _generic(node, classes)
    return {}


def _generic(node: ast.Subscript, classes: Classes) -> dict[str, Any]:
    base = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
    args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    if base == "Optional":
        return _union([args[0], ast.Constant(None)], classes)
    if base == "Union":
        return _union(args, classes)
    if base == "Annotated":
        return _annotation(args[0], classes)
    if base == "Literal":
        values = [a.value for a in args if isinstance(a, ast.Constant)]
        return {"enum": values}
    if base in ("list", "List", "Sequence", "set", "Set", "frozenset", "FrozenSet"):
        item = _annotation(args[0], classes)
        return {"type": "array", **({"items": item} if item else {})}
    if base in ("tuple", "Tuple"):
        return {"type": "array"}
    if base in ("dict", "Dict", "Mapping"):
        return {"type": "object"}
    return {}


def _class_schema(classes: Classes, name: str) -> dict[str, Any]:
    """An Enum's values, or a dataclass's / model's fields, for a class of the file."""
    cls = classes.get(name)
    if cls is None:
        return {}
    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases}
    if bases & _ENUM_BASES:
        values = [
            stmt.value.value
            for stmt in cls.body
            if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
        ]
        return {"enum": values} if values else {}
    decorators = {
        getattr(d.func if isinstance(d, ast.Call) else d, "id", None)
        or getattr(d.func if isinstance(d, ast.Call) else d, "attr", "")
        for d in cls.decorator_list
    }
    if "dataclass" not in decorators and not bases & _MODEL_BASES:
        return {}
    inner = {k: v for k, v in classes.items() if k != name}  # no endless self-reference
    properties: dict[str, Any] = {}
    required: list[str] = []
    for stmt in cls.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if "ClassVar" in ast.unparse(stmt.annotation):
                continue
            properties[stmt.target.id] = _annotation(stmt.annotation, inner)
            if stmt.value is None:
                required.append(stmt.target.id)
    schema: dict[str, Any] = {"type": "object", "title": name, "properties": properties}
    return schema | ({"required": required} if required else {})


def _union(nodes: list[ast.expr], classes: Classes) -> dict[str, Any]:
    options = [_annotation(n, classes) for n in nodes]
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
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg, default in pairs:
        prop = _annotation(arg.annotation, classes)
        prop["title"] = arg.arg
        if default is None:
            required.append(arg.arg)
        else:
            prop.update(_default(arg.arg, default))
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


def _default(name: str, node: ast.expr) -> dict[str, Any]:
    """``{"default": value}`` for a literal JSON can hold; ``{}`` for an expression that
    is not a literal (the flow's own default applies in the runner); a :class:`CliError`
    naming the parameter for a literal JSON cannot represent (set, bytes, complex, inf,
    nan), which would otherwise be changed or lost on its way to the runner."""
    if _non_finite_call(node):
        raise CliError(_unrepresentable(name, "a non-finite float (inf or nan)"))
    called = getattr(node.func, "id", "") if isinstance(node, ast.Call) else ""
    if called in _UNREPRESENTABLE_CALLS:
        raise CliError(_unrepresentable(name, _UNREPRESENTABLE_CALLS[called]))
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return {}
    problem = _json_problem(value)
    if problem is not None:
        raise CliError(_unrepresentable(name, problem))
    return {"default": value}


#: Constructors whose value JSON cannot hold, and what to call it.
_UNREPRESENTABLE_CALLS = {
    "set": "a set",
    "frozenset": "a set",
    "bytes": "bytes",
    "bytearray": "bytes",
    "complex": "a complex number",
}


def _json_problem(value: Any) -> str | None:
    """What in ``value`` JSON cannot represent, or None."""
    if isinstance(value, set | frozenset):
        return "a set"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, complex):
        return "a complex number"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite float (inf or nan)"
    if isinstance(value, dict):
        if any(not isinstance(key, str) for key in value):
            return "a dict with non-string keys"
        value = list(value.values())
    if isinstance(value, list | tuple):
        return next((p for p in map(_json_problem, value) if p is not None), None)
    return None


def _non_finite_call(node: ast.expr) -> bool:
    """``float("inf")``, ``float("nan")``, ``math.inf``, ``math.nan``."""
    if isinstance(node, ast.UnaryOp):
        return _non_finite_call(node.operand)
    if isinstance(node, ast.Attribute):
        return node.attr in ("inf", "nan") and getattr(node.value, "id", "") in ("math", "np")
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "float" and node.args:
        arg = node.args[0]
        text = arg.value if isinstance(arg, ast.Constant) else None
        return isinstance(text, str) and text.strip().lower().lstrip("+-") in (
            "inf",
            "infinity",
            "nan",
        )
    return False


def _unrepresentable(name: str, what: str) -> str:
    return (
        f"parameter {name!r}: its default is {what}, which JSON cannot represent (a "
        "deployment's parameters are JSON); use a JSON-friendly default (a list, a string, "
        "a finite number) or None and set the value inside the flow"
    )


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
