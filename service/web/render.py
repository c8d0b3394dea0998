"""Templates: one Jinja2 environment, built (and Jinja2 imported) on the first page."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from service.web.assets import url_for_static
from service.web.fragments import graph_svg, log_lines

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).parent / "templates"


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return format_seconds((end - start).total_seconds())


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    delta = timedelta(seconds=round(seconds))
    return str(delta) if delta.days == 0 else f"{delta.days} d {delta.seconds // 3600} h"


def _can(key: object, role: str) -> bool:
    """Whether the signed-in key has ``role`` (templates show actions by it)."""
    from service.models import ApiKey, Role

    return isinstance(key, ApiKey) and key.role.includes(Role(role))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


#: Resource id prefix -> the dashboard page of that resource.
_PAGES = {
    "pushpool.flow-run.": "/runs/",
    "pushpool.deployment.": "/deployments/",
    "pushpool.work-pool.": "/work-pools/",
    "pushpool.automation.": "/automations/",
}


def resource_href(resource_id: str) -> str:
    """The page of an event's resource, or "" when the dashboard has none."""
    from urllib.parse import quote

    for prefix, path in _PAGES.items():
        if resource_id.startswith(prefix) and len(resource_id) > len(prefix):
            return path + quote(resource_id[len(prefix) :], safe="")
    return ""


@functools.cache
def environment() -> Environment:
    import jinja2  # here, not at import: the API's hot path never needs it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, duration=_duration, pretty=_pretty, seconds=format_seconds)
    env.filters.update(href=resource_href)
    env.globals.update(static=url_for_static, can=_can, log_lines=log_lines, graph_svg=graph_svg)
    return env


def render_text(name: str, context: dict[str, Any]) -> str:
    return environment().get_template(name).render(context)


def page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """``name`` rendered with ``context`` plus the signed-in key and the CSRF token."""
    full = {
        "request": request,
        "key": getattr(request.state, "key", None),
        "csrf": getattr(request.state, "csrf", ""),
        **context,
    }
    response = HTMLResponse(render_text(name, full), status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response
