"""The emulator's HTTP face: one route table over every emulated service."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulators.gcp.base import ApiError, Journal, Recorded, page
from emulators.gcp.cloudrun import CloudRun
from emulators.gcp.logging import Logging
from emulators.gcp.project import Project
from emulators.gcp.secretmanager import SecretManager
from emulators.gcp.storage import Storage

Handler = Callable[["Call"], Any]
_P = r"/v2/(?P<parent>projects/[^/]+/locations/[^/]+)"
_J = r"/v2/(?P<job>projects/[^/]+/locations/[^/]+/jobs/[^/:]+)"
_E = _J[: -len(")")] + r"/executions/[^/:]+)"


@dataclass
class Call:
    match: re.Match[str]
    query: dict[str, str]
    body: bytes
    content_type: str = ""

    def __getitem__(self, group: str) -> str:
        return self.match.group(group).replace("%2F", "/")


class Services:
    """Everything one emulator holds; ``routes`` maps requests to it."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: a fresh project, no faults, an empty request log."""
        self.journal = Journal()
        self.run = CloudRun()
        self.logging = Logging()
        self.secrets = SecretManager()
        self.storage = Storage()
        self.projects: dict[str, Project] = {}
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._cloud_run_routes()
        self._project_routes()
        self._secret_manager_routes()
        self._storage_routes()
        self.add("POST", r"/v2/entries:list", lambda c: self.logging.list_entries(c.body))

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(pattern + r"$"), handler))

    def project(self, project: str) -> Project:
        """The emulated project (made on first use)."""
        return self.projects.setdefault(project, Project(project))

    def _project_routes(self) -> None:
        p = self.project
        svc = r"/v1/(?P<name>projects/(?P<p>[^/]+)/services/[^/:]+)"
        self.add("GET", svc, lambda c: p(c["p"]).service(c["name"]))
        self.add("POST", svc + ":enable", lambda c: p(c["p"]).set_service(c["name"], c.body, True))
        self.add(
            "POST", svc + ":disable", lambda c: p(c["p"]).set_service(c["name"], c.body, False)
        )
        accounts = r"/v1/projects/(?P<p>[^/]+)/serviceAccounts"
        account = accounts + r"/(?P<email>[^/:]+)"
        self.add("POST", accounts, lambda c: p(c["p"]).create_account(c.body))
        self.add("GET", account, lambda c: p(c["p"]).account(c["email"]))
        self.add("DELETE", account, lambda c: p(c["p"]).delete_account(c["email"]))
        self.add(
            "POST",
            account + ":getIamPolicy",
            lambda c: p(c["p"]).account_policy(c["email"], c.body, write=False),
        )
        self.add(
            "POST",
            account + ":setIamPolicy",
            lambda c: p(c["p"]).account_policy(c["email"], c.body, write=True),
        )
        project = r"/v3/projects/(?P<p>[^/:]+)"
        self.add(
            "POST", project + ":getIamPolicy", lambda c: p(c["p"]).project_policy(c.body, False)
        )
        self.add(
            "POST", project + ":setIamPolicy", lambda c: p(c["p"]).project_policy(c.body, True)
        )
        repos = r"/v1/(?P<parent>projects/(?P<p>[^/]+)/locations/[^/]+)/repositories"
        repo = r"/v1/(?P<name>projects/(?P<p>[^/]+)/locations/[^/]+/repositories/[^/:]+)"

        def create_repository(c: Call) -> Any:
            if not c.query.get("repositoryId"):
                raise ApiError(400, "repositoryId is required")
            return p(c["p"]).create_repository(c["parent"], c.query["repositoryId"], c.body)

        self.add("POST", repos, create_repository)
        self.add("GET", repo, lambda c: p(c["p"]).repository(c["name"]))
        self.add("DELETE", repo, lambda c: p(c["p"]).delete_repository(c["name"]))

    def _secret_manager_routes(self) -> None:
        sm = self.secrets
        parent = r"/v1/(?P<parent>projects/[^/]+)/secrets"
        secret = r"/v1/(?P<name>projects/[^/]+/secrets/[^/:]+)"

        def listed(c: Call) -> dict[str, Any]:
            chunk, token = page(sm.list_secrets(c["parent"]), c.query)
            return {"secrets": chunk, **({"nextPageToken": token} if token else {})}

        self.add(
            "POST",
            parent,
            lambda c: sm.create_secret(c["parent"], c.query.get("secretId", ""), c.body),
        )
        self.add("GET", parent, listed)
        self.add("DELETE", secret, lambda c: sm.delete_secret(c["name"]))
        self.add("POST", secret + ":addVersion", lambda c: sm.add_version(c["name"], c.body))
        self.add("GET", secret + ":getIamPolicy", lambda c: sm.get_policy(c["name"]))
        self.add("POST", secret + ":setIamPolicy", lambda c: sm.set_policy(c["name"], c.body))

    def _storage_routes(self) -> None:
        gcs = self.storage
        b = r"/storage/v1/b/(?P<b>[^/]+)"
        o = r"/o/(?P<o>.+)"
        self.add(
            "POST",
            r"/storage/v1/b",
            lambda c: gcs.create_bucket(c.query.get("project", ""), c.body),
        )
        self.add("GET", b, lambda c: gcs.get_bucket(c["b"]))
        self.add("DELETE", b, lambda c: gcs.delete_bucket(c["b"]))
        self.add("GET", b + r"/iam", lambda c: gcs.get_policy(c["b"]))
        self.add("PUT", b + r"/iam", lambda c: gcs.set_policy(c["b"], c.body))
        self.add("GET", b + r"/o", lambda c: gcs.list_objects(c["b"], c.query))
        self.add(
            "POST",
            r"/upload" + b + r"/o",
            lambda c: gcs.upload(c["b"], c.query, c.content_type, c.body),
        )

        def read(c: Call) -> Any:
            if c.query.get("alt") == "media":
                return Response(gcs.media(c["b"], c["o"]), media_type="application/octet-stream")
            return gcs.get_object(c["b"], c["o"])

        self.add("GET", b + o, read)
        self.add("GET", r"/download" + b + o, read)
        self.add("DELETE", b + o, lambda c: gcs.delete_object(c["b"], c["o"]))

    def _cloud_run_routes(self) -> None:
        run = self.run

        def listed(key: str, items: list[Any], call: Call) -> dict[str, Any]:
            chunk, token = page(items, call.query)
            return {key: chunk, **({"nextPageToken": token} if token else {})}

        def create(c: Call) -> Any:
            if not c.query.get("jobId"):
                raise ApiError(400, "jobId is required")
            return run.create_job(c["parent"], c.query["jobId"], c.body)

        self.add("POST", _P + r"/jobs", create)
        self.add("GET", _P + r"/jobs", lambda c: listed("jobs", run.list_jobs(c["parent"]), c))
        self.add("GET", _J, lambda c: run.job(c["job"]))
        self.add("DELETE", _J, lambda c: run.delete_job(c["job"]))
        self.add("POST", _J + r":run", lambda c: run.run_job(c["job"], c.body))
        self.add(
            "GET",
            _J + r"/executions",
            lambda c: listed("executions", run.list_executions(c["job"]), c),
        )
        self.add("POST", _E + r":cancel", lambda c: run.cancel_execution(c["job"], c.body))
        self.add("GET", _E + r"/tasks", lambda c: listed("tasks", run.list_tasks(c["job"]), c))
        self.add(
            "GET",
            _P + r"/operations/(?P<op>[^/:]+)",
            lambda c: run.operation(f"{c['parent']}/operations/{c['op']}"),
        )

    def handle(
        self, method: str, path: str, query: dict[str, str], body: bytes, content_type: str = ""
    ) -> Response:
        record = Recorded(method, path, "&".join(f"{k}={v}" for k, v in query.items()))
        with self.journal.lock:
            self.journal.requests.append(record)
            response = self._answer(method, path, query, body, content_type)
        record.status = response.status_code
        return response

    def _answer(
        self, method: str, path: str, query: dict[str, str], body: bytes, content_type: str
    ) -> Response:
        fault = self.journal.fault_for(method, path)
        if fault is not None and not fault.after:
            return ApiError(fault.status, fault.message, fault.reason).response()
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                try:
                    result = handler(Call(match, query, body, content_type))
                except ApiError as exc:
                    return exc.response()
                if fault is not None:  # done, but the answer is "lost"
                    return ApiError(fault.status, fault.message, fault.reason).response()
                if isinstance(result, Response):
                    return result
                if result is None and method == "DELETE" and path.startswith("/storage/"):
                    return Response(status_code=204)
                return JSONResponse(result if result is not None else {})
        return ApiError(404, f"no such method: {method} {path}").response()


def build_app(services: Services) -> Starlette:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        content_type = request.headers.get("content-type", "")
        query = dict(request.query_params)
        return services.handle(request.method, path, query, body, content_type)

    methods = ["GET", "POST", "DELETE", "PATCH", "PUT"]
    route: Callable[[Request], Awaitable[Response]] = endpoint
    return Starlette(routes=[Route("/{path:path}", route, methods=methods)])
