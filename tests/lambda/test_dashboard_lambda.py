"""The dashboard through API Gateway (HTTP API, payload 2.0) and Mangum, as on Lambda."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from support.factories import http_v2_event
from support.server import stop_all_runs

from service import lambda_handler
from service.bootstrap import ensure_admin_key
from service.lambda_handler import handler

HOST = "id.execute-api.amazonaws.com"


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path / "home"))
    lambda_handler.services.cache_clear()
    lambda_handler._http_adapter.cache_clear()
    yield tmp_path
    if lambda_handler.services.cache_info().currsize:
        stop_all_runs(lambda_handler.services())
        lambda_handler.services().store.close()
    lambda_handler.services.cache_clear()
    lambda_handler._http_adapter.cache_clear()


def page_event(path: str, *, cookie: str | None = None, form: dict[str, str] | None = None) -> Any:
    event = http_v2_event(path, method="POST" if form is not None else "GET")
    event["headers"] = {"host": HOST, "x-forwarded-proto": "https", "accept": "text/html"}
    if form is not None:
        event["headers"] |= {
            "content-type": "application/x-www-form-urlencoded",
            "origin": f"https://{HOST}",
        }
        event["body"] = urlencode(form)
    if cookie:
        event["cookies"] = [cookie]
    return event


def body_of(response: dict[str, Any]) -> str:
    body = response.get("body") or ""
    return base64.b64decode(body).decode() if response.get("isBase64Encoded") else str(body)


def test_pages_through_api_gateway_with_a_secure_session_cookie(env: Path) -> None:
    key = ensure_admin_key(lambda_handler.services())
    assert key is not None
    signed_out = handler(page_event("/"), Context())
    assert signed_out["statusCode"] == 303 and signed_out["headers"]["location"] == "/login"
    login = handler(page_event("/login"), Context())
    assert login["statusCode"] == 200
    assert login["headers"]["content-type"].startswith("text/html")
    assert 'name="api_key"' in body_of(login)

    signed_in = handler(page_event("/login", form={"api_key": key}), Context())
    assert signed_in["statusCode"] == 303
    (cookie,) = signed_in["cookies"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower()
    runs = handler(page_event("/runs", cookie=cookie.split(";")[0]), Context())
    assert runs["statusCode"] == 200 and "<table" in body_of(runs)
    assert key not in body_of(runs)  # the key is in the cookie only, never in the page
