"""Proactive and compound triggers: validation, the due index kept by recorded events,
the tick firing a missed deadline once (fake clock) — also with two concurrent ticks —
on every store backend (sqlite, postgres, dynamodb on moto)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service import automations
from service.app import create_app
from service.automation_records import AutomationCreate
from service.automation_triggers import MISSED
from service.event_records import EventFilter, Resource
from service.events import FLOW_RUN, record
from service.services import Services, build_services
from service.settings import Settings
from service.store.base import Store
from tests.support.clock import FakeClock
from tests.support.readme import readme_automation

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
TRIGGERED = "pushpool.automation.triggered"

#: The README's "alert on absence" example (run here, so it stays true).
ABSENCE_YAML = readme_automation("nightly-etl-missing")


def done(store: Store, deployment: str, at: datetime, state: str = "Completed") -> None:
    labels = {"deployment": deployment, "flow": "etl"}
    record(
        store,
        f"{FLOW_RUN}.{state}",
        Resource(id=f"{FLOW_RUN}.r{at.timestamp():.0f}", labels=labels),
        now=at,
    )


def firings(store: Store) -> list[dict[str, Any]]:
    """The ``triggered`` events' payloads, oldest first."""
    page = store.list_events(EventFilter(names=(TRIGGERED,)), 100).items
    return [e.payload for e in reversed(page)]


def missed(store: Store) -> list[dict[str, str]]:
    """The ``missed`` events' resource labels, oldest first."""
    page = store.list_events(EventFilter(names=(MISSED,)), 100).items
    return [e.resource.labels for e in reversed(page)]


def create(svc: Services, trigger: dict[str, Any], name: str = "watch") -> None:
    body = {
        "name": name,
        "trigger": trigger,
        "actions": [{"type": "pause-deployment", "deployment": "etl/nightly-etl"}],
    }
    automations.create(svc, AutomationCreate.model_validate(body))


@pytest.fixture
def svc(store: Store, tmp_path: Path) -> Iterator[Services]:
    automations.invalidate(store)
    yield build_services(Settings(home=tmp_path / "home"), store, FakeClock(T0))
    automations.invalidate(store)


ABSENCE = {
    "posture": "proactive",
    "expect": "pushpool.flow-run.Completed",
    "labels": {"deployment": "nightly-etl"},
    "within": 25 * 3600,
}


# -- validation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"posture": "proactive", "within": 3600}, "expect"),
        ({"posture": "proactive", "expect": "x", "within": 5}, "within"),
        ({"posture": "proactive", "expect": "x", "within": 3600, "threshold": 2}, "threshold"),
        ({"posture": "sideways", "event": "x"}, "posture"),
        ({"type": "compound", "within": 60, "triggers": []}, "triggers"),
        ({"type": "compound", "within": 60, "require": 3, "triggers": [{"event": "x"}]}, "require"),
        (
            {"type": "compound", "within": 60, "triggers": [{"event": "x", "for_each": "k"}]},
            "triggers.0.for_each",
        ),
    ],
)
def test_a_malformed_trigger_is_refused_naming_the_field(
    trigger: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        AutomationCreate.model_validate(
            {"name": "a", "trigger": trigger, "actions": [{"type": "cancel-flow-run"}]}
        )
    assert field in str(info.value)


def test_the_api_answers_422_naming_the_field(services: Services, admin_key: str) -> None:
    with TestClient(
        create_app(services), headers={"Authorization": f"Bearer {admin_key}"}
    ) as client:
        bad = {
            "name": "a",
            "trigger": {"posture": "proactive", "expect": "x", "within": 0},
            "actions": [{"type": "cancel-flow-run"}],
        }
        resp = client.post("/api/automations", json=bad)
        assert resp.status_code == 422
        assert "within" in resp.text
        good = bad | {"trigger": ABSENCE}
        assert client.post("/api/automations", json=good).status_code == 201
    assert services.store.automation_due(services.store.list_automations()[0].id, "")


def test_the_readme_example_is_valid() -> None:
    body = AutomationCreate.model_validate(yaml.safe_load(ABSENCE_YAML))
    assert body.trigger.posture == "proactive"


# -- proactive, end to end through the tick --------------------------------------------
def test_a_missed_window_fires_once_and_a_run_in_time_does_not(svc: Services) -> None:
    store, tick = svc.store, svc.scheduler.tick
    create(svc, ABSENCE)  # armed: due 25 h after creation
    done(store, "other", T0 + HOUR)  # another deployment's run counts for nothing
    done(store, "nightly-etl", T0 + 24 * HOUR)  # in time: due moves to 49 h
    tick(T0 + 25 * HOUR + timedelta(minutes=1))
    assert firings(store) == []
    tick(T0 + 49 * HOUR + timedelta(minutes=1))  # missed
    tick(T0 + 49 * HOUR + timedelta(minutes=2))  # the same window: no second firing
    assert [f["firing"].split(":")[1:] for f in firings(store)] == [
        ["missed", "", str(int((T0 + 49 * HOUR).timestamp()))]
    ]
    assert len(missed(store)) == 1
    tick(T0 + 60 * HOUR)  # the next window (due 74 h) is not over
    assert len(firings(store)) == 1
    tick(T0 + 75 * HOUR)  # still nothing: one alert per silent window
    assert len(firings(store)) == 2


def test_after_arms_per_label_and_the_expected_event_clears(svc: Services) -> None:
    store, tick = svc.store, svc.scheduler.tick
    trigger = {
        "posture": "proactive",
        "after": "pushpool.flow-run.Running",
        "expect": "pushpool.flow-run.Completed",
        "within": 3600,
        "for_each": "deployment",
    }
    create(svc, trigger)
    tick(T0 + 10 * HOUR)  # nothing armed before an ``after`` event
    assert firings(store) == []
    at = T0 + 10 * HOUR
    done(store, "a", at, "Running")
    done(store, "b", at, "Running")
    done(store, "a", at + timedelta(minutes=30))  # a completes in time
    tick(at + timedelta(minutes=61))
    tick(at + timedelta(minutes=62))
    assert [m["deployment"] for m in missed(store)] == ["b"]
    assert len(firings(store)) == 1
    tick(at + 5 * HOUR)  # cleared after firing: waits for the next Running
    assert len(firings(store)) == 1


def test_a_paused_automation_moves_on_without_firing(svc: Services) -> None:
    create(svc, ABSENCE)
    automations.set_paused(svc, "watch", True)
    svc.scheduler.tick(T0 + 26 * HOUR)
    assert firings(svc.store) == []
    automation = svc.store.get_automation("watch")
    assert svc.store.automation_due(automation.id, "") == T0 + 50 * HOUR


def test_two_concurrent_ticks_fire_once(svc: Services, tmp_path: Path) -> None:
    create(svc, ABSENCE)
    other = build_services(svc.settings, svc.store, FakeClock(T0))  # a second replica
    when = T0 + 26 * HOUR
    barrier = threading.Barrier(2)

    def tick(s: Services) -> None:
        barrier.wait()
        s.scheduler.tick(when)

    threads = [threading.Thread(target=tick, args=(s,)) for s in (svc, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(firings(svc.store)) == 1
    assert len(missed(svc.store)) == 1
    automation = svc.store.get_automation("watch")
    assert svc.store.automation_due(automation.id, "") == T0 + 50 * HOUR


def test_a_deleted_automations_deadline_is_cleared(svc: Services) -> None:
    create(svc, ABSENCE)
    automation = svc.store.get_automation("watch")
    automations.delete(svc, "watch")
    svc.scheduler.tick(T0 + 26 * HOUR)
    assert firings(svc.store) == []
    assert svc.store.automation_due(automation.id, "") is None


# -- compound ----------------------------------------------------------------------------
def test_a_compound_trigger_fires_once_per_window_when_all_parts_are_met(svc: Services) -> None:
    store = svc.store
    trigger = {
        "type": "compound",
        "require": "all",
        "within": 3600,
        "triggers": [
            {"event": "pushpool.flow-run.Failed", "labels": {"deployment": "a"}},
            {"event": "pushpool.flow-run.Failed", "labels": {"deployment": "b"}, "threshold": 2},
        ],
    }
    create(svc, trigger)
    done(store, "a", T0 + timedelta(minutes=1), "Failed")
    done(store, "b", T0 + timedelta(minutes=2), "Failed")
    assert firings(store) == []  # b: 1 of 2
    done(store, "b", T0 + timedelta(minutes=3), "Failed")  # all met
    done(store, "a", T0 + timedelta(minutes=4), "Failed")  # same window
    assert len(firings(store)) == 1
    done(store, "b", T0 + timedelta(minutes=61), "Failed")  # next window: a not met
    done(store, "b", T0 + timedelta(minutes=62), "Failed")
    assert len(firings(store)) == 1
    done(store, "a", T0 + timedelta(minutes=63), "Failed")
    assert len(firings(store)) == 2


def test_a_compound_trigger_with_any_fires_on_either(svc: Services) -> None:
    trigger = {
        "type": "compound",
        "require": "any",
        "within": 3600,
        "triggers": [{"event": "x.one"}, {"event": "x.two"}],
    }
    create(svc, trigger)
    record(svc.store, "x.two", Resource(id="r"), now=T0)
    record(svc.store, "x.one", Resource(id="r"), now=T0 + timedelta(minutes=1))
    assert len(firings(svc.store)) == 1


def test_a_long_for_each_value_is_keyed_by_its_digest(svc: Services) -> None:
    trigger = {
        "posture": "proactive",
        "expect": "x.done",
        "within": 3600,
        "for_each": "deployment",
    }
    create(svc, trigger)
    long_value = "d" * 1000
    record(svc.store, "x.done", Resource(id="r", labels={"deployment": long_value}), now=T0)
    svc.scheduler.tick(T0 + 2 * HOUR)
    [labels] = missed(svc.store)
    assert labels["deployment"].startswith("sha256:") and len(firings(svc.store)) == 1
