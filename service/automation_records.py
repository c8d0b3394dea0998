"""Automations: a trigger and the actions it starts — the records the store keeps.

Light on purpose (pydantic and :mod:`service.event_records` only): the store, the API and
the event hook import it. Every model forbids unknown fields, so a typo in an
``automation.yaml`` is a clear 422 naming the field rather than a silently ignored key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from service.event_records import Event, LabelKey, LabelValue
from service.models import BoundedDict, Name

#: An event name or resource id pattern: ``*`` matches any run of characters.
Pattern = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[^\x00-\x1f]+$")]
#: A Jinja2 template (rendered in the sandbox with ``event`` and ``automation``).
Template = Annotated[str, Field(max_length=20_000)]
#: A longest window: 31 days.
MAX_WITHIN = 31 * 24 * 3600
#: A firing key is kept this long: past every window it could be fired in again.
FIRING_KEPT = timedelta(seconds=MAX_WITHIN) + timedelta(days=31)


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Trigger(_Forbid):
    """Reactive: fires on events named like ``event`` whose primary resource matches
    ``resource`` (a pattern) and ``labels`` (exact values); with ``threshold`` > 1, once
    ``threshold`` such events occurred within one fixed window of ``within`` seconds
    (windows are aligned to the Unix epoch), counted separately per value of the
    ``for_each`` label."""

    type: Literal["event"] = "event"
    posture: Literal["reactive"] = "reactive"
    event: Pattern = Field(description="Event name pattern, e.g. 'pushpool.flow-run.Failed'")
    resource: Pattern | None = Field(default=None, description="Resource id pattern")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=20)
    threshold: int = Field(default=1, ge=1, le=10_000)
    within: int = Field(default=0, ge=0, le=MAX_WITHIN, description="Window in seconds")
    for_each: LabelKey | None = Field(default=None, description="Count per this label")

    @model_validator(mode="after")
    def _window(self) -> Trigger:
        if self.threshold > 1 and self.within == 0:
            raise ValueError("within: a threshold above 1 needs a window (seconds)")
        return self


class ProactiveTrigger(_Forbid):
    """Proactive: fires when no event named like ``expect`` (on a resource matching
    ``resource`` and ``labels``) arrives within ``within`` seconds — after an ``after``
    event, or, without ``after``, since the last expected event (at first: since the
    automation was created). Counted separately per value of the ``for_each`` label (an
    instance exists once an event with that label value was seen).

    Each instance has a deadline in the store's due index, checked by the tick. Without
    ``after`` the deadline moves to ``within`` after each expected event, and after a
    firing to one more ``within`` later (an alert per silent window); with ``after`` an
    ``after`` event sets it unless one is set, and the expected event or a firing clears it.
    """

    type: Literal["event"] = "event"
    posture: Literal["proactive"]
    expect: Pattern = Field(description="The expected event's name pattern")
    after: Pattern | None = Field(default=None, description="Event pattern starting the clock")
    resource: Pattern | None = Field(default=None, description="Resource id pattern")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=20)
    within: int = Field(ge=60, le=MAX_WITHIN, description="Seconds the expected event may take")
    for_each: LabelKey | None = Field(default=None, description="One deadline per this label")


class CompoundPart(_Forbid):
    """One part of a compound trigger: met in a window when ``threshold`` events named
    like ``event`` (on a resource matching ``resource`` and ``labels``) occurred in it."""

    type: Literal["event"] = "event"
    event: Pattern = Field(description="Event name pattern")
    resource: Pattern | None = Field(default=None, description="Resource id pattern")
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=20)
    threshold: int = Field(default=1, ge=1, le=10_000)


class CompoundTrigger(_Forbid):
    """Compound: fires once per fixed window of ``within`` seconds (aligned to the Unix
    epoch) in which ``require`` of ``triggers`` (``all``, ``any`` or a number) were met."""

    type: Literal["compound"]
    require: Literal["all", "any"] | Annotated[int, Field(ge=1, le=10)] = "all"
    triggers: list[CompoundPart] = Field(min_length=1, max_length=10)
    within: int = Field(ge=1, le=MAX_WITHIN, description="Window in seconds")

    @model_validator(mode="after")
    def _enough(self) -> CompoundTrigger:
        if isinstance(self.require, int) and self.require > len(self.triggers):
            raise ValueError(f"require: {self.require} exceeds the {len(self.triggers)} triggers")
        return self

    def needed(self) -> int:
        """How many sub-triggers must be met in one window."""
        if self.require == "all":
            return len(self.triggers)
        return 1 if self.require == "any" else self.require


def _trigger_kind(value: Any) -> str:
    get = value.get if isinstance(value, dict) else lambda k, d=None: getattr(value, k, d)
    if get("type") == "compound":
        return "compound"
    return "proactive" if get("posture") == "proactive" else "reactive"


#: Any trigger: ``type: compound``, or ``type: event`` (the default) with ``posture``
#: ``reactive`` (the default) or ``proactive``.
AnyTrigger = Annotated[
    Annotated[Trigger, Tag("reactive")]
    | Annotated[ProactiveTrigger, Tag("proactive")]
    | Annotated[CompoundTrigger, Tag("compound")],
    Discriminator(_trigger_kind),
]


class RunDeployment(_Forbid):
    """Start a run of ``deployment`` (its id or ``flow/name``); each string in
    ``parameters`` is a template."""

    type: Literal["run-deployment"]
    deployment: Annotated[str, Field(min_length=1, max_length=300)]
    parameters: BoundedDict = Field(default_factory=dict)


class PauseDeployment(_Forbid):
    type: Literal["pause-deployment", "resume-deployment"]
    deployment: Annotated[str, Field(min_length=1, max_length=300)]


class CancelFlowRun(_Forbid):
    """Cancel ``flow_run`` (a template; default: the triggering event's flow run)."""

    type: Literal["cancel-flow-run"]
    flow_run: Template | None = None


class Notify(_Forbid):
    """POST ``body`` (a template) to ``url``, which the admin's allowlist must cover.
    The default body is ``{"text": ...}``, which Slack, Teams and Discord accept."""

    type: Literal["notify"]
    url: Annotated[str, Field(min_length=8, max_length=2000, pattern=r"^https?://")]
    body: Template = (
        '{"text": {{ ("Automation " ~ automation ~ ": " ~ event.name ~ " on "'
        " ~ event.resource.labels.get('name', event.resource.id)) | tojson }}}"
    )
    content_type: Annotated[str, Field(max_length=100)] = "application/json"


class PauseSchedules(_Forbid):
    """Pause (``active: false``) or resume every schedule of ``deployment`` (its id or
    ``flow/name``), leaving the deployment itself unpaused: manual and automation runs
    still start; a paused schedule's future scheduled runs are deleted."""

    type: Literal["pause-schedules", "resume-schedules"]
    deployment: Annotated[str, Field(min_length=1, max_length=300)]


class PauseWorkPool(_Forbid):
    """Pause or resume ``work_pool`` (a paused pool starts no run); changing a pool needs
    the admin role, so only an admin key creates this action."""

    type: Literal["pause-work-pool", "resume-work-pool"]
    work_pool: Name


#: An e-mail address: one ``local@domain``, no display name, no spaces or line breaks.
EmailAddress = Annotated[
    str, Field(min_length=3, max_length=254, pattern=r"^[^@\s<>,;:\"]+@[^@\s<>,;:\"]+$")
]


class Email(_Forbid):
    """Send an e-mail through the SMTP server of the block ``smtp`` (``smtp/NAME``: host,
    port, username, password, TLS); ``subject`` and ``body`` are templates. The block's
    password is decrypted only by the action worker, when it sends."""

    type: Literal["email"]
    smtp: Annotated[
        str,
        Field(
            pattern=r"^smtp/[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
            description="The SMTP block, e.g. 'smtp/ops'",
        ),
    ]
    to: list[EmailAddress] = Field(min_length=1, max_length=50)
    subject: Template = (
        "[pushpool] {{ automation }}: {{ event.name }} on "
        "{{ event.resource.labels.get('name', event.resource.id) }}"
    )
    body: Template = (
        "Automation {{ automation }} fired on {{ event.name }} at {{ event.occurred }}.\n"
        "Resource: {{ event.resource.id }}\n"
        "{% for k, v in event.resource.labels.items() %}  {{ k }}: {{ v }}\n{% endfor %}"
    )


Action = Annotated[
    RunDeployment
    | PauseDeployment
    | PauseSchedules
    | PauseWorkPool
    | CancelFlowRun
    | Notify
    | Email,
    Field(discriminator="type"),
]
#: Actions only an admin key may create (they change what an admin alone may change).
ADMIN_ACTIONS = frozenset({"pause-work-pool", "resume-work-pool"})
#: Actions that only send a message (what a key limited to some pools may create).
MESSAGE_ACTIONS = frozenset({"notify", "email"})


class AutomationCreate(_Forbid):
    """What ``POST /api/automations`` and ``automation.yaml`` hold."""

    name: Name
    description: str = Field(default="", max_length=2000)
    trigger: AnyTrigger
    actions: list[Action] = Field(min_length=1, max_length=10)
    paused: bool = False


class Automation(AutomationCreate):
    """An automation as stored: ``id`` is fresh per creation (a name used again is a new
    automation: earlier firings do not count for it)."""

    id: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class ActionJob(_Forbid):
    """One action of one firing, waiting in the store's outbox for the tick.

    ``attempts`` counts the tries begun; the job is due again at ``due_at`` (the backoff
    after a failed try, or the lease of a try in progress)."""

    id: str
    automation_id: str
    automation: str
    firing: str
    index: int
    action: dict[str, Any]
    event: Event
    attempts: int = 0
    due_at: AwareDatetime


class DueInstance(_Forbid):
    """One armed instance of a proactive trigger in the store's due index: the expected
    event must arrive by ``due_at``. ``instance`` is the ``for_each`` label value
    (``""`` without ``for_each``)."""

    automation_id: str
    instance: Annotated[str, Field(max_length=300)]
    due_at: AwareDatetime


def describe_trigger(trigger: Mapping[str, Any]) -> str:
    """A trigger (as JSON) in one line, for the CLI and the dashboard:
    ``3 of pushpool.flow-run.Failed within 600 s per flow``, ``no … within 90000s``,
    ``all of (…, …) within 3600s``."""
    if trigger.get("type") == "compound":
        parts = ", ".join(p["event"] for p in trigger["triggers"])
        return f"{trigger['require']} of ({parts}) within {trigger['within']}s"
    if trigger.get("posture") == "proactive":
        after = f" after {trigger['after']}" if trigger.get("after") else ""
        return f"no {trigger['expect']} within {trigger['within']}s{after}"
    threshold = trigger.get("threshold", 1)
    text = str(trigger["event"]) if threshold == 1 else f"{threshold} of {trigger['event']}"
    if trigger.get("resource"):
        text += f" on {trigger['resource']}"
    if trigger.get("labels"):
        text += " where " + ", ".join(f"{k}={v}" for k, v in trigger["labels"].items())
    if trigger.get("within"):
        text += f" within {trigger['within']} s"
    return text + (f" per {trigger['for_each']}" if trigger.get("for_each") else "")
