"""Help in click's classic style: ``TEXT``, ``INTEGER``, ``[table|json]``, ``ENTRYPOINT``.

Typer 0.2x shows its internal type tags in help (``<str>``, ``<bool>``, ``<list[str]>``,
``{entrypoint}``). :func:`install` replaces how a parameter's type and an argument's name
are displayed; parsing is untouched.
"""

from __future__ import annotations

from typing import Any

import typer.core

_NAMES = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "FLOAT",
    "bool": "",
    "datetime": "DATETIME",
    "Path": "PATH",
    "path": "PATH",
}


def _classic(tag: str) -> str:
    inner = tag[1:-1] if tag.startswith("<") and tag.endswith(">") else tag
    if inner.startswith("list[") and inner.endswith("]"):
        inner = inner[5:-1]
    if "|" in inner:
        return f"[{inner}]"
    return _NAMES.get(inner, inner.upper())


def install() -> None:
    """Patch Typer's parameter display (idempotent)."""
    param = typer.core._TyperParameter
    if getattr(param, "_pushpool_classic", False):
        return
    original = param.display_type

    def display_type(self: Any, ctx: Any) -> str:
        return _classic(original(self, ctx))

    def usage_name(self: Any) -> str:
        name = str(self.display_name_raw).upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    param.display_type = display_type  # type: ignore[method-assign]
    typer.core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
    param._pushpool_classic = True  # type: ignore[attr-defined]
