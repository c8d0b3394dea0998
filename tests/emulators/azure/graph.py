"""Azure Resource Graph as the emulator serves it: ``POST /providers/Microsoft.ResourceGraph/
resources`` over the emulated container groups, with Resource Graph's freshness model.

The body is read with ``azure-mgmt-resourcegraph``'s own ``QueryRequest`` (unknown or
missing fields fail). The KQL understood is the subset a filter-and-project query needs:
``resources | where A and B ... | project X, alias = tostring(path), ...`` where each
condition is ``field =~ 'text'`` (case-insensitive) or ``field == 'text'``, a field is
``type``, ``resourceGroup``, ``name`` or ``tags['key']``, and a path is dotted with
``[n]`` indexes into the resource's JSON. Anything else is ``400 InvalidQuery``.

Freshness: ARM writes (PUT, stop, DELETE) re-index a group at once, as ARM notifies
Resource Graph of them; a change no ARM write made (a container starting or ending)
reaches the index only with the next full scan, every ``Azure.graph_scan_seconds``
(``0``: every query sees the current state).
"""

from __future__ import annotations

import re
from typing import Any

from azure.mgmt.resourcegraph import models

from emulators.azure.containers import Answer, arm_error, render
from emulators.azure.state import Azure
from emulators.azure.validate import check

_STRING = r"'((?:[^'\\]|\\.)*)'"
_CONDITION = re.compile(
    rf"^(type|resourceGroup|name|tags\[{_STRING}\])\s*(=~|==)\s*{_STRING}$", re.IGNORECASE
)
_ALIASED = re.compile(r"^(\w+)\s*=\s*tostring\((.+)\)$")
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*|\[\d+\])*$")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _split(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside quotes and brackets."""
    parts, depth, quoted, start = [], 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i].strip())
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


def _value(row: dict[str, Any], path: str) -> Any:
    value: Any = row
    for step in re.findall(r"[A-Za-z_]\w*|\[\d+\]", path):
        if step.startswith("["):
            index = int(step[1:-1])
            value = value[index] if isinstance(value, list) and index < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


class Query:
    """A parsed query: its conditions and its projection."""

    def __init__(self, kql: str) -> None:
        stages = _split(kql, "|")
        if stages[0].lower() != "resources" or len(stages) != 3:
            raise ValueError("expected: resources | where ... | project ...")
        where, project = stages[1], stages[2]
        if not where.lower().startswith("where ") or not project.lower().startswith("project "):
            raise ValueError("expected: resources | where ... | project ...")
        self.conditions = [self._condition(c) for c in _split(where[6:], " and ")]
        self.columns = [self._column(c) for c in _split(project[8:], ",")]

    @staticmethod
    def _condition(text: str) -> tuple[str, str | None, bool, str]:
        m = _CONDITION.match(text)
        if m is None:
            raise ValueError(f"unsupported condition: {text}")
        field, tag, op, value = m.group(1), m.group(2), m.group(3), _unquote(m.group(4))
        name = "tags" if tag is not None else field
        return name, None if tag is None else _unquote(tag), op == "=~", value

    @staticmethod
    def _column(text: str) -> tuple[str, str]:
        m = _ALIASED.match(text)
        alias, path = (m.group(1), m.group(2).strip()) if m else (text, text)
        if not _PATH.match(path):
            raise ValueError(f"unsupported column: {text}")
        return alias, path

    def matches(self, row: dict[str, Any]) -> bool:
        for name, tag, fold, wanted in self.conditions:
            got = (row.get("tags") or {}).get(tag) if tag is not None else row.get(name)
            got = "" if got is None else str(got)
            if (got.lower() != wanted.lower()) if fold else (got != wanted):
                return False
        return True

    def project(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for alias, path in self.columns:
            value = _value(row, path)
            out[alias] = ("" if value is None else str(value)) if alias != path else value
        return out


def _row(indexed: dict[str, Any]) -> dict[str, Any]:
    """A resource as Resource Graph's ``resources`` table has it (lowercased type)."""
    rg = indexed["id"].split("/")[4]
    return indexed | {"type": indexed["type"].lower(), "resourceGroup": rg.lower()}


class ResourceGraph:
    def __init__(self, azure: Azure) -> None:
        self.azure = azure
        self._scanned = azure.clock()

    def _scan(self) -> None:
        """Re-index every group if a full scan is due."""
        a, now = self.azure, self.azure.clock()
        if a.graph_scan_seconds and now - self._scanned < a.graph_scan_seconds:
            return
        self._scanned = now
        for gid, g in a.groups.items():
            a.graph[gid] = render(g.id, g, view=True)

    def query(self, body: Any) -> Answer:
        request, errors = check(models.QueryRequest, body)
        if errors:
            return arm_error(400, "BadRequest", "; ".join(errors))
        subscriptions = {s.lower() for s in request.subscriptions or []}
        try:
            parsed = Query(request.query)
        except ValueError as exc:
            return arm_error(400, "InvalidQuery", f"Query is invalid: {exc}")
        options = request.options or models.QueryRequestOptions()
        if options.result_format not in (None, "objectArray"):
            return arm_error(400, "BadRequest", "the emulator answers objectArray only")
        self._scan()
        rows = [
            parsed.project(_row(r))
            for gid, r in sorted(self.azure.graph.items())
            if gid.split("/")[2] in subscriptions and parsed.matches(_row(r))
        ]
        start = int(options.skip_token or options.skip or 0)
        top = options.top or 100
        page = rows[start : start + top]
        answer: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "data": page,
        }
        if start + top < len(rows):
            answer["$skipToken"] = str(start + top)
        return 200, answer, {}
