"""The dashboard tests' client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from support.web import ORIGIN

from service.app import create_app
from service.services import Services


@pytest.fixture
def web(services: Services, admin_key: str) -> Iterator[TestClient]:
    """A browser-like client over HTTPS (so the Secure cookie is sent back)."""
    with TestClient(create_app(services), base_url=ORIGIN, follow_redirects=False) as client:
        yield client
