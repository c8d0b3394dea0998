"""Shared fixtures: a settable clock, settings in a temp home, stores, services, the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock

from service.app import create_app
from service.bootstrap import ensure_admin_key, ensure_default_pool
from service.services import Services, build_services
from service.settings import Settings
from service.store.base import Store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", port=4300)


def _sqlite_store(tmp_path: Path) -> Store:
    from service.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    return store


#: Store backends the conformance suite runs against; a new backend adds one entry.
STORE_FACTORIES = {"sqlite": _sqlite_store}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = STORE_FACTORIES[request.param](tmp_path)
    yield s
    s.close()


@pytest.fixture
def services(settings: Settings, clock: FakeClock, tmp_path: Path) -> Iterator[Services]:
    svc = build_services(settings, _sqlite_store(tmp_path), clock)
    ensure_default_pool(svc)
    yield svc
    svc.store.close()


@pytest.fixture
def admin_key(services: Services) -> str:
    key = ensure_admin_key(services)
    assert key is not None
    return key


@pytest.fixture
def api(services: Services, admin_key: str) -> Iterator[TestClient]:
    app = create_app(services)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_key}"}) as client:
        yield client
