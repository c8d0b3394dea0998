"""The CLI's HTTP client: finds the server and key, turns error responses into one line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:4300"


class CliError(Exception):
    """Printed as one line; the CLI exits non-zero."""


def _home() -> Path:
    return Path(os.environ.get("PUSHPOOL_HOME") or Path.home() / ".pushpool")


def _saved_credentials() -> dict[str, str]:
    try:
        data = json.loads((_home() / "credentials").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            return str(body["message"])
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail:
            first = detail[0]
            loc = ".".join(str(p) for p in first.get("loc", [])[1:])
            return f"{loc}: {first.get('msg')}" if loc else str(first.get("msg"))
    return str(body)[:300]


class ApiClient:
    def __init__(self, url: str, api_key: str | None, timeout: float = 30.0) -> None:
        # The server prints its URL with /api (http://127.0.0.1:4300/api): take it as is.
        self.url = url.rstrip("/").removesuffix("/api")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with httpx.Client(
            base_url=self.url + "/api", headers=self._headers, timeout=self._timeout
        ) as http:
            return http.request(method, path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._send(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the pushpool server at {self.url} ({type(exc).__name__}); "
                "is it running? (pushpool server start)"
            ) from None
        if response.status_code == 401:
            raise CliError(
                f"not authorised by {self.url}: {_message(response)} "
                "(set PUSHPOOL_API_KEY, or run the CLI where the server saved its credentials)"
            )
        if response.status_code >= 400:
            raise CliError(f"{_message(response)} (HTTP {response.status_code})")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)


def client_from_env() -> ApiClient:
    saved = _saved_credentials()
    url = os.environ.get("PUSHPOOL_API_URL") or saved.get("api_url") or DEFAULT_API_URL
    key = os.environ.get("PUSHPOOL_API_KEY") or saved.get("api_key")
    return ApiClient(url, key)
