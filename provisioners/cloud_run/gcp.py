"""The one boundary between the ``cloud-run`` pool type and Google's client libraries.

:class:`Gcp` makes each client once, on first use, with Application Default Credentials
(``google.auth.default()``: workload identity, the metadata server, a user's
``gcloud auth application-default login``; never a key file named here) over the REST
transport. Every call goes through :meth:`Gcp.call`, which turns Google's exceptions into
:class:`~provisioners.cloud_run.errors.GcpError`; the libraries' own retries are off, so
the provisioner decides when to look and when to act again. Resources come back as plain
dicts (proto field names, enum names). Nothing of Google's is imported at import time.

Test/emulator only: when ``PUSHPOOL_GCP_EMULATOR_URL`` is set, every client talks to that
URL with anonymous credentials. Production never sets it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar

from provisioners.cloud_run.errors import (
    GcpError,
    from_api_error,
    from_transport_error,
    no_credentials,
)

#: Test/emulator only: the URL of a local server standing in for every Google API.
EMULATOR_ENV = "PUSHPOOL_GCP_EMULATOR_URL"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: Per-call deadline, seconds.
TIMEOUT = 30.0
#: Items per list call: few calls for a pass over many runs.
PAGE_SIZE = 500
Kind = Literal["jobs", "executions", "tasks", "secrets"]
Resource = dict[str, Any]
T = TypeVar("T")

_credentials: Any = None
_credentials_lock = threading.Lock()


def emulator_url() -> str | None:
    return os.environ.get(EMULATOR_ENV) or None


def credentials() -> Any:
    """The process's Google credentials: anonymous for an emulator, else ADC (cached)."""
    global _credentials
    with _credentials_lock:
        if emulator_url():
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        if _credentials is None:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                _credentials, _ = google.auth.default(scopes=list(SCOPES))
            except DefaultCredentialsError as exc:
                raise no_credentials(exc) from exc
        return _credentials


def client_kwargs() -> dict[str, Any]:
    """Keyword arguments for a GAPIC client: REST, credentials, the emulator if any."""
    kwargs: dict[str, Any] = {"transport": "rest", "credentials": credentials()}
    url = emulator_url()
    if url:
        from google.api_core.client_options import ClientOptions

        kwargs["client_options"] = ClientOptions(api_endpoint=url)
    return kwargs


def to_dict(message: Any) -> Resource:
    """A proto-plus message as a dict with proto field names and enum names."""
    result: Resource = type(message).to_dict(
        message, use_integers_for_enums=False, preserving_proto_field_name=True
    )
    return result


def guarded(operation: str, call: Callable[[], T]) -> T:
    """``call()`` with Google's and the transport's exceptions as ``GcpError``."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        return call()
    except api.GoogleAPICallError as exc:
        raise from_api_error(exc, operation) from exc
    except (api.RetryError, auth.TransportError, requests.RequestException) as exc:
        raise from_transport_error(exc, operation) from exc
    except auth.DefaultCredentialsError as exc:
        raise no_credentials(exc) from exc


class Gcp:
    """Typed, error-translating access to the Cloud Run Admin API (v2) and Cloud Logging."""

    def __init__(self, project: str, region: str) -> None:
        self.project, self.region = project, region
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def job_name(self, job_id: str) -> str:
        return f"{self.parent}/jobs/{job_id}"

    # -- plumbing ----------------------------------------------------------------------
    def _new_client(self, kind: Kind) -> Any:
        if kind == "secrets":
            from google.cloud import secretmanager_v1

            return secretmanager_v1.SecretManagerServiceClient(**client_kwargs())
        from google.cloud import run_v2

        factory = {
            "jobs": run_v2.JobsClient,
            "executions": run_v2.ExecutionsClient,
            "tasks": run_v2.TasksClient,
        }[kind]
        return factory(**client_kwargs())

    def client(self, kind: Kind) -> Any:
        with self._lock:
            if kind not in self._clients:
                self._clients[kind] = guarded(f"{kind} client", lambda: self._new_client(kind))
            return self._clients[kind]

    def call(self, kind: Kind, method: str, **params: Any) -> Any:
        """``method`` of the ``kind`` client, without the library's retries."""
        client = self.client(kind)
        label = f"run.{kind}.{method}"
        return guarded(
            label, lambda: getattr(client, method)(retry=None, timeout=TIMEOUT, **params)
        )

    def _listed(self, kind: Kind, method: str, parent: str) -> Iterator[Resource]:
        pager = self.call(kind, method, request={"parent": parent, "page_size": PAGE_SIZE})
        label = f"run.{kind}.{method}"
        pages = iter(guarded(label, lambda: pager.pages))
        while True:
            page = guarded(label, lambda: next(pages, None))
            if page is None:
                return
            for item in getattr(page, kind):
                yield to_dict(item)

    # -- jobs --------------------------------------------------------------------------
    def create_job(self, job_id: str, job: Resource) -> None:
        """Create the job (and, with a start token in it, its execution); no wait."""
        from google.cloud import run_v2

        body = run_v2.Job(job)
        self.call("jobs", "create_job", parent=self.parent, job=body, job_id=job_id)

    def get_job(self, job_id: str) -> Resource | None:
        try:
            return to_dict(self.call("jobs", "get_job", name=self.job_name(job_id)))
        except GcpError as exc:
            if exc.not_found:
                return None
            raise

    def list_jobs(self) -> Iterator[Resource]:
        return self._listed("jobs", "list_jobs", self.parent)

    def delete_job(self, name: str) -> bool:
        """Delete the job and its executions (no wait); ``False`` if it was gone."""
        try:
            self.call("jobs", "delete_job", name=name)
        except GcpError as exc:
            if exc.not_found:
                return False
            raise
        return True

    # -- executions and tasks ----------------------------------------------------------
    def list_executions(self, job_name: str) -> list[Resource]:
        """Executions of one job (``jobs/-``: of every job in the region)."""
        return list(self._listed("executions", "list_executions", job_name))

    def cancel_execution(self, name: str) -> None:
        self.call("executions", "cancel_execution", name=name)

    def list_tasks(self, execution_name: str) -> list[Resource]:
        return list(self._listed("tasks", "list_tasks", execution_name))

    # -- Secret Manager (a pool's block secrets) --------------------------------------
    def secret_name(self, secret_id: str) -> str:
        return f"projects/{self.project}/secrets/{secret_id}"

    def add_secret_version(self, secret_id: str, value: str) -> str:
        """A new version of the secret holding ``value``; its name (``…/versions/N``).
        ``GcpError`` with ``not_found`` when the secret does not exist."""
        version = self.call(
            "secrets",
            "add_secret_version",
            request={"parent": self.secret_name(secret_id), "payload": {"data": value.encode()}},
        )
        return str(version.name)

    def create_secret(self, secret_id: str, labels: dict[str, str]) -> None:
        """Create an empty secret (automatic replication) carrying ``labels``."""
        secret = {"replication": {"automatic": {}}, "labels": labels}
        self.call(
            "secrets",
            "create_secret",
            request={
                "parent": f"projects/{self.project}",
                "secret_id": secret_id,
                "secret": secret,
            },
        )

    def grant_secret_access(self, secret_id: str, member: str, role: str) -> None:
        """``member`` holds ``role`` on the secret (read, and written only if missing)."""
        resource = self.secret_name(secret_id)
        policy = self.call("secrets", "get_iam_policy", request={"resource": resource})
        if any(b.role == role and member in b.members for b in policy.bindings):
            return
        policy.bindings.add(role=role, members=[member])
        self.call("secrets", "set_iam_policy", request={"resource": resource, "policy": policy})

    def list_secret_names(self, id_prefix: str) -> list[str]:
        """The names of the project's secrets whose id starts with ``id_prefix``."""
        pager = self.call(
            "secrets",
            "list_secrets",
            request={"parent": f"projects/{self.project}", "page_size": PAGE_SIZE},
        )
        wanted = self.secret_name(id_prefix)
        found = guarded("secrets.list", lambda: list(pager))
        return [str(s.name) for s in found if s.name.startswith(wanted)]

    def delete_secret(self, name: str) -> None:
        try:
            self.call("secrets", "delete_secret", request={"name": name})
        except GcpError as exc:
            if not exc.not_found:
                raise

    # -- logging -----------------------------------------------------------------------
    def log_lines(self, log_filter: str, max_lines: int) -> list[str]:
        """The newest ``max_lines`` log entries matching ``log_filter``, oldest first."""

        def read() -> list[str]:
            from google.cloud import logging

            options = {"api_endpoint": emulator_url()} if emulator_url() else None
            client = logging.Client(
                project=self.project,
                credentials=credentials(),
                _use_grpc=False,
                client_options=options,
            )
            entries = client.list_entries(
                resource_names=[f"projects/{self.project}"],
                filter_=log_filter,
                order_by=logging.DESCENDING,
                max_results=max_lines,
                page_size=max_lines,
            )
            return [_entry_text(entry.payload) for entry in entries]

        return list(reversed(guarded("logging.entries.list", read)))


def _entry_text(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("message", payload))
    return "" if payload is None else str(payload)
