"""Webhooks: deployer keys create, list and delete them; ``POST /api/hooks/{slug}`` needs
no key (the slug is the secret; an HMAC signature is checked when the webhook has one)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from service import webhooks
from service.api.deps import DeployerKey, ServicesDep, WebhookDep
from service.api.responses import PRIVILEGED, errors
from service.event_records import Event, Webhook

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=PRIVILEGED)
#: The public URL each webhook is called on (no API key).
hooks_router = APIRouter(tags=["webhooks"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409, 413, 422))
def create_webhook(body: webhooks.WebhookCreate, svc: ServicesDep, _: DeployerKey) -> Webhook:
    """A webhook; its URL is ``/api/hooks/{slug}``. The secret is never shown again."""
    return webhooks.create(svc, body)


@router.get("")
def list_webhooks(svc: ServicesDep, _: DeployerKey) -> list[Webhook]:
    """Every webhook with its slug (deployer keys only: the slug opens the URL)."""
    return svc.store.list_webhooks()


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
def delete_webhook(name: str, svc: ServicesDep, _: DeployerKey) -> Response:
    svc.store.delete_webhook(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@hooks_router.post(
    "/hooks/{slug}",
    status_code=status.HTTP_201_CREATED,
    responses=errors(401, 404, 413, 422, 429),
)
async def call_webhook(slug: str, request: Request, svc: ServicesDep, hook: WebhookDep) -> Event:
    """Turn this call (body, headers, query) into an event with the webhook's template.
    Each webhook takes ``webhook_rate_limit_per_second`` calls (429 + ``Retry-After``)."""
    raw = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    return webhooks.receive(svc, hook, raw, headers, dict(request.query_params))
