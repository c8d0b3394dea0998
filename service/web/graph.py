"""A task-run graph laid out in layers and drawn as SVG on the server.

Layer of a node = the length of the longest upstream path to it (sources in layer 0);
nodes within a layer keep the order of the task runs (creation order, map index). Simple,
stable between polls (no jumps), and linear in nodes + edges.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.task_runs import GraphNode, TaskGraph

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 168, 34, 56, 12, 8


@dataclass(frozen=True)
class PlacedNode:
    id: str
    name: str
    state: str
    title: str
    x: int
    y: int


@dataclass(frozen=True)
class PlacedEdge:
    source: str
    target: str
    path: str


@dataclass(frozen=True)
class Layout:
    nodes: list[PlacedNode]
    edges: list[PlacedEdge]
    width: int
    height: int


def _layers(graph: TaskGraph) -> dict[str, int]:
    """Longest-path layering (Kahn's order; a cycle, which the SDK never makes, is cut)."""
    upstream: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    downstream: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for e in graph.edges:
        upstream[e.target].append(e.source)
        downstream[e.source].append(e.target)
    waiting = {n: len(ups) for n, ups in upstream.items()}
    layer = dict.fromkeys(upstream, 0)
    ready = [n for n, count in waiting.items() if count == 0]
    while ready:
        node = ready.pop()
        for child in downstream[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return layer


def _title(node: GraphNode) -> str:
    took = f", {node.duration_seconds:.2f} s" if node.duration_seconds is not None else ""
    tries = f", {node.attempts} attempts" if node.attempts > 1 else ""
    return f"{node.name}: {node.state}{took}{tries}"


def layout(graph: TaskGraph) -> Layout:
    layer = _layers(graph)
    rows: dict[int, int] = {}
    nodes: list[PlacedNode] = []
    where: dict[str, tuple[int, int]] = {}
    for n in graph.nodes:
        col = layer[n.id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        x, y = PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)
        where[n.id] = (x, y)
        nodes.append(PlacedNode(n.id, n.name, n.state.lower(), _title(n), x, y))
    edges = []
    for e in graph.edges:
        (sx, sy), (tx, ty) = where[e.source], where[e.target]
        x1, y1, x2, y2 = sx + NODE_W, sy + NODE_H // 2, tx, ty + NODE_H // 2
        mid = (x1 + x2) // 2
        edges.append(PlacedEdge(e.source, e.target, f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"))
    columns = max(layer.values(), default=-1) + 1
    width = PAD * 2 + columns * NODE_W + max(columns - 1, 0) * GAP_X
    height = PAD * 2 + max(rows.values(), default=0) * (NODE_H + GAP_Y)
    return Layout(nodes, edges, width, height)
