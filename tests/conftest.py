"""Shared fixtures: a settable clock, settings in a temp home, stores, services, the app."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.factories import REPO

from service.app import create_app
from service.bootstrap import ensure_admin_key, ensure_default_pool
from service.services import Services, build_services
from service.settings import Settings
from service.store.base import Store

# The suite sets what it needs itself: whatever PUSHPOOL_* the user's shell exports (a
# home, a database, a key) must not leak into it (cleared before any test module loads).
for _name in [n for n in os.environ if n.startswith("PUSHPOOL_")]:
    del os.environ[_name]


@pytest.fixture(scope="session", autouse=True)
def _no_flow_process_outlives_the_suite() -> Iterator[None]:
    """Kill the process-pool children still running when the session ends (a test's run
    left sleeping), so none outlives the suite or warns as it is collected."""
    yield
    import signal

    from provisioners import process

    with process._children_lock:
        left = list(process._children.values())
        process._children.clear()
    for proc in left:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is its own
            proc.wait(timeout=10)


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


@contextmanager
def _serialised_moto() -> Iterator[None]:
    """moto's in-process DynamoDB is not thread-safe (``TransactWriteItems`` deep-copies and
    restores whole tables), unlike the real service, which serialises writes per item.
    Handle one request at a time; the store's own races between requests stay real."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__
    lock = threading.RLock()

    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    BotocoreStubber.__call__ = locked  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = original  # type: ignore[method-assign]


@contextmanager
def dynamo_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated DynamoStore on moto's in-process DynamoDB, with dummy credentials."""
    import boto3
    from moto import mock_aws

    from service.store.dynamo import DynamoStore

    with mock_aws(), _serialised_moto():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        store = DynamoStore("pushpool-test", client=client)
        store.migrate()
        yield store


def _sqlite_store(tmp_path: Path) -> Store:
    from service.store.sql import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    store.migrate()
    return store


@contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    yield _sqlite_store(tmp_path)


def postgres_url() -> str:
    """A fresh, empty database on the session's PostgreSQL server (started on first use;
    the test skips, saying why, where no server can be started)."""
    from support.postgres import PostgresUnavailable, shared_server

    try:
        return shared_server().new_database()
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL: {exc}")


@contextmanager
def postgres_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SqlStore on its own database of the session's PostgreSQL server."""
    from service.store.sql import SqlStore

    store = SqlStore(postgres_url())
    store.migrate()
    yield store


def pytest_sessionfinish(session: pytest.Session) -> None:
    from support.postgres import stop_shared_server

    stop_shared_server()


#: Store backends the conformance suite runs against; a new backend adds one entry.
#: Each factory is a context manager: it yields a migrated store and cleans up after.
STORE_FACTORIES: dict[str, Callable[[Path], AbstractContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "dynamodb": dynamo_store,
    "postgres": postgres_store,
}


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with STORE_FACTORIES[request.param](tmp_path) as s:
        yield s
        s.close()


@pytest.fixture
def services(settings: Settings, clock: FakeClock, tmp_path: Path) -> Iterator[Services]:
    svc = build_services(settings, _sqlite_store(tmp_path), clock)
    ensure_default_pool(svc, [REPO, tmp_path])  # this checkout and the test's own files
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
