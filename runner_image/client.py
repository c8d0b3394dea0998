"""HTTP client for the service's runner API.

Built on :mod:`http.client` rather than httpx: importing httpx costs ~150-250 ms,
which would dominate the runner's start-up. Each thread gets its own keep-alive
connection, so the heartbeat and log-shipping threads never block each other.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit

USER_AGENT = "pushpool-runner/0.1"
DEFAULT_TIMEOUT = 10.0
#: Delays before the 2nd, 3rd and 4th attempt of a transient failure.
RETRY_DELAYS = (0.25, 0.5, 1.0)
MAX_RETRY_AFTER = 5.0


class ApiError(Exception):
    """The service answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(ApiError):
    """401: the token is invalid or the run is already terminal. Stop."""


class Conflict(ApiError):
    """409: the requested state transition is illegal."""


class _Response:
    def __init__(self, status: int, body: bytes, retry_after: str | None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after


class RunnerClient:
    """Calls ``/api/runner/flow-runs/{id}/...``; thread-safe."""

    def __init__(
        self,
        api_url: str,
        flow_run_id: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        parts = urlsplit(api_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid API URL: {api_url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = f"{parts.path}/api/runner/flow-runs/{quote(flow_run_id, safe='')}"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._timeout = timeout
        self._retry_delays = retry_delays
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []

    def __repr__(self) -> str:  # never show the token
        return f"RunnerClient({self._scheme}://{self._host}{self._prefix})"

    # -- endpoints ---------------------------------------------------------------

    def get_spec(self) -> dict[str, Any]:
        data = self._call("GET", "/spec")
        if not isinstance(data, dict):
            raise ApiError("spec response is not a JSON object")
        return data

    def set_state(
        self,
        state: str,
        *,
        message: str | None = None,
        result: Any = None,
        error: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {"state": state, "message": message, "result": result, "error": error}
        data = self._call("POST", "/state", body)
        return data if isinstance(data, dict) else {}

    def send_logs(self, logs: list[dict[str, Any]]) -> None:
        self._call("POST", "/logs", {"logs": logs})

    def send_task_runs(self, task_runs: list[dict[str, Any]]) -> None:  # sdk: task runs
        self._call("POST", "/task-runs", {"task_runs": task_runs})

    def get_cache_record(self, key: str) -> dict[str, Any] | None:  # sdk: task cache
        """The cache record under ``key``, or None when the service has none (404)."""
        try:
            data = self._call("GET", f"/cache/{key}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return data if isinstance(data, dict) else None

    def put_cache_record(self, key: str, record: dict[str, Any]) -> None:  # sdk: task cache
        self._call("PUT", f"/cache/{key}", record)

    def acquire_slots(  # sdk: tag concurrency slots
        self, tags: list[str], holder: str, lease_seconds: float
    ) -> bool:
        body = {"tags": tags, "holder": holder, "lease_seconds": lease_seconds}
        data = self._call("POST", "/slots", body)
        return bool(isinstance(data, dict) and data.get("acquired"))

    def release_slots(self, tags: list[str], holder: str) -> None:  # sdk: tag slots
        self._call("POST", "/slots/release", {"tags": tags, "holder": holder})

    def heartbeat(self) -> str | None:
        data = self._call("POST", "/heartbeat", {})
        state = data.get("state") if isinstance(data, dict) else None
        return state if isinstance(state, str) else None

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- plumbing ----------------------------------------------------------------

    def _call(self, method: str, endpoint: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body, allow_nan=False).encode()
        response = self._request_with_retries(method, self._prefix + endpoint, payload)
        if 200 <= response.status < 300:
            return json.loads(response.body) if response.body.strip() else None
        raise _error_for(method, endpoint, response)

    def _request_with_retries(self, method: str, path: str, payload: bytes | None) -> _Response:
        attempt = 0
        while True:
            try:
                response = self._request(method, path, payload)
            except (OSError, http.client.HTTPException) as exc:
                if attempt >= len(self._retry_delays):
                    raise ApiError(
                        f"{method} {path}: service unreachable ({type(exc).__name__}: {exc})"
                    ) from exc
                delay = self._retry_delays[attempt]
            else:
                if not _is_transient(response.status) or attempt >= len(self._retry_delays):
                    return response
                delay = _retry_after(response.retry_after, self._retry_delays[attempt])
            time.sleep(delay)
            attempt += 1

    def _request(self, method: str, path: str, payload: bytes | None) -> _Response:
        headers = dict(self._headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        conn, reused = self._connection()
        try:
            return _send(conn, method, path, payload, headers)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
            self._drop_connection(conn)
            if not reused:
                raise
        except BaseException:
            self._drop_connection(conn)
            raise
        # A kept-alive connection the server had already closed: retry once at once.
        conn, _ = self._connection()
        try:
            return _send(conn, method, path, payload, headers)
        except BaseException:
            self._drop_connection(conn)
            raise

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        conn = self._new_connection()
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn, False

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _drop_connection(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)


def _send(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    payload: bytes | None,
    headers: dict[str, str],
) -> _Response:
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.will_close:
        conn.close()
    return _Response(response.status, body, response.getheader("Retry-After"))


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(header: str | None, default: float) -> float:
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER) if header else default
    except ValueError:
        return default


def _error_for(method: str, endpoint: str, response: _Response) -> ApiError:
    detail = _detail(response.body)
    message = f"{method} {endpoint} -> HTTP {response.status}: {detail}"
    if response.status == 401:
        return Unauthorized(message, response.status)
    if response.status == 409:
        return Conflict(message, response.status)
    return ApiError(message, response.status)


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500] or "(empty response)"
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])[:500]
    return str(data)[:500]
