"""Automations: trigger matching, threshold windows, templates, the sandbox, refused
destinations, the outbox's retries — on the conftest's store and services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from service import automations
from service.automation_actions import work
from service.automation_records import AutomationCreate, Trigger
from service.errors import Forbidden, InvalidInput
from service.event_records import EventFilter, Resource, new_event
from service.events import record
from service.notify import Refused, check_address
from service.services import Services
from service.settings import Settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ev(event: str = "pushpool.flow-run.Failed", at: datetime = T0, **labels: str) -> Any:
    return new_event(event, Resource(id="pushpool.flow-run.r1", labels=labels), occurred=at)


@pytest.mark.parametrize(
    ("trigger", "event", "expected"),
    [
        ({"event": "pushpool.flow-run.*"}, ev(), True),
        ({"event": "pushpool.flow-run.Completed"}, ev(), False),
        ({"event": "*", "resource": "pushpool.deployment.*"}, ev(), False),
        ({"event": "*", "labels": {"deployment": "etl"}}, ev(deployment="etl"), True),
        ({"event": "*", "labels": {"deployment": "etl"}}, ev(deployment="x"), False),
        ({"event": "*", "for_each": "deployment"}, ev(), False),  # nothing to count by
    ],
)
def test_trigger_matching(trigger: dict[str, Any], event: Any, expected: bool) -> None:
    assert automations.trigger_matches(Trigger(**trigger), event) is expected


def test_a_threshold_needs_a_window_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="within"):
        Trigger(event="x", threshold=3)
    with pytest.raises(ValidationError, match="extra"):
        Trigger.model_validate({"event": "x", "treshold": 3})


def test_windows_are_fixed_and_counted_per_label() -> None:
    trigger = Trigger(event="x.*", threshold=3, within=600, for_each="deployment")
    key, flt = automations.instance(trigger, ev("x.y", T0 + timedelta(minutes=13), deployment="a"))
    assert flt is not None and key == f"{int(T0.timestamp()) + 600}:a"
    assert flt.since == T0 + timedelta(minutes=10) and flt.until == T0 + timedelta(minutes=20)
    assert flt.labels == {"deployment": "a"}
    single = ev("x")
    assert automations.instance(Trigger(event="x"), single) == (single.id, None)


def test_templates_render_from_the_event_and_the_sandbox_refuses() -> None:
    context = automations.template_context("a", ev(name="n1"))
    assert automations.render("{{ event.resource.labels.name }}!", context) == "n1!"
    assert automations.render_values({"x": ["{{ automation }}", 1]}, context) == {"x": ["a", 1]}
    with pytest.raises(InvalidInput):
        automations.render("{{ ''.__class__.__mro__ }}", context)
    with pytest.raises(InvalidInput):
        automations.render("{{ nope.x }}", context)


def resolver(*addresses: str) -> Any:
    return lambda host: list(addresses)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fe80::1", "0.0.0.0"]
)
def test_internal_addresses_are_refused_unless_allowed(address: str) -> None:
    settings = Settings(automation_notify_allowlist=["http://"])
    with pytest.raises(Refused, match="non-public"):
        check_address("http://example.test/x", settings, resolver(address))
    network = address + ("/128" if ":" in address else "/32")
    allowed = settings.model_copy(update={"automation_allowed_networks": [network]})
    check_address("http://example.test/x", allowed, resolver(address))


def test_one_internal_address_among_public_ones_is_refused() -> None:
    settings = Settings()
    check_address("https://example.test/", settings, resolver("93.184.216.34"))
    with pytest.raises(Refused):
        check_address("https://example.test/", settings, resolver("93.184.216.34", "10.0.0.1"))


def body(**actions: Any) -> AutomationCreate:
    return AutomationCreate.model_validate(
        {
            "name": "a",
            "trigger": {"event": "x.*", "threshold": 2, "within": 60},
            "actions": [{"type": "notify", "url": "http://127.0.0.1:9/hook"}],
        }
        | actions
    )


def test_create_refuses_urls_outside_the_allowlist_and_bad_templates(services: Services) -> None:
    with pytest.raises(InvalidInput, match="allowlist"):
        automations.create(services, body())
    bad = body(actions=[{"type": "run-deployment", "deployment": "f/d", "parameters": {"p": "{{"}}])
    with pytest.raises(InvalidInput) as info:
        automations.create(services, bad)
    assert info.value.field == "actions.0.parameters.p"
    assert services.store.list_automations() == []


def test_a_threshold_fires_once_per_window_then_the_action_retries_and_fails(
    services: Services,
) -> None:
    services.settings.automation_notify_allowlist = ["http://127.0.0.1:9/"]
    services.settings.automation_action_attempts = 2
    automations.create(services, body())
    store = services.store
    record(store, "x.one", Resource(id="r"), now=T0)
    assert store.due_action_jobs(T0 + timedelta(hours=1), 10) == []  # 1 of 2
    for i in range(3):  # the second fires; the third is in the same window
        record(store, "x.one", Resource(id="r"), now=T0 + timedelta(seconds=1 + i))
    jobs = store.due_action_jobs(T0 + timedelta(hours=1), 10)
    assert len(jobs) == 1
    # Loopback is not allowed here: try 1 fails and waits for its retry, try 2 records failed.
    assert work(services, T0 + timedelta(seconds=5)) == 1
    assert work(services, T0 + timedelta(seconds=6)) == 0  # backing off
    assert work(services, T0 + timedelta(minutes=5)) == 1
    assert store.due_action_jobs(T0 + timedelta(days=1), 10) == []
    names = [
        e.name for e in store.list_events(EventFilter(resource="pushpool.automation.a"), 10).items
    ]
    assert names == ["pushpool.automation.action.failed", "pushpool.automation.triggered"]


def test_a_paused_automation_does_not_fire(services: Services) -> None:
    services.settings.automation_notify_allowlist = ["http://127.0.0.1:9/"]
    automations.create(services, body(trigger={"event": "x.*"}))
    automations.set_paused(services, "a", True)
    record(services.store, "x.one", Resource(id="r"), now=T0)
    assert services.store.due_action_jobs(T0 + timedelta(hours=1), 10) == []
    automations.set_paused(services, "a", False)
    record(services.store, "x.one", Resource(id="r"), now=T0)
    assert len(services.store.due_action_jobs(T0 + timedelta(hours=1), 10)) == 1


def test_a_key_limited_to_some_pools_may_only_notify(services: Services) -> None:
    from service.models import ApiKey

    limited = ApiKey.model_validate(
        {
            "id": "k",
            "name": "k",
            "key_hash": "h",
            "created_at": T0,
            "role": "deployer",
            "pools": ["local"],
        }
    )
    acting = body(actions=[{"type": "pause-deployment", "deployment": "f/d"}])
    with pytest.raises(Forbidden, match="notify"):
        automations.create(services, acting, limited)
    assert services.store.list_automations() == []


def test_a_firing_triggers_no_other_automation(services: Services) -> None:
    services.settings.automation_notify_allowlist = ["http://127.0.0.1:9/"]
    automations.create(services, body(name="first", trigger={"event": "x.*"}))
    automations.create(services, body(name="second", trigger={"event": "pushpool.automation.*"}))
    record(services.store, "x.one", Resource(id="r"), now=T0)
    jobs = services.store.due_action_jobs(T0 + timedelta(hours=1), 10)
    assert [j.automation for j in jobs] == ["first"]


def test_only_automations_watching_the_name_or_a_pattern_are_candidates() -> None:
    def auto(name: str, event: str, paused: bool = False) -> Any:
        return automations.Automation.model_validate(
            {
                "id": name,
                "name": name,
                "paused": paused,
                "trigger": {"event": event},
                "actions": [{"type": "cancel-flow-run"}],
                "created_at": T0,
                "updated_at": T0,
            }
        )

    watching = automations.Watching.of(
        [auto("exact", "x.a"), auto("other", "x.b"), auto("wild", "x.*"), auto("off", "x.a", True)]
    )
    assert [a.name for a in watching.candidates(ev("x.a"))] == ["exact", "wild"]
    assert [a.name for a in watching.candidates(ev("y"))] == ["wild"]
