"""The SQL schema is Alembic's: the head equals ``tables.py``, and a database built by
0.1.0 (``create_all`` of the released tables, no ``alembic_version``) is recognised as
the baseline, upgraded, and keeps every row usable. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import postgres_url
from sqlalchemy import create_engine, func, insert, inspect, select
from support import tables_0_1_0 as released
from typer.testing import CliRunner

from service.cli.main import app
from service.errors import LastAdminKey, SchemaError
from service.models import InfraRef, LogLine, Role, StateRecord
from service.store import migrations, tables
from service.store.base import RunFilter
from service.store.sql import SqlStore
from service.vocabulary import StateType

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TABLES = [
    "meta",
    "api_keys",
    "work_pools",
    "deployments",
    "schedules",
    "flow_runs",
    "state_history",
    "teardowns",
    "logs",
]


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


URLS: dict[str, Callable[[Path], str]] = {
    "sqlite": _sqlite_url,
    "postgres": lambda _: postgres_url(),
}


@pytest.fixture(params=sorted(URLS))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return URLS[request.param](tmp_path)


def _differences(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, tables.metadata))
    finally:
        engine.dispose()


def test_migration_head_equals_tables_py(url: str) -> None:
    """Fails when ``tables.py`` changed without a migration script (or the other way)."""
    store = SqlStore(url)
    store.migrate()
    store.close()
    assert _differences(url) == []


def test_an_empty_database_is_refused_until_upgraded(url: str) -> None:
    store = SqlStore(url)
    assert store.schema_version() is None
    with pytest.raises(SchemaError, match="pushpool db upgrade"):
        store.check_schema()
    store.migrate()
    store.migrate()  # idempotent
    assert store.schema_version() == store.schema_head() == migrations.head()
    store.check_schema()
    store.close()


def test_replicas_starting_together_migrate_once(url: str) -> None:
    stores = [SqlStore(url) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def start(store: SqlStore) -> None:
        barrier.wait()
        try:
            store.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert all(s.schema_version() == migrations.head() for s in stores)
    for s in stores:
        s.close()


# -- a database as 0.1.0 left it ----------------------------------------------------------
def _run_row(run_id: str, state: StateType, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": run_id,
        "deployment_id": "dep-1",
        "flow_name": "flow",
        "deployment_name": "d",
        "work_pool": "local",
        "state_type": state.value,
        "state_name": state.value.capitalize(),
        "state_message": None,
        "state_timestamp": T0,
        "parameters": {"x": 1},
        "job_variables": {},
        "idempotency_key": None,
        "schedule_id": None,
        "auto_scheduled": False,
        "expected_start": T0,
        "run_count": 0 if state == StateType.SCHEDULED else 1,
        "infra": None,
        "result": None,
        "error": None,
        "tags": ["t"],
        "token_hash": None,
        "created_at": T0,
        "updated_at": T0,
    }
    return row | kw


def _fill_like_0_1_0(url: str) -> dict[str, int]:
    """``create_all`` of the released tables, rows of every kind; the row counts."""
    engine = create_engine(url)
    released.metadata.create_all(engine)
    # The documents exactly as 0.1.0 wrote them (``model_dump(mode="json")`` then).
    schedule_doc = {"kind": "cron", "cron": "0 * * * *", "timezone": "UTC", "active": True}
    deployment_doc = {
        "id": "dep-1",
        "name": "d",
        "flow_name": "flow",
        "entrypoint": "f.py:flow",
        "work_pool": "local",
        "source": {"type": "image"},
        "parameters": {"x": 1},
        "parameter_schema": None,
        "job_variables": {},
        "schedules": [schedule_doc],
        "catchup": "latest",
        "paused": False,
        "concurrency_limit": 2,
        "retries": 0,
        "retry_delay_seconds": 0,
        "tags": [],
        "created_at": "2026-06-01T12:00:00Z",
        "updated_at": "2026-06-01T12:00:00Z",
    }
    infra = {"type": "process", "id": "r-running-1", "data": {"pid": 1}}
    with engine.begin() as c:
        c.execute(
            insert(released.meta),
            [
                {"key": "bootstrap.admin_key", "value": "created"},
                {"key": "scheduler.orphan_sweep", "value": T0.isoformat()},
            ],
        )
        c.execute(
            insert(released.api_keys),
            [
                {
                    "id": "k1",
                    "name": "admin",
                    "key_hash": "a" * 64,
                    "created_at": T0,
                    "revoked_at": None,
                },
                {
                    "id": "k2",
                    "name": "old",
                    "key_hash": "b" * 64,
                    "created_at": T0,
                    "revoked_at": T0 + timedelta(hours=1),
                },
            ],
        )
        for name, limit, config in (("local", None, {"working_dir": "/tmp/x"}), ("capped", 3, {})):
            c.execute(
                insert(released.work_pools).values(
                    name=name,
                    type="process",
                    config=config,
                    concurrency_limit=limit,
                    paused=False,
                    created_at=T0,
                    updated_at=T0,
                )
            )
        c.execute(
            insert(released.deployments).values(
                id="dep-1",
                flow_name="flow",
                name="d",
                work_pool="local",
                concurrency_limit=2,
                paused=False,
                doc=deployment_doc,
                created_at=T0,
                updated_at=T0,
            )
        )
        c.execute(
            insert(released.schedules).values(
                id="dep-1:cron",
                deployment_id="dep-1",
                doc=schedule_doc,
                active=True,
                next_fire_at=T0 + timedelta(hours=1),
            )
        )
        runs = [_run_row(f"r-{s.value.lower()}-1", s) for s in StateType]
        runs[2]["infra"] = infra  # the RUNNING one
        runs.append(
            _run_row("r-keyed", StateType.SCHEDULED, idempotency_key="k", auto_scheduled=True)
        )
        c.execute(insert(released.flow_runs), runs)
        c.execute(
            insert(released.state_history),
            [
                {"run_id": r["id"], "type": r["state_type"], "name": "x", "timestamp": T0}
                for r in runs
            ],
        )
        c.execute(
            insert(released.teardowns).values(
                run_id="r-crashed-1", work_pool="local", infra=infra, created_at=T0
            )
        )
        c.execute(
            insert(released.logs),
            [
                {
                    "run_id": "r-completed-1",
                    "timestamp": T0,
                    "level": "INFO",
                    "message": f"line {i}",
                    "stream": "stdout",
                }
                for i in range(3)
            ],
        )
    with engine.connect() as c:
        counts = {
            name: c.execute(
                select(func.count()).select_from(released.metadata.tables[name])
            ).scalar_one()
            for name in TABLES
        }
    engine.dispose()
    return counts


def test_a_0_1_0_database_is_stamped_upgraded_and_every_row_kept(url: str) -> None:
    counts = _fill_like_0_1_0(url)
    store = SqlStore(url)
    assert store.schema_version() == migrations.BASELINE  # recognised, though unstamped
    store.migrate()
    assert store.schema_version() == migrations.head()
    assert "alembic_version" in inspect(store.engine).get_table_names()
    with store.engine.connect() as c:
        after = {
            name: c.execute(
                select(func.count()).select_from(tables.metadata.tables[name])
            ).scalar_one()
            for name in TABLES
        }
    assert after == counts  # not recreated: every row is still there
    _every_row_reads_back(store)
    _every_row_is_usable(store)
    store.close()


def _every_row_reads_back(store: SqlStore) -> None:
    assert store.get_meta("bootstrap.admin_key") == "created"
    assert store.find_api_key("a" * 64) is not None and store.find_api_key("b" * 64) is None
    assert [k.id for k in store.list_api_keys()] == ["k1", "k2"]
    assert [(p.name, p.concurrency_limit) for p in store.list_pools()] == [
        ("capped", 3),
        ("local", None),
    ]
    deployment = store.get_deployment("dep-1")
    assert deployment.concurrency_limit == 2 and deployment.parameters == {"x": 1}
    (schedule,) = store.get_schedules("dep-1")
    assert schedule.next_fire_at == T0 + timedelta(hours=1)
    for state in StateType:
        run = store.get_run(f"r-{state.value.lower()}-1")
        assert run.state.type == state and run.parameters == {"x": 1} and run.tags == ["t"]
        assert [h.type for h in store.state_history(run.id)] == [state]
    assert store.get_run("r-running-1").infra == InfraRef(
        type="process", id="r-running-1", data={"pid": 1}
    )
    (teardown,) = store.pending_teardowns(10)
    assert teardown.run_id == "r-crashed-1"
    assert [x.message for x in store.read_logs("r-completed-1")] == ["line 0", "line 1", "line 2"]
    assert len(store.list_runs(RunFilter(deployment_id="dep-1"), 100).items) == 9


def _every_row_is_usable(store: SqlStore) -> None:
    claimed = store.claim_due_runs(T0, 10, lambda run_id: "h" * 64)
    # The deployment's limit (2) counts the PENDING, RUNNING and CANCELLING runs already.
    assert claimed == []
    store.transition(
        "r-running-1",
        StateType.RUNNING,
        StateRecord(type=StateType.COMPLETED, name="Completed", timestamp=T0),
    )
    store.transition(
        "r-cancelling-1",
        StateType.CANCELLING,
        StateRecord(type=StateType.CANCELLED, name="Cancelled", timestamp=T0),
    )
    ids = {r.id for r in store.claim_due_runs(T0, 10, lambda run_id: "h" * 64)}
    assert ids == {"r-scheduled-1"}  # the limit again: PENDING + 1
    again, created = store.create_run(store.get_run("r-keyed").model_copy(update={"id": "r-other"}))
    assert not created and again.id == "r-keyed"  # the old unique index still holds
    store.append_logs("r-completed-1", [LogLine(run_id="r-completed-1", timestamp=T0, message="4")])
    assert [x.id for x in store.read_logs("r-completed-1")] == [1, 2, 3, 4]
    store.finish_teardown(1)
    old_key = store.find_api_key("a" * 64)
    assert old_key is not None and (old_key.role, old_key.pools) == (Role.ADMIN, None)
    with pytest.raises(LastAdminKey):  # a key from before roles is an admin key
        store.revoke_api_key("k1", T0)
    store.create_api_key(old_key.model_copy(update={"id": "k-new", "key_hash": "9" * 64}))
    store.revoke_api_key("k1", T0)
    assert store.find_api_key("a" * 64) is None
    store.update_pool("capped", {"concurrency_limit": 4}, T0)
    store.delete_deployment("dep-1")
    store.delete_pool("capped")


# -- the CLI ---------------------------------------------------------------------------------
def test_db_commands_and_server_start_without_migrations(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill_like_0_1_0(url)
    monkeypatch.setenv("PUSHPOOL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PUSHPOOL_DATABASE_URL", url)
    cli = CliRunner()
    empty = SqlStore(URLS["sqlite"](tmp_path / "other"))  # a database with no schema at all
    monkeypatch.setenv("PUSHPOOL_DATABASE_URL", empty.url)
    result = cli.invoke(app, ["server", "start", "--no-migrate"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    head = migrations.head()
    assert len(lines) == 1 and f"needs {head}" in lines[0] and "pushpool db upgrade" in lines[0]
    empty.close()
    monkeypatch.setenv("PUSHPOOL_DATABASE_URL", url)
    result = cli.invoke(app, ["db", "current"])
    assert result.exit_code == 0 and result.output.startswith(f"0001 (behind: head is {head}"), (
        result.output
    )
    result = cli.invoke(app, ["db", "history"])
    assert result.exit_code == 0 and "0001  baseline" in result.output, result.output
    result = cli.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and f"{head} (head)" in result.output, result.output
    store = SqlStore(url)
    assert "alembic_version" in inspect(store.engine).get_table_names()
    assert store.get_run("r-running-1").state.type == StateType.RUNNING
    store.close()
