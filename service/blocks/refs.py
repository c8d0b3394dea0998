"""``{{ block:TYPE/NAME }}`` and ``{{ block:TYPE/NAME/FIELD }}`` in a deployment's job
variables: checked at deploy, resolved at dispatch (so a rotated secret reaches the next
run), handed to the platform through its own secret mechanism.

Without ``FIELD`` the reference is the document's only field (``secret``'s ``value``,
``database-url``'s ``url``); a document with several fields needs ``FIELD``. A value
that is not a string is inserted as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from service.errors import InvalidInput

TEMPLATE = re.compile(
    r"\{\{\s*block:\s*(?P<slug>[a-z0-9][a-z0-9-]{0,62})/(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,99})"
    r"(?:/(?P<field>[A-Za-z_][A-Za-z0-9_]*))?\s*\}\}"
)
#: Pool types whose provisioner hands resolved block values to the platform safely.
RESOLVING_POOL_TYPES = frozenset({"process", "ecs", "cloud-run", "aci"})


@dataclass(frozen=True)
class Reference:
    path: str  # where in the job variables, e.g. ``job_variables.env.DB_PASSWORD``
    slug: str
    name: str
    field: str | None

    @property
    def ref(self) -> str:
        return f"{self.slug}/{self.name}"


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        here, item = stack.pop()
        if isinstance(item, str):
            yield here, item
        elif isinstance(item, dict):
            stack.extend((f"{here}.{k}", v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{here}[{i}]", v) for i, v in enumerate(item))


def references(job_variables: dict[str, Any]) -> list[Reference]:
    """Every block reference in the job variables, in path order."""
    found = [
        Reference(path, m["slug"], m["name"], m["field"])
        for path, text in _strings(job_variables, "job_variables")
        for m in TEMPLATE.finditer(text)
    ]
    return sorted(found, key=lambda r: r.path)


def check_references(job_variables: dict[str, Any], pool_type: str) -> list[str]:
    """The blocks the job variables reference (sorted ``type/name``). 422 naming the
    field for a reference outside ``env`` or on a pool type that cannot take secrets."""
    refs = references(job_variables)
    for ref in refs:
        if pool_type not in RESOLVING_POOL_TYPES:
            raise InvalidInput(
                ref.path,
                f"block references are resolved on {', '.join(sorted(RESOLVING_POOL_TYPES))} "
                f"pools only; a {pool_type!r} pool cannot take them yet (its platform's "
                "secret mechanism is not wired)",
            )
        if not ref.path.startswith("job_variables.env."):
            raise InvalidInput(ref.path, "block references are allowed in env values only")
    return sorted({r.ref for r in refs})


def _pick(values: dict[str, Any], ref: str, field: str | None) -> str:
    if field is None:
        present = [k for k, v in values.items() if v is not None]
        if len(present) != 1:
            raise LookupError(
                f"block {ref!r} has fields {', '.join(sorted(present))}: name one, "
                f"e.g. {{{{ block:{ref}/{sorted(present)[0] if present else 'FIELD'} }}}}"
            )
        field = present[0]
    if values.get(field) is None:
        raise LookupError(f"block {ref!r} has no field {field!r} set")
    value = values[field]
    return value if isinstance(value, str) else json.dumps(value)


def resolve_env(
    env: dict[str, Any], read: Callable[[str, str], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Split ``env`` into (entries without references, entries resolved). ``read(slug,
    name)`` returns a block's values in clear; ``LookupError`` names what is missing."""
    plain: dict[str, Any] = {}
    resolved: dict[str, str] = {}
    cache: dict[str, dict[str, Any]] = {}
    for key, text in env.items():
        if not isinstance(text, str) or not TEMPLATE.search(text):
            plain[key] = text
            continue

        def substitute(m: re.Match[str]) -> str:
            ref = f"{m['slug']}/{m['name']}"
            if ref not in cache:
                cache[ref] = read(m["slug"], m["name"])
            return _pick(cache[ref], ref, m["field"])

        resolved[key] = TEMPLATE.sub(substitute, text)
    return plain, resolved
