"""The web dashboard: server-rendered pages (Jinja2) with htmx for live parts.

Mounted at ``/`` by :func:`service.app.create_app`. Every page reads and changes state
through the same services and store queries as the API (``service.runs``,
``service.run_queries``, ``service.deployments``, ``service.pools``, ``service.task_runs``),
behind the same keys and roles. Jinja2 is imported on the first page rendered, never on the
API's hot path (a Lambda health request loads none of it).
"""

from service.web.routes import router

__all__ = ["router"]
