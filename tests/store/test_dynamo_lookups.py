"""DynamoDB: runs are found by name, id prefix and start without reading other runs, and
counted without being returned; a version-1 table is upgraded to that (measured on moto)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import dynamo_store
from store.test_conformance import T0, deployment, issue, pool, run

from service.models import Deployment
from service.run_queries import resolve_run
from service.store.base import RunFilter
from service.store.dynamo import SCHEMA_VERSION, DynamoStore
from service.vocabulary import StateType

RUNS = 30


class Reads:
    """DynamoDB calls, and the items each read (``ScannedCount``) and returned."""

    def __init__(self, store: DynamoStore) -> None:
        self.calls: Counter[str] = Counter()
        self.scanned = self.returned = 0
        events = store.client.meta.events
        events.register("before-call.dynamodb.*", self._call)
        events.register("after-call.dynamodb.Query", self._query)

    def _call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def _query(self, parsed: dict[str, Any], **_: Any) -> None:
        self.scanned += int(parsed.get("ScannedCount", 0))
        self.returned += len(parsed.get("Items", []))

    def reset(self) -> tuple[Counter[str], int, int]:
        out = (self.calls, self.scanned, self.returned)
        self.calls, self.scanned, self.returned = Counter(), 0, 0
        return out


@pytest.fixture
def ddb(tmp_path: Path) -> Iterator[DynamoStore]:
    with dynamo_store(tmp_path) as store:
        assert isinstance(store, DynamoStore)
        yield store


@pytest.fixture
def dep(ddb: DynamoStore) -> Deployment:
    ddb.create_pool(pool())
    return ddb.upsert_deployment(deployment(), [])[0]


def _fill(ddb: DynamoStore, dep: Deployment) -> list[str]:
    ids = [ddb.create_run(run(dep))[0].id for _ in range(RUNS)]
    ddb.claim_due_runs(T0, 10, issue)  # 10 of them begin
    return ids


def test_name_and_prefix_lookups_read_only_the_runs_they_name(
    ddb: DynamoStore, dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = _fill(ddb, dep)
    target = ddb.get_run(ids[17])
    reads = Reads(ddb)
    assert resolve_run(ddb, target.name).id == target.id
    by_name = reads.reset()
    assert resolve_run(ddb, target.id[:8]).id == target.id
    by_prefix = reads.reset()
    for what, (calls, scanned, _) in (("name", by_name), ("prefix", by_prefix)):
        assert calls["Scan"] == 0, calls
        assert scanned <= 3, (what, scanned)  # the lookup items, not the RUNS partition
        assert sum(calls.values()) <= 6, (what, calls)
    with capsys.disabled():
        print(f"\n{RUNS} runs: `runs inspect NAME` {dict(by_name[0])}, items read {by_name[1]}")
        print(f"  `runs inspect PREFIX` {dict(by_prefix[0])}, items read {by_prefix[1]}")


def test_counts_return_no_items(
    ddb: DynamoStore, dep: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(ddb, dep)
    reads = Reads(ddb)
    recent = RunFilter(by_began=True, states=[s for s in StateType if s != StateType.SCHEDULED])
    assert ddb.count_runs(recent) == 10
    assert ddb.count_runs(RunFilter(states=[StateType.SCHEDULED])) == RUNS - 10
    assert ddb.count_runs(RunFilter(), at_most=15) == 15
    calls, _, returned = reads.reset()
    assert returned == 0 and calls["Scan"] == 0
    assert calls["Query"] <= 3, calls
    page = ddb.list_runs(recent, 20)
    list_calls, list_scanned, _ = reads.reset()
    assert len(page.items) == 10 and list_scanned == 10  # the by_began index holds only those
    with capsys.disabled():
        print(f"  3 counts: {dict(calls)}, items returned {returned}")
        print(f"  recent runs page: {dict(list_calls)}, items read {list_scanned}")


def _downgrade_to_v1(ddb: DynamoStore) -> None:
    """The table as version 1 left it: no by_began index, no began_at, no lookup items."""
    ddb.client.update_table(
        TableName=ddb.table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_began"}}]
    )
    scan = ddb.client.scan(TableName=ddb.table)["Items"]
    for raw in scan:
        key = {"pk": raw["pk"], "sk": raw["sk"]}
        if raw["pk"]["S"].startswith(("RUNNAME#", "RUNID#")):
            ddb.client.delete_item(TableName=ddb.table, Key=key)
        elif raw["sk"]["S"] == "RUN":
            ddb.client.update_item(
                TableName=ddb.table, Key=key, UpdateExpression="REMOVE began_at, gsi4pk, gsi4sk"
            )
    ddb.set_meta("schema.version", "1")


def test_a_version_1_table_is_upgraded_with_every_run_findable(
    ddb: DynamoStore, dep: Deployment
) -> None:
    ids = _fill(ddb, dep)
    target = ddb.get_run(ids[3])
    _downgrade_to_v1(ddb)
    assert ddb.list_runs(RunFilter(name=target.name), 5).items == []  # not findable yet
    ddb.migrate()
    assert ddb.schema_version() == str(SCHEMA_VERSION)
    indexes = ddb.client.describe_table(TableName=ddb.table)["Table"]["GlobalSecondaryIndexes"]
    assert "by_began" in {i["IndexName"] for i in indexes}
    assert resolve_run(ddb, target.name).id == target.id
    assert resolve_run(ddb, target.id[:6]).id == target.id
    assert ddb.count_runs(RunFilter(by_began=True)) == 10
    ddb.migrate()  # again: nothing to do
    assert ddb.count_runs(RunFilter(by_began=True)) == 10
