"""Automations: create, pause, resume, delete — and evaluate reactive triggers as events
are recorded.

Evaluation follows the event at once, in the process that recorded it (the request, the
tick or the Lambda invocation): :func:`react` is called by :func:`service.events.append`
and :func:`service.events.emit`. It is cheap: the automations are read from the store at
most once per :data:`CACHE_SECONDS` per store and process and indexed by the exact
event names they watch (:class:`Watching`); an event is compared in memory only with the
automations of its name and those with a ``*`` pattern; only a matching
automation with a ``threshold`` above 1 reads the store (the matching events of its
current window, at most ``threshold`` of them).

A trigger instance is the event itself (``threshold`` 1) or the fixed window of
``within`` seconds, aligned to the Unix epoch, per ``for_each`` label value. Firing is
:meth:`Store.fire_automation` with the key ``<automation id>:<instance>``: a conditional
write, so concurrent evaluations (replicas, overlapping Lambda invocations) fire once.
The firing queues the actions as jobs in the store's outbox, worked by the tick
(:mod:`service.automation_actions`): an action never runs in, or blocks, the request.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service import events
from service.automation_records import (
    ADMIN_ACTIONS,
    MESSAGE_ACTIONS,
    Action,
    ActionJob,
    AnyTrigger,
    Automation,
    AutomationCreate,
    CancelFlowRun,
    CompoundTrigger,
    Email,
    Notify,
    PauseSchedules,
    PauseWorkPool,
    ProactiveTrigger,
    RunDeployment,
    Trigger,
)
from service.errors import Forbidden, InvalidInput
from service.event_records import Event, EventFilter, Resource, matches, new_event

if TYPE_CHECKING:
    from service.models import ApiKey
    from service.services import Services
    from service.store.base import Store

log = logging.getLogger("pushpool.automations")

#: The service's events about automations.
AUTOMATION = "pushpool.automation"
#: Recorded for each firing; it triggers no automation (no firing chains in a request).
TRIGGERED = f"{AUTOMATION}.triggered"
#: How long a process reuses the automations it read from a store.
CACHE_SECONDS = 5.0
_monotonic: Callable[[], float] = time.monotonic


def watched(trigger: AnyTrigger) -> list[str]:
    """The event name patterns ``trigger`` evaluates events of."""
    if isinstance(trigger, CompoundTrigger):
        return [part.event for part in trigger.triggers]
    if isinstance(trigger, ProactiveTrigger):
        return [trigger.expect] + ([trigger.after] if trigger.after else [])
    return [trigger.event]


@dataclass(frozen=True)
class Watching:
    """A store's unpaused automations indexed by the event names they watch: an exact
    name is one dict lookup; only patterns with ``*`` are compared with every event.
    ``by_id`` holds every automation, paused ones too (the tick's proactive pass)."""

    by_name: dict[str, list[Automation]]
    wildcards: list[Automation]
    by_id: dict[str, Automation] = field(default_factory=dict)

    @classmethod
    def of(cls, automations: Sequence[Automation]) -> Watching:
        by_name: dict[str, list[Automation]] = defaultdict(list)
        wildcards = []
        for a in automations:
            if a.paused:
                continue
            patterns = set(watched(a.trigger))
            if any("*" in p for p in patterns):
                wildcards.append(a)
            else:
                for name in patterns:
                    by_name[name].append(a)
        return cls(dict(by_name), wildcards, {a.id: a for a in automations})

    def candidates(self, event: Event) -> list[Automation]:
        """The automations whose name patterns may match ``event``."""
        return self.by_name.get(event.name, []) + self.wildcards


_cache: weakref.WeakKeyDictionary[Store, tuple[float, Watching]] = weakref.WeakKeyDictionary()


# -- templates ---------------------------------------------------------------------------
def render(template: str, context: Mapping[str, Any]) -> str:
    """``template`` rendered in Jinja2's sandbox (undefined names are errors); raises
    ``InvalidInput`` for any template error, the sandbox's refusals included."""
    from jinja2 import TemplateError

    from service.webhooks import _environment

    try:
        return _environment().from_string(template).render(context)
    except TemplateError as exc:
        raise InvalidInput("template", f"{exc.message}") from exc


def render_values(value: Any, context: Mapping[str, Any]) -> Any:
    """``value`` with every string in it (nested in lists and objects) rendered."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [render_values(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_values(v, context) for k, v in value.items()}
    return value


def template_context(automation: str, event: Event) -> dict[str, Any]:
    """What an action's templates see: ``event`` (as JSON) and ``automation`` (its name)."""
    return {"event": event.model_dump(mode="json"), "automation": automation}


def _templates(body: AutomationCreate) -> list[tuple[str, str]]:
    """``(where, template)`` of every template in ``body``'s actions."""
    out: list[tuple[str, str]] = []
    for i, action in enumerate(body.actions):
        where = f"actions.{i}"
        if isinstance(action, RunDeployment):
            out += _strings(f"{where}.parameters", action.parameters)
        elif isinstance(action, Notify):
            out.append((f"{where}.body", action.body))
        elif isinstance(action, CancelFlowRun) and action.flow_run is not None:
            out.append((f"{where}.flow_run", action.flow_run))
        elif isinstance(action, Email):
            out += [(f"{where}.subject", action.subject), (f"{where}.body", action.body)]
    return out


def _strings(where: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(f"{where}.{i}", v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(f"{where}.{k}", v)]
    return []


def check(svc: Services, body: AutomationCreate) -> None:
    """Raise ``InvalidInput`` naming the field if a template does not compile or a
    notify URL is outside the admin's allowlist."""
    from jinja2 import TemplateSyntaxError

    from service.notify import check_allowlisted
    from service.webhooks import _environment

    for where, text in _templates(body):
        try:
            _environment().from_string(text)
        except TemplateSyntaxError as exc:
            raise InvalidInput(where, f"line {exc.lineno}: {exc.message}") from exc
    for i, action in enumerate(body.actions):
        if isinstance(action, Notify):
            check_allowlisted(action.url, svc.settings, field=f"actions.{i}.url")
        else:
            _check_target(svc, action, f"actions.{i}")


def _check_target(svc: Services, action: Action, where: str) -> None:
    """``InvalidInput`` naming the field if what a new-style action acts on is missing or
    unusable: the pool, the deployment with schedules, the SMTP block (not decrypted)."""
    if isinstance(action, PauseWorkPool):
        try:
            svc.store.get_pool(action.work_pool)
        except LookupError:
            raise InvalidInput(f"{where}.work_pool", "no such work pool") from None
    elif isinstance(action, PauseSchedules):
        from service.automation_actions import deployment

        try:
            dep = deployment(svc, action.deployment)
        except LookupError:
            raise InvalidInput(f"{where}.deployment", "no such deployment") from None
        if not dep.schedules:
            raise InvalidInput(f"{where}.deployment", "the deployment has no schedules")
    elif isinstance(action, Email):
        _check_smtp(svc, action, where)


def _check_smtp(svc: Services, action: Email, where: str) -> None:
    from service import mail

    try:
        doc = svc.store.get_block("smtp", action.smtp.split("/", 1)[1])
    except LookupError:
        raise InvalidInput(f"{where}.smtp", f"block {action.smtp!r} does not exist") from None
    present = {f: "********" for f in doc.secrets}  # never decrypted here
    problem = mail.server_problem(mail.Server.of({**doc.values, **present}), svc.settings)
    if problem is not None:
        raise InvalidInput(f"{where}.smtp", problem)


# -- managing ----------------------------------------------------------------------------
def create(svc: Services, body: AutomationCreate, key: ApiKey | None = None) -> Automation:
    """Check and store a new automation (``AlreadyExists`` if the name is taken).

    Actions run later with the service's authority, so the ``key`` must hold what each
    action needs (``Forbidden`` otherwise): a key limited to some pools may create only
    automations that send messages (notify, email); pausing a pool needs the admin role."""
    if key is not None:
        authorise(key, body)
    check(svc, body)
    now = svc.clock()
    automation = Automation(
        **body.model_dump(), id=str(uuid.uuid4()), created_at=now, updated_at=now
    )
    stored = svc.store.create_automation(automation)
    invalidate(svc.store)
    from service.automation_triggers import arm_on_creation

    arm_on_creation(svc.store, stored)
    return stored


def authorise(key: ApiKey, body: AutomationCreate) -> None:
    """``Forbidden`` naming the role or action if ``key`` may not create ``body``."""
    from service.models import Role

    types = {a.type for a in body.actions}
    if key.limited and not types <= MESSAGE_ACTIONS:
        raise Forbidden(
            "an API key limited to some pools may create only automations whose actions "
            "are all 'notify' or 'email'"
        )
    needs_admin = sorted(types & ADMIN_ACTIONS)
    if needs_admin and not key.role.includes(Role.ADMIN):
        raise Forbidden(
            f"actions {', '.join(needs_admin)} need an API key with the 'admin' role "
            f"(this key is {key.role.value!r})"
        )


def set_paused(svc: Services, name: str, paused: bool) -> Automation:
    changed = svc.store.set_automation_paused(name, paused, svc.clock())
    invalidate(svc.store)
    return changed


def delete(svc: Services, name: str) -> None:
    svc.store.delete_automation(name)
    invalidate(svc.store)


def invalidate(store: Store) -> None:
    """Forget this process's cached automations of ``store`` (after a change here)."""
    _cache.pop(store, None)


def cached(store: Store) -> Watching:
    """The store's unpaused automations, read at most once per :data:`CACHE_SECONDS`."""
    now = _monotonic()
    hit = _cache.get(store)
    if hit is not None and now < hit[0]:
        return hit[1]
    watching = Watching.of(store.list_automations())
    _cache[store] = (now + CACHE_SECONDS, watching)
    return watching


# -- evaluating --------------------------------------------------------------------------
def trigger_matches(trigger: Trigger, event: Event) -> bool:
    """Whether ``event`` is one ``trigger`` counts (name, resource, labels, for_each)."""
    flt = EventFilter(names=(trigger.event,), resource=trigger.resource, labels=trigger.labels)
    return matches(flt, event) and (
        trigger.for_each is None or trigger.for_each in event.resource.labels
    )


def instance(trigger: Trigger, event: Event) -> tuple[str, EventFilter | None]:
    """The trigger instance ``event`` belongs to, and the filter counting its events
    (``None`` when the event alone fires: ``threshold`` 1)."""
    if trigger.threshold == 1:
        return event.id, None
    epoch = int(event.occurred.timestamp())
    start = epoch - epoch % trigger.within
    labels = dict(trigger.labels)
    per = ""
    if trigger.for_each is not None:
        labels[trigger.for_each] = per = event.resource.labels[trigger.for_each]
    begin = event.occurred.fromtimestamp(start, event.occurred.tzinfo)
    end = event.occurred.fromtimestamp(start + trigger.within, event.occurred.tzinfo)
    flt = EventFilter(
        names=(trigger.event,), resource=trigger.resource, labels=labels, since=begin, until=end
    )
    return f"{start}:{per}", flt


def evaluate(store: Store, automation: Automation, event: Event) -> bool:
    """Fire ``automation`` for ``event`` if its trigger instance is complete and has not
    fired; returns whether this call fired it. A proactive trigger never fires here: the
    event (re)arms or clears its deadline, which the tick checks."""
    if automation.paused or event.name == TRIGGERED:
        return False  # no chain of firings within one call
    if event.resource.id == f"{AUTOMATION}.{automation.name}":
        return False  # nor reacting to one's own
    trigger = automation.trigger
    if not isinstance(trigger, Trigger):
        from service import automation_triggers

        return automation_triggers.evaluate(store, automation, event)
    if not trigger_matches(trigger, event):
        return False
    key, flt = instance(trigger, event)
    if flt is not None:
        seen = store.list_events(flt, trigger.threshold).items
        if len(seen) < trigger.threshold:
            return False
    return fire(store, automation, event, f"{automation.id}:{key}")


def fire(
    store: Store, automation: Automation, event: Event, firing: str, *, new: bool = False
) -> bool:
    """Fire ``automation`` with the idempotency key ``firing``: queue its actions for
    ``event`` and record the ``triggered`` event (and ``event`` too if ``new``, made for
    this firing). Returns ``False``, writing nothing, if ``firing`` fired before."""
    jobs = [
        ActionJob(
            id=uuid.uuid4().hex,
            automation_id=automation.id,
            automation=automation.name,
            firing=firing,
            index=i,
            action=action.model_dump(mode="json"),
            event=event,
            due_at=event.occurred,
        )
        for i, action in enumerate(automation.actions)
    ]
    if not store.fire_automation(firing, jobs, event.occurred):
        return False
    events.append(store, [event] * new + [triggered_event(automation, event, firing)])
    return True


def automation_resource(name: str) -> Resource:
    return Resource(id=f"{AUTOMATION}.{name}", labels={"name": name})


def triggered_event(automation: Automation, event: Event, firing: str) -> Event:
    """``pushpool.automation.triggered``, related to the triggering event's resource."""
    return new_event(
        TRIGGERED,
        automation_resource(automation.name),
        occurred=event.occurred,
        related=[event.resource],
        payload={"firing": firing, "event": {"id": event.id, "name": event.name}},
    )


def react(store: Store, recorded: Sequence[Event]) -> int:
    """Evaluate the unpaused automations that may match just-recorded events; returns
    the firings made. Never raises: a failure is logged (the events stay recorded)."""
    fired = 0
    try:
        watching = cached(store)
        for event in recorded:
            for automation in watching.candidates(event):
                fired += evaluate(store, automation, event)
    except Exception:  # evaluation must never fail the change that was recorded
        log.exception("could not evaluate automations for %d event(s)", len(recorded))
    return fired
