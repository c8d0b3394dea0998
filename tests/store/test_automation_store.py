"""Store conformance for automations: CRUD, firing once per key (also concurrently, and
through :func:`service.automations.evaluate`), and the action outbox's claims.

Runs on every backend of ``STORE_FACTORIES`` (sqlite, postgres, dynamodb on moto)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from service import automations, events
from service.automation_records import ActionJob, Automation
from service.errors import AlreadyExists, AutomationNotFound
from service.event_records import Resource, new_event
from service.store.base import Store

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EVENT = new_event("x.happened", Resource(id="r", labels={"k": "v"}), occurred=T0)


def automation(name: str = "a", **fields: object) -> Automation:
    return Automation.model_validate(
        {
            "id": f"id-{name}",
            "name": name,
            "trigger": {"event": "x.*"},
            "actions": [{"type": "pause-deployment", "deployment": "f/d"}],
            "created_at": T0,
            "updated_at": T0,
        }
        | fields
    )


def job(job_id: str, due: datetime) -> ActionJob:
    return ActionJob(
        id=job_id,
        automation_id="id-a",
        automation="a",
        firing="k",
        index=0,
        action={"type": "pause-deployment", "deployment": "f/d"},
        event=EVENT,
        due_at=due,
    )


def test_automations_are_created_listed_paused_and_deleted(store: Store) -> None:
    store.create_automation(automation("b"))
    store.create_automation(automation("a"))
    with pytest.raises(AlreadyExists):
        store.create_automation(automation("a"))
    assert [a.name for a in store.list_automations()] == ["a", "b"]
    paused = store.set_automation_paused("a", True, T0 + timedelta(hours=1))
    assert paused.paused and paused.updated_at == T0 + timedelta(hours=1)
    assert store.get_automation("a") == paused
    store.delete_automation("a")
    for call in (
        lambda: store.get_automation("a"),
        lambda: store.delete_automation("a"),
        lambda: store.set_automation_paused("a", False, T0),
    ):
        with pytest.raises(AutomationNotFound):
            call()
    assert [a.name for a in store.list_automations()] == ["b"]


def test_a_key_fires_once_and_its_jobs_are_queued_with_it(store: Store) -> None:
    assert store.fire_automation("k1", [job("j1", T0)], T0)
    assert not store.fire_automation("k1", [job("j2", T0)], T0)
    assert [j.id for j in store.due_action_jobs(T0, 10)] == ["j1"]


def test_concurrent_firings_of_one_key_fire_once(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda i: store.fire_automation("k", [job(f"j{i}", T0)], T0), range(8))
        )
    assert results.count(True) == 1
    assert len(store.due_action_jobs(T0, 100)) == 1


def test_two_concurrent_evaluations_of_one_event_fire_once(store: Store) -> None:
    auto = automation()
    with ThreadPoolExecutor(2) as pool:
        fired = list(pool.map(lambda _: automations.evaluate(store, auto, EVENT), range(2)))
    assert sorted(fired) == [False, True]
    assert len(store.due_action_jobs(T0, 100)) == 1


def test_due_jobs_come_earliest_first_and_a_claim_is_taken_once(store: Store) -> None:
    store.fire_automation("k", [job("late", T0 + timedelta(minutes=5)), job("now", T0)], T0)
    assert [j.id for j in store.due_action_jobs(T0, 10)] == ["now"]
    due = store.due_action_jobs(T0 + timedelta(minutes=5), 10)
    assert [j.id for j in due] == ["now", "late"]
    first = due[0]
    assert store.claim_action_job(first, T0 + timedelta(minutes=30))
    assert not store.claim_action_job(first, T0 + timedelta(minutes=30))  # attempts moved
    again = store.due_action_jobs(T0 + timedelta(minutes=30), 10)
    assert [(j.id, j.attempts) for j in again] == [("late", 0), ("now", 1)]
    assert again[1].due_at == T0 + timedelta(minutes=30)
    store.delete_action_job("now")
    store.delete_action_job("now")  # absent: nothing happens
    assert [j.id for j in store.due_action_jobs(T0 + timedelta(days=1), 10)] == ["late"]


def test_a_threshold_per_label_fires_once_per_window_and_value(store: Store) -> None:
    auto = automation(trigger={"event": "x.*", "threshold": 2, "within": 3600, "for_each": "k"})
    store.create_automation(auto)
    automations.invalidate(store)

    def happen(minute: int, value: str) -> None:
        at = T0 + timedelta(minutes=minute)
        events.record(store, "x.happened", Resource(id="r", labels={"k": value}), now=at)

    happen(1, "a")
    happen(2, "b")
    assert store.due_action_jobs(T0 + timedelta(days=1), 10) == []
    happen(3, "a")  # a's second in this hour: fires
    happen(4, "a")  # a's third: the same instance
    happen(61, "a")  # the next hour: 1 of 2
    happen(62, "b")  # the next hour for b: 1 of 2
    happen(63, "a")  # fires for the next hour
    fired = store.due_action_jobs(T0 + timedelta(days=1), 10)
    assert sorted(j.event.occurred.minute for j in fired) == [3, 3]
    assert sorted(j.firing.split(":")[1] for j in fired) == [
        str(int(T0.timestamp())),
        str(int(T0.timestamp()) + 3600),
    ]


# -- proactive triggers' due index and firing-key housekeeping ----------------------------
def test_an_instance_is_armed_once_and_listed_when_due_earliest_first(store: Store) -> None:
    assert store.automation_due("p", "") is None
    assert store.arm_automation("p", "", T0 + timedelta(hours=2))
    assert not store.arm_automation("p", "", T0 + timedelta(hours=9))  # armed already
    assert store.arm_automation("p", "etl", T0 + timedelta(hours=1))
    assert store.arm_automation("q", "", T0 + timedelta(hours=3))
    assert store.automation_due("p", "") == T0 + timedelta(hours=2)
    assert store.due_automations(T0, 10) == []
    due = store.due_automations(T0 + timedelta(hours=2), 10)
    assert [(d.automation_id, d.instance, d.due_at) for d in due] == [
        ("p", "etl", T0 + timedelta(hours=1)),
        ("p", "", T0 + timedelta(hours=2)),
    ]
    assert len(store.due_automations(T0 + timedelta(days=1), 2)) == 2  # limit


def test_a_deadline_moves_only_from_the_value_read(store: Store) -> None:
    due = T0 + timedelta(hours=1)
    assert store.move_automation_due("p", "", None, due)  # not armed: arms
    assert not store.move_automation_due("p", "", None, due)  # armed now
    assert not store.move_automation_due("p", "", T0, due + timedelta(hours=1))  # stale
    assert store.move_automation_due("p", "", due, due + timedelta(hours=1))
    assert store.automation_due("p", "") == due + timedelta(hours=1)
    assert store.due_automations(due, 10) == []  # the index follows the move
    assert [d.due_at for d in store.due_automations(due + timedelta(hours=1), 10)] == [
        due + timedelta(hours=1)
    ]
    assert not store.move_automation_due("p", "", due, None)  # stale: kept
    assert store.move_automation_due("p", "", due + timedelta(hours=1), None)
    assert store.automation_due("p", "") is None
    assert store.due_automations(T0 + timedelta(days=1), 10) == []


def test_concurrent_moves_from_one_deadline_succeed_once(store: Store) -> None:
    store.arm_automation("p", "", T0)
    with ThreadPoolExecutor(6) as pool:
        moved = list(
            pool.map(
                lambda i: store.move_automation_due("p", "", T0, T0 + timedelta(minutes=i + 1)),
                range(6),
            )
        )
    assert moved.count(True) == 1


def test_expired_firing_keys_are_purged_oldest_first_a_batch_at_a_time(store: Store) -> None:
    for i in range(5):
        store.fire_automation(f"k{i}", [], T0 + timedelta(minutes=i))
    deleted = store.purge_automation_firings(T0 + timedelta(minutes=3), 2)
    if store.expires_logs:  # a TTL deletes them (DynamoDB): each firing carries expires_at
        assert deleted == 0
        return
    assert deleted == 2
    assert store.purge_automation_firings(T0 + timedelta(minutes=3), 2) == 1
    assert store.purge_automation_firings(T0 + timedelta(minutes=3), 2) == 0
    assert store.fire_automation("k0", [], T0)  # forgotten: the key may fire again
    assert not store.fire_automation("k3", [], T0)  # kept
