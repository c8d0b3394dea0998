"""The emulator's HTTP face: one Starlette app routing ARM paths (case-insensitively)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.azure.blobs import BlobService
from emulators.azure.containers import Answer, ContainerInstance, arm_error
from emulators.azure.graph import ResourceGraph
from emulators.azure.resources import Resources
from emulators.azure.state import Azure

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
GROUPS = RG + r"/providers/microsoft\.containerinstance/containergroups"
GROUP = GROUPS + r"/(?P<name>[^/]+)"
GRAPH = r"/providers/microsoft\.resourcegraph/resources"
OPERATION = (
    SUB + r"/providers/microsoft\.containerinstance/locations/[^/]+/operations/(?P<op>[^/]+)"
)


def _match(pattern: str, path: str) -> re.Match[str] | None:
    return re.fullmatch(pattern, path, re.IGNORECASE)


def _rg_id(m: re.Match[str]) -> str:
    return f"/subscriptions/{m['sub']}/resourceGroups/{m['rg']}"


def make_app(azure: Azure, blobs: BlobService | None = None) -> Starlette:
    """ARM at the root; the Blob data plane (``blobs``) under ``/blob/<account>/...``."""
    aci = ContainerInstance(azure)
    resources = Resources(azure)
    graph = ResourceGraph(azure)

    def route(
        method: str, path: str, query: dict[str, str], body: Any, base: str, headers: dict[str, str]
    ) -> Answer:
        if method == "POST" and _match(GRAPH, path):
            return graph.query(body)
        if m := _match(OPERATION, path):
            return aci.operation(m["op"])
        if method == "GET" and (m := _match(GROUPS, path)):
            return aci.list(_rg_id(m))
        if method == "POST" and (m := _match(GROUP + "/stop", path)):
            return aci.stop(path.rsplit("/", 1)[0])
        if method == "GET" and (m := _match(GROUP + r"/containers/[^/]+/logs", path)):
            tail = query.get("tail")
            return aci.logs(path.split("/containers/")[0], int(tail) if tail else None)
        if m := _match(GROUP, path):
            handlers: dict[str, Callable[[], Answer]] = {
                "GET": lambda: aci.get(path),
                "PUT": lambda: aci.put(base, path, _rg_id(m), body, headers),
                "DELETE": lambda: aci.delete(path),
            }
            if method in handlers:
                return handlers[method]()
        return resources.handle(method, path, query, body, base)

    async def handle(request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _respond(arm_error(400, "InvalidRequestContent", "the body is not JSON"))
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return _respond(arm_error(401, "AuthenticationFailed", "no bearer token"))
        path = request.url.path
        fault = azure.record(request.method, path, request.url.query, body)
        if fault is not None:
            return _respond(arm_error(fault.status, fault.code, fault.message, fault.headers))
        base = str(request.base_url).rstrip("/")
        with azure.lock:
            answer = route(
                request.method,
                path,
                dict(request.query_params),
                body,
                base,
                {k.lower(): v for k, v in request.headers.items()},
            )
        return _respond(answer)

    methods = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]
    routes = [Route("/{path:path}", handle, methods=methods)]
    if blobs is not None:
        routes.insert(0, Route("/blob/{path:path}", blobs.handle, methods=["GET", "PUT", "HEAD"]))
    return Starlette(routes=routes)


def _respond(answer: Answer) -> Response:
    status, body, headers = answer
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)
