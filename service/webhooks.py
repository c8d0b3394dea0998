"""Webhooks: an unguessable URL ``POST /api/hooks/{slug}`` that turns a call into an event.

A webhook has a name, a random slug (its URL: whoever knows it may call it, so it is shown
only to deployer keys), a Jinja2 template rendered in Jinja2's ``SandboxedEnvironment``,
and optionally an HMAC check of the raw body:

* ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``;
* ``stripe``: ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "t.body")>``
  with the time within :data:`STRIPE_TOLERANCE` of the server's clock.

The template sees ``body`` (the parsed JSON body, or ``None``), ``raw_body`` (text),
``headers`` (lower-case names) and ``query``; it must render a JSON object of an event
(``name``, ``resource``, optional ``related``, ``payload``). Undefined names are errors.
Any failure (bad signature, template error, not JSON, invalid event) stores nothing.
Jinja2 is imported only here, and only when a webhook is created or called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError

from service.errors import BadSignature, InvalidInput
from service.event_records import Event, Resource, Scheme, Webhook
from service.events import EventIn, emit
from service.models import Name, Strict

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

    from service.services import Services

STRIPE_TOLERANCE = timedelta(minutes=5)
#: A template renders at most this much text.
MAX_RENDERED = 256 * 1024
_env: SandboxedEnvironment | None = None


class WebhookCreate(Strict):
    name: Name
    template: str = Field(min_length=2, max_length=20_000)
    signature: Scheme = "none"
    secret: str | None = Field(
        default=None, min_length=8, max_length=500, description="The HMAC secret (signature)"
    )


def _environment() -> SandboxedEnvironment:
    global _env
    if _env is None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        _env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    return _env


def create(svc: Services, body: WebhookCreate) -> Webhook:
    """Check the template compiles and the secret matches the scheme, then store."""
    from jinja2 import TemplateSyntaxError

    if (body.signature == "none") != (body.secret is None):
        raise InvalidInput("secret", "is required with a signature scheme, and only then")
    try:
        _environment().from_string(body.template)
    except TemplateSyntaxError as exc:
        raise InvalidInput("template", f"line {exc.lineno}: {exc.message}") from exc
    hook = Webhook(
        name=body.name,
        slug=secrets.token_urlsafe(24),
        template=body.template,
        signature=body.signature,
        secret=body.secret,
        created_at=svc.clock(),
    )
    return svc.store.create_webhook(hook)


def verify(hook: Webhook, raw: bytes, headers: Mapping[str, str], now: datetime) -> None:
    """Raise ``BadSignature`` unless the call carries the hook's valid signature."""
    if hook.signature == "none" or hook.secret is None:
        return
    key = hook.secret.encode()
    if hook.signature == "github":
        given = headers.get("x-hub-signature-256", "")
        want = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.encode(), want.encode()):
            raise BadSignature("X-Hub-Signature-256 is missing or does not match")
        return
    header = headers.get("stripe-signature", "")
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    try:
        stamp = int(parts.get("t", ""))
    except ValueError:
        raise BadSignature("Stripe-Signature is missing or has no t=") from None
    if abs(now.timestamp() - stamp) > STRIPE_TOLERANCE.total_seconds():
        raise BadSignature("Stripe-Signature is too old (or from the future)")
    want = hmac.new(key, f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(parts.get("v1", "").encode(), want.encode()):
        raise BadSignature("Stripe-Signature does not match")


def render(
    hook: Webhook, raw: bytes, headers: Mapping[str, str], query: Mapping[str, str]
) -> EventIn:
    """The event the hook's template makes of this call; ``InvalidInput`` if it cannot."""
    from jinja2 import TemplateError

    text = raw.decode("utf-8", errors="replace")
    try:
        body: Any = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    context = {"body": body, "raw_body": text, "headers": dict(headers), "query": dict(query)}
    try:
        rendered = _environment().from_string(hook.template).render(context)
    except TemplateError as exc:  # includes the sandbox's SecurityError
        raise InvalidInput("body", f"the webhook's template failed: {exc.message}") from exc
    if len(rendered) > MAX_RENDERED:
        raise InvalidInput("body", "the webhook's template rendered too much text")
    try:
        return EventIn.model_validate_json(rendered)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise InvalidInput(
            "body", f"the webhook's template did not make an event: {where}: {first['msg']}"
        ) from exc


def receive(
    svc: Services, hook: Webhook, raw: bytes, headers: Mapping[str, str], query: Mapping[str, str]
) -> Event:
    """Check, render and store the event of one call to ``hook``'s URL."""
    verify(hook, raw, headers, svc.clock())
    event = render(hook, raw, headers, query)
    related = [*event.related, Resource(id=f"pushpool.webhook.{hook.name}")]
    return emit(svc, event.model_copy(update={"related": related}))
