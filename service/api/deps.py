"""Request dependencies, as ``Annotated`` aliases routes declare by type.

Every API route declares the role it needs with one of :data:`ViewerKey`,
:data:`DeployerKey` or :data:`AdminKey`: the key is authenticated, counted against its
rate limit, then checked for the role (403 names the role needed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.ratelimit import RateLimiter, retry_after
from service.event_records import Webhook
from service.models import ApiKey, FlowRun, Role
from service.runs import runner_may_act
from service.security import hash_secret, matches, require_role
from service.services import Services

_bearer = HTTPBearer(auto_error=False, description="An API key, or a run token (runner only)")


async def get_services(request: Request) -> Services:
    state = request.app.state
    if state.services is None:  # built on first use (see create_app)
        state.services = state.services_factory()
    services: Services = state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


#: Each limiter: its attribute on the app's state and its settings' prefix.
_LIMITERS = {
    "api": ("rate_limiter", "rate_limit"),
    "runner": ("runner_rate_limiter", "runner_rate_limit"),
    "webhook": ("webhook_rate_limiter", "webhook_rate_limit"),
}


def _limiter(request: Request, svc: Services, kind: str = "api") -> RateLimiter:
    """The app's limiter for API keys, run tokens (``runner``) or webhooks."""
    state, settings = request.app.state, svc.settings
    name, prefix = _LIMITERS[kind]
    if getattr(state, name, None) is None:
        rate = getattr(settings, f"{prefix}_per_second")
        burst = getattr(settings, f"{prefix}_burst")
        setattr(state, name, RateLimiter(rate, burst))
    limiter: RateLimiter = getattr(state, name)
    return limiter


def _too_many(wait: float, rate: float, whose: str) -> HTTPException:
    return HTTPException(
        429,
        f"rate limit of {rate:g} requests/s for {whose} exceeded",
        headers={"Retry-After": retry_after(wait)},
    )


async def require_api_key(request: Request, svc: ServicesDep, creds: Credentials) -> ApiKey:
    """The caller's unrevoked key, within its rate limit (401 / 429 otherwise)."""
    # async on purpose: one indexed read (~0.3 ms) costs less than a threadpool hop.
    if creds is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
    key = svc.store.find_api_key(hash_secret(creds.credentials))
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    check_rate(request, svc, key)
    return key


def check_rate(request: Request, svc: Services, key: ApiKey) -> None:
    """Count one request against ``key``'s bucket (one per key, shared by the API and
    the dashboard's session of that key): 429 with ``Retry-After`` past the limit."""
    wait = _limiter(request, svc).acquire(key.id)
    if wait > 0:
        raise _too_many(wait, svc.settings.rate_limit_per_second, "this API key")


def _role(needed: Role) -> Callable[[ApiKey], Awaitable[ApiKey]]:
    async def dependency(key: Annotated[ApiKey, Depends(require_api_key)]) -> ApiKey:
        require_role(key, needed)
        return key

    dependency.__name__ = f"require_{needed.value}"
    return dependency


#: Any valid key: reads.
ViewerKey = Annotated[ApiKey, Depends(_role(Role.VIEWER))]
#: Deployments and runs (in the key's pools, checked by the operation).
DeployerKey = Annotated[ApiKey, Depends(_role(Role.DEPLOYER))]
#: Work pools, API keys: everything.
AdminKey = Annotated[ApiKey, Depends(_role(Role.ADMIN))]


async def require_run_token(
    request: Request, run_id: str, svc: ServicesDep, creds: Credentials
) -> FlowRun:
    """The run named in the path, if the token is that run's and the attempt is live, and
    within the per-run-token rate limit (429 + ``Retry-After``; counted only once the
    token is verified, so nobody spends another run's budget)."""
    if creds is None:
        raise _unauthorized("missing run token")
    try:
        run = svc.store.get_run(run_id)
    except LookupError:
        run = None
    if run is None or not matches(creds.credentials, run.token_hash) or not runner_may_act(run):
        raise _unauthorized("invalid run token for this flow run")
    wait = _limiter(request, svc, "runner").acquire(run.id)
    if wait > 0:
        raise _too_many(wait, svc.settings.runner_rate_limit_per_second, "this run token")
    return run


RunnerRunDep = Annotated[FlowRun, Depends(require_run_token)]


async def webhook_within_limit(request: Request, slug: str, svc: ServicesDep) -> Webhook:
    """The webhook of the path's ``slug`` (404 if none), within its rate limit (429 +
    ``Retry-After``). Counted per webhook once it is found and before its signature is
    checked: forged calls spend its budget too, guessed slugs spend nobody's."""
    hook = svc.store.get_webhook(slug)
    wait = _limiter(request, svc, "webhook").acquire(hook.slug)
    if wait > 0:
        raise _too_many(wait, svc.settings.webhook_rate_limit_per_second, "this webhook")
    return hook


WebhookDep = Annotated[Webhook, Depends(webhook_within_limit)]
