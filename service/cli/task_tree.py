"""``pushpool runs inspect``: a flow run's task runs as a tree (upstream -> downstream)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.tree import Tree

MAX_LINES = 500


def _label(node: dict[str, Any]) -> str:
    duration = node.get("duration_seconds")
    timing = f" {duration:.2f}s" if isinstance(duration, int | float) else ""
    attempts = f" x{node['attempts']}" if node.get("attempts", 0) > 1 else ""
    return f"{node['name']} [bold]{node['state']}[/bold]{timing}{attempts}"


def task_tree(graph: dict[str, Any]) -> Tree:
    """Roots are task runs with no upstream; a run with several upstreams appears under
    each. At most ``MAX_LINES`` lines; the rest is summarised."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    children: dict[str, list[str]] = defaultdict(list)
    has_parent: set[str] = set()
    for edge in graph["edges"]:
        children[edge["source"]].append(edge["target"])
        has_parent.add(edge["target"])
    tree = Tree(f"task runs ({len(nodes)})")
    budget = [MAX_LINES]

    def add(parent: Tree, ident: str, path: frozenset[str]) -> None:
        if budget[0] <= 0 or ident in path:
            return
        budget[0] -= 1
        branch = parent.add(_label(nodes[ident]))
        for child in children[ident]:
            add(branch, child, path | {ident})

    for ident in nodes:
        if ident not in has_parent:
            add(tree, ident, frozenset())
    if budget[0] <= 0:
        tree.add(f"... (more than {MAX_LINES} lines; use --output json)")
    return tree
