"""Resolving ``path/to/file.py:function`` inside the source root and importing it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import ModuleType
from typing import Any

from runner_image.errors import EntrypointError, FlowImportError

#: Module name used when the file's stem cannot be used (taken, or not an identifier).
FALLBACK_MODULE_NAME = "__pushpool_flow__"


@dataclass(frozen=True)
class Entrypoint:
    path: str
    attribute: str


def parse_entrypoint(entrypoint: object) -> Entrypoint:
    """Split ``"flows/hello.py:hello"`` into its path and function name."""
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise EntrypointError("entrypoint must be a non-empty string like 'flows/hello.py:hello'")
    path, sep, attribute = entrypoint.strip().rpartition(":")
    if not sep:
        raise EntrypointError(
            f"entrypoint {entrypoint!r} has no ':'; expected 'path/to/file.py:function'"
        )
    if not path:
        raise EntrypointError(f"entrypoint {entrypoint!r} has no file path before ':'")
    if not attribute or not all(part.isidentifier() for part in attribute.split(".")):
        raise EntrypointError(
            f"entrypoint {entrypoint!r}: {attribute!r} is not a valid function name"
        )
    return Entrypoint(path=path, attribute=attribute)


def resolve_flow_file(root: Path, relative: str) -> Path:
    """The flow file for ``relative``, which must be a ``.py`` file inside ``root``."""
    if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute():
        raise EntrypointError(f"entrypoint path {relative!r} must be relative to the source root")
    if not relative.endswith(".py"):
        raise EntrypointError(f"entrypoint path {relative!r} is not a .py file")
    root = root.resolve()
    candidate = (root / relative).resolve()  # follows symlinks
    if not candidate.is_relative_to(root):
        raise EntrypointError(f"entrypoint path {relative!r} resolves outside the source root")
    if not candidate.is_file():
        raise EntrypointError(f"entrypoint file {relative!r} not found in the source root")
    return candidate


def import_flow_file(path: Path, root: Path) -> ModuleType:
    """Import ``path`` as a module, with its directory and ``root`` on ``sys.path``."""
    for directory in (str(root), str(path.parent)):  # path.parent ends up first
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowImportError(f"cannot import {path.name}: not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise FlowImportError(
            f"importing flow file {path.name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def _module_name(path: Path) -> str:
    """The file's stem, so siblings can ``import`` it back, unless that would shadow."""
    stem = path.stem
    if not stem.isidentifier() or stem in sys.modules or stem in sys.stdlib_module_names:
        return FALLBACK_MODULE_NAME
    return stem


def get_flow_function(module: ModuleType, attribute: str, entrypoint: str) -> Callable[..., Any]:
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise EntrypointError(
                f"entrypoint {entrypoint!r}: {attribute!r} not found in the flow file"
            ) from None
    if not callable(target):
        raise EntrypointError(f"entrypoint {entrypoint!r}: {attribute!r} is not callable")
    return target


def load_flow(root: Path, entrypoint: str) -> Callable[..., Any]:
    """Parse, resolve and import ``entrypoint``; return the flow function."""
    parsed = parse_entrypoint(entrypoint)
    path = resolve_flow_file(root, parsed.path)
    module = import_flow_file(path, root.resolve())
    return get_flow_function(module, parsed.attribute, entrypoint)
