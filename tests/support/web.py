"""Signing in to the dashboard and posting its forms from a ``TestClient``."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from service.models import Role
from service.security import create_api_key
from service.services import Services

ORIGIN = "https://testserver"


def sign_in(web: TestClient, key: str) -> str:
    """Sign in; return the session's CSRF token (from a page, as a form would have it)."""
    r = web.post("/login", data={"api_key": key}, headers={"Origin": ORIGIN})
    assert r.status_code == 303, r.text
    page = web.get("/runs")
    assert page.status_code == 200
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]{64})"', page.text)
    assert found
    return found.group(1)


def key_with(services: Services, role: Role) -> str:
    return create_api_key(services.store, role.value, services.clock(), role)[1]


def post(web: TestClient, path: str, token: str | None, **form: str) -> Any:
    data = {"csrf_token": token, **form} if token else form
    return web.post(path, data=data, headers={"Origin": ORIGIN})
