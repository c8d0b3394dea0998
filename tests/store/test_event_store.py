"""Store conformance for events: append, list (filters, newest first, paging), expire.

Runs on every backend of ``STORE_FACTORIES`` (sqlite, postgres, dynamodb on moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import AlreadyExists, InvalidInput, WebhookNotFound
from service.event_records import Event, EventFilter, Resource, Webhook, new_event
from service.store.base import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ev(
    name: str,
    at: datetime,
    resource: str = "pushpool.flow-run.r1",
    event_id: str | None = None,
    **labels: str,
) -> Event:
    return new_event(
        name,
        Resource(id=resource, labels=labels),
        occurred=at,
        related=[Resource(id="pushpool.work-pool.p", labels={"name": "p"})],
        payload={"n": 1, "nested": {"a": [1, 2]}},
        event_id=event_id,
    )


def names(store: Store, flt: EventFilter, limit: int = 100) -> list[str]:
    return [e.name for e in store.list_events(flt, limit).items]


def test_events_are_listed_newest_first_with_everything_kept(store: Store) -> None:
    first = ev("a.one", T0)
    second = ev("a.two", T0 + timedelta(minutes=5))
    store.append_events([first, second])
    page = store.list_events(EventFilter(), 10)
    assert page.items == [second, first]
    assert page.next_cursor is None


def test_paging_visits_every_event_once_across_hours_and_equal_times(store: Store) -> None:
    times = [T0 + timedelta(minutes=37 * i) for i in range(12)]  # spans several hours
    events = [ev(f"e.{i}", at) for i, at in enumerate(times)]
    events += [ev("e.tie", times[3], event_id=f"tie-{i}") for i in range(3)]
    store.append_events(events)
    seen: list[Event] = []
    cursor = None
    while True:
        page = store.list_events(EventFilter(), 4, cursor)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = sorted(events, key=lambda e: (e.occurred, e.id), reverse=True)
    assert seen == expected


def test_appending_the_same_event_twice_stores_it_once(store: Store) -> None:
    one = ev("dup", T0, event_id="same-id")
    store.append_events([one])
    store.append_events([one])
    assert store.list_events(EventFilter(), 10).items == [one]


def test_name_patterns_match_with_wildcards(store: Store) -> None:
    store.append_events(
        [
            ev("pushpool.flow-run.Completed", T0),
            ev("pushpool.flow-run.Failed", T0 + timedelta(seconds=1)),
            ev("pushpool.deployment.created", T0 + timedelta(seconds=2)),
            ev("pushpool_flow-run_x", T0 + timedelta(seconds=3)),  # "_" is literal
        ]
    )
    assert names(store, EventFilter(names=["pushpool.flow-run.*"])) == [
        "pushpool.flow-run.Failed",
        "pushpool.flow-run.Completed",
    ]
    assert names(store, EventFilter(names=["*.Completed", "pushpool.deployment.*"])) == [
        "pushpool.deployment.created",
        "pushpool.flow-run.Completed",
    ]
    assert names(store, EventFilter(names=["pushpool.flow-run.Failed"])) == [
        "pushpool.flow-run.Failed"
    ]
    assert names(store, EventFilter(names=["*"])) == names(store, EventFilter())
    assert names(store, EventFilter(names=["pushpool.flow%"])) == []


def test_resource_and_label_filters(store: Store) -> None:
    store.append_events(
        [
            ev("x", T0, "pushpool.flow-run.r1", deployment="etl", state="Completed"),
            ev("y", T0 + timedelta(seconds=1), "pushpool.flow-run.r2", deployment="etl"),
            ev("z", T0 + timedelta(seconds=2), "pushpool.deployment.d1", deployment="etl"),
            ev("w", T0 + timedelta(seconds=3), "pushpool.flow-run.r1", deployment="other"),
        ]
    )
    assert names(store, EventFilter(resource="pushpool.flow-run.r1")) == ["w", "x"]
    assert names(store, EventFilter(resource="pushpool.flow-run.*")) == ["w", "y", "x"]
    assert names(store, EventFilter(labels={"deployment": "etl"})) == ["z", "y", "x"]
    both = EventFilter(resource="pushpool.flow-run.r1", labels={"deployment": "etl"})
    assert names(store, both) == ["x"]
    two_labels = EventFilter(labels={"deployment": "etl", "state": "Completed"})
    assert names(store, two_labels) == ["x"]
    assert names(store, EventFilter(labels={"missing": "etl"})) == []


def test_time_range_is_since_inclusive_until_exclusive(store: Store) -> None:
    store.append_events([ev(f"t{h}", T0 + timedelta(hours=h)) for h in range(6)])
    window = EventFilter(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=4))
    assert names(store, window) == ["t3", "t2", "t1"]
    resource_window = EventFilter(
        resource="pushpool.flow-run.r1", since=T0 + timedelta(hours=4), until=None
    )
    assert names(store, resource_window) == ["t5", "t4"]
    page = store.list_events(window, 2)
    assert [e.name for e in page.items] == ["t3", "t2"]
    assert page.next_cursor is not None
    rest = store.list_events(window, 2, page.next_cursor)
    assert [e.name for e in rest.items] == ["t1"] and rest.next_cursor is None


def test_expired_events_are_not_listed(store: Store) -> None:
    store.event_retention = timedelta(hours=1)
    store.append_events([ev("old", T0), ev("new", T0 + timedelta(hours=2))])
    store.expire_events(T0 + timedelta(hours=1, seconds=30))
    assert names(store, EventFilter()) == ["new"]
    assert names(store, EventFilter(resource="pushpool.flow-run.r1")) == ["new"]
    store.expire_events(T0)  # the expiry mark never moves back
    assert names(store, EventFilter()) == ["new"]


def test_events_kept_for_good_without_retention(store: Store) -> None:
    store.event_retention = None
    store.append_events([ev("kept", T0)])
    store.expire_events(T0 + timedelta(days=10_000))
    assert names(store, EventFilter()) == ["kept"]


def test_a_foreign_cursor_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_events(EventFilter(), 10, "not-a-cursor")


def hook(name: str = "gh", slug: str = "slug-1", secret: str | None = "s3cret-value") -> Webhook:
    signature = "github" if secret else "none"
    return Webhook(
        name=name,
        slug=slug,
        template='{"name": "x"}',
        signature=signature,
        secret=secret,
        created_at=T0,
    )


def test_webhooks_are_found_by_slug_with_their_secret(store: Store) -> None:
    store.create_webhook(hook())
    store.create_webhook(hook("another", "slug-2", None))
    found = store.get_webhook("slug-1")
    assert found == hook() and found.secret == "s3cret-value"
    assert [h.name for h in store.list_webhooks()] == ["another", "gh"]
    with pytest.raises(AlreadyExists):
        store.create_webhook(hook(slug="slug-3"))  # the name is taken
    with pytest.raises(WebhookNotFound):
        store.get_webhook("slug-3")  # and nothing of it was stored
    store.delete_webhook("gh")
    with pytest.raises(WebhookNotFound):
        store.get_webhook("slug-1")
    with pytest.raises(WebhookNotFound):
        store.delete_webhook("gh")
    assert [h.name for h in store.list_webhooks()] == ["another"]
