"""The one error body every non-2xx answer has, and the statuses each operation documents."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Error(BaseModel):
    """``detail`` says what went wrong; a 422 lists each problem and sums them up in
    ``message``."""

    detail: str | list[ValidationIssue]
    message: str | None = None


_WHY = {
    401: "No API key, or one that is invalid or revoked",
    403: "The API key's role (or pool list) does not allow this; the detail names the role",
    404: "The object named in the path does not exist",
    409: "The request conflicts with the current state",
    413: "The request body is larger than the limit",
    422: "The input is invalid; each problem is named",
    429: "Too many requests with this API key (run token, webhook); retry after Retry-After "
    "seconds",
    502: "The work pool's platform refused or failed the request",
    503: "The service's blocks encryption keys are unavailable (server configuration)",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry documenting ``codes`` with the error body."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": Error, "description": _WHY[code]}
        if code == 429:
            out[code]["headers"] = _RETRY_AFTER
    return out


#: Every route that takes an API key answers these.
AUTHENTICATED = errors(401, 429)
#: ... and these when it needs more than the viewer role.
PRIVILEGED = errors(401, 403, 429)


_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


#: OpenAPI links: (method, path that creates, field of its body) -> the operations the
#: created object's path parameter opens, and that parameter. Clients (and schemathesis'
#: stateful phase) follow them from a create to its get/patch/delete.
LINKS: dict[tuple[str, str, str], tuple[str, list[tuple[str, str]]]] = {
    ("post", "/api/work-pools", "name"): (
        "name",
        [
            ("get", "/api/work-pools/{name}"),
            ("patch", "/api/work-pools/{name}"),
            ("delete", "/api/work-pools/{name}"),
        ],
    ),
    ("post", "/api/deployments", "id"): (
        "deployment_id",
        [
            ("get", "/api/deployments/{deployment_id}"),
            ("patch", "/api/deployments/{deployment_id}"),
            ("delete", "/api/deployments/{deployment_id}"),
            ("post", "/api/deployments/{deployment_id}/runs"),
        ],
    ),
    ("post", "/api/deployments/{deployment_id}/runs", "id"): (
        "run_id",
        [
            ("get", "/api/flow-runs/{run_id}"),
            ("post", "/api/flow-runs/{run_id}/cancel"),
            ("get", "/api/flow-runs/{run_id}/logs"),
            ("get", "/api/flow-runs/{run_id}/task-runs"),
            ("get", "/api/flow-runs/{run_id}/graph"),
        ],
    ),
    ("post", "/api/api-keys", "id"): ("key_id", [("delete", "/api/api-keys/{key_id}")]),
}


def _add_links(paths: dict[str, Any]) -> None:
    """Attach :data:`LINKS` to every 2xx answer of each creating operation."""
    for (method, path, field), (parameter, targets) in LINKS.items():
        source = paths.get(path, {}).get(method)
        if source is None:
            continue
        links = {}
        for target_method, target_path in targets:
            target = paths.get(target_path, {}).get(target_method)
            if target is not None:
                links[target["operationId"]] = {
                    "operationId": target["operationId"],
                    "parameters": {parameter: f"$response.body#/{field}"},
                }
        for code, response in source["responses"].items():
            if code.startswith("2") and links:
                response["links"] = links


def exact_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 (its own body) on every operation with any parameter; only
    a body or a query can fail validation here, and the body is :class:`Error`. Adds the
    :data:`LINKS` from each create to what it created."""
    _add_links(schema.get("paths", {}))
    for operations in schema.get("paths", {}).values():
        for op in operations.values():
            response = op.get("responses", {}).get("422")
            if response is None or _FASTAPI_422 not in str(response):
                continue
            takes_input = "requestBody" in op or any(
                p.get("in") == "query" for p in op.get("parameters", [])
            )
            if takes_input:
                op["responses"]["422"] = {
                    "description": _WHY[422],
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            else:
                del op["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    if _FASTAPI_422 not in str(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in str(schema):
            components.pop("ValidationError", None)
    return schema
