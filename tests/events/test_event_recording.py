"""``service.events.record``: validation, storage failures, the service's own resources;
the wildcard matching every filter shares; retention from settings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service import events
from service.event_records import Event, EventFilter, Resource, matches, new_event, wildcard_match
from service.settings import Settings
from service.store import open_store
from service.store.base import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_record_stores_the_event_and_returns_it(store: Store) -> None:
    resource = Resource(id="pushpool.block.b1", labels={"name": "creds"})
    event = events.record(store, "pushpool.block.read", resource, now=T0, payload={"k": 1})
    assert store.list_events(EventFilter(), 10).items == [event]
    assert (event.name, event.occurred, event.payload) == ("pushpool.block.read", T0, {"k": 1})


@pytest.mark.parametrize("name", ["", "has space", ".leading-dot", "x" * 201])
def test_record_refuses_a_malformed_name(store: Store, name: str) -> None:
    with pytest.raises(ValidationError):
        events.record(store, name, Resource(id="r"), now=T0)
    assert store.list_events(EventFilter(), 10).items == []


class _Broken(Store):
    """A store whose event writes fail (only ``append_events`` is ever called)."""

    def append_events(self, events: Sequence[Event]) -> None:
        raise RuntimeError("database is down")


def test_a_store_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    _Broken.__abstractmethods__ = frozenset()  # type: ignore[misc]
    broken = _Broken()  # type: ignore[abstract]
    with caplog.at_level(logging.ERROR, logger="pushpool.events"):
        event = events.record(broken, "pushpool.test", Resource(id="r"), now=T0)
    assert event.name == "pushpool.test"
    assert "could not record 1 event(s)" in caplog.text


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("pushpool.flow-run.*", "pushpool.flow-run.Failed", True),
        ("pushpool.flow-run.*", "pushpool.deployment.created", False),
        ("*.Failed", "pushpool.flow-run.Failed", True),
        ("*", "anything.at.all", True),
        ("a.*.c", "a.b.b.c", True),
        ("a.b", "a.b.c", False),
        ("a.b", "aXb", False),  # "." is literal
        ("a+b", "a+b", True),  # so are regex characters
        ("a[b]*", "a[b]xyz", True),
    ],
)
def test_wildcards(pattern: str, value: str, expected: bool) -> None:
    assert wildcard_match(pattern, value) is expected


def test_matches_needs_every_criterion() -> None:
    ev = new_event(
        "pushpool.flow-run.Failed",
        Resource(id="pushpool.flow-run.1", labels={"deployment": "etl"}),
        occurred=T0,
    )
    assert matches(EventFilter(names=["*.Failed"], labels={"deployment": "etl"}), ev)
    assert not matches(EventFilter(names=["*.Failed"], labels={"deployment": "x"}), ev)
    assert not matches(EventFilter(resource="pushpool.deployment.*"), ev)
    assert not matches(EventFilter(since=T0 + timedelta(seconds=1)), ev)
    assert not matches(EventFilter(until=T0), ev)
    assert matches(EventFilter(since=T0, until=T0 + timedelta(seconds=1)), ev)


@pytest.mark.parametrize(("days", "expected"), [(7.0, timedelta(days=7)), (0.0, None)])
def test_open_store_takes_the_retention_from_settings(
    tmp_path: Path, days: float, expected: timedelta | None
) -> None:
    store = open_store(Settings(home=tmp_path, event_retention_days=days))
    try:
        assert store.event_retention == expected
    finally:
        store.close()


def test_user_text_in_labels_never_fails_the_change_it_records(api: TestClient) -> None:
    """Tags with a NUL or longer than a label holds (found by schemathesis: a 500)."""
    from support.factories import deployment_body

    dep = api.post("/api/deployments", json=deployment_body()).json()
    tags = ["a\x00b", *("t" * 90 + str(i) for i in range(20))]
    r = api.patch(f"/api/deployments/{dep['id']}", json={"tags": tags})
    assert r.status_code == 200, r.text
    assert api.delete(f"/api/deployments/{dep['id']}").status_code == 204
    found = api.get("/api/events", params={"resource": f"pushpool.deployment.{dep['id']}"})
    labels = found.json()["items"][0]["resource"]["labels"]
    assert labels["tags"].startswith("ab,") and len(labels["tags"]) == 1000


def test_a_run_with_odd_tags_still_makes_a_valid_event(api: object) -> None:
    """Found by schemathesis: a NUL (or 50 long tags) in a run's tags made its state
    event invalid and the run's creation a 500."""
    from fastapi.testclient import TestClient
    from support.factories import deployment_body

    assert isinstance(api, TestClient)
    dep = api.post("/api/deployments", json=deployment_body()).json()
    tags = ["a\x00b", *("t" * 100 for _ in range(40))]
    r = api.post(f"/api/deployments/{dep['id']}/runs", json={"tags": tags})
    assert r.status_code == 201, r.text
    flt = {"resource": f"pushpool.flow-run.{r.json()['id']}"}
    made = api.get("/api/events", params=flt).json()["items"]
    labels = [e["resource"]["labels"]["tags"] for e in made]
    assert labels and all(t.startswith("ab,") and len(t) == 1000 for t in labels)
