"""The two parts of a run's page that grow with the run (log lines, the task graph), built
as HTML strings here rather than in a template loop: a run page with 1,000 task runs and
its log tail renders several times faster this way. Everything user-made is escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from service.models import LogLine
from service.web.graph import NODE_H, NODE_W, Layout

if TYPE_CHECKING:
    from markupsafe import Markup

#: Characters of a task name shown in its box (the full name is in its tooltip).
NAME_CHARS = 22


def _markup(html: str) -> Markup:
    from markupsafe import Markup  # with Jinja2, on the first page only

    return Markup(html)


def _line(line: LogLine) -> str:
    classes = f"line lv-{escape(line.level.lower())}" + (" err" if line.stream == "stderr" else "")
    return (
        f'<div class="{classes}" data-id="{line.id}"><time>{line.timestamp:%H:%M:%S}</time> '
        f'<span class="msg">{escape(line.message)}</span></div>'
    )


def log_lines(lines: list[LogLine]) -> Markup:
    return _markup("\n".join(_line(line) for line in lines))


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def graph_svg(graph: Layout) -> Markup:
    """The laid-out graph as SVG: ``g.node[data-id][data-name]`` boxes coloured by state,
    ``path.edge[data-source][data-target]`` arrows between them."""
    w, h = graph.width, graph.height
    parts = [
        f'<svg class="graph" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{len(graph.nodes)} task runs, {len(graph.edges)} dependencies">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    parts += [
        f'<path class="edge" d="{e.path}" data-source="{escape(e.source)}" '
        f'data-target="{escape(e.target)}" marker-end="url(#arrow)"/>'
        for e in graph.edges
    ]
    parts += [
        f'<g class="node t-{escape(n.state)}" data-id="{escape(n.id)}" '
        f'data-name="{escape(n.name)}" transform="translate({n.x},{n.y})">'
        f"<title>{escape(n.title)}</title>"
        f'<rect width="{NODE_W}" height="{NODE_H}" rx="6"/>'
        f'<circle cx="14" cy="{NODE_H // 2}" r="5"/>'
        f'<text x="26" y="{NODE_H // 2 + 4}">{escape(_short(n.name))}</text></g>'
        for n in graph.nodes
    ]
    parts.append("</svg>")
    return _markup("".join(parts))
