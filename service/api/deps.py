"""Request dependencies, as ``Annotated`` aliases routes declare by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.models import ApiKey, FlowRun
from service.runs import runner_may_act
from service.security import hash_secret, matches
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


async def require_api_key(svc: ServicesDep, creds: Credentials) -> ApiKey:
    # async on purpose: one indexed read (~0.3 ms) costs less than a threadpool hop.
    if creds is None:
        raise _unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
    key = svc.store.find_api_key(hash_secret(creds.credentials))
    if key is None:
        raise _unauthorized("invalid or revoked API key")
    return key


ApiKeyDep = Annotated[ApiKey, Depends(require_api_key)]


async def require_run_token(run_id: str, svc: ServicesDep, creds: Credentials) -> FlowRun:
    """The run named in the path, if the token is that run's and the attempt is live."""
    if creds is None:
        raise _unauthorized("missing run token")
    try:
        run = svc.store.get_run(run_id)
    except LookupError:
        run = None
    if run is None or not matches(creds.credentials, run.token_hash) or not runner_may_act(run):
        raise _unauthorized("invalid run token for this flow run")
    return run


RunnerRunDep = Annotated[FlowRun, Depends(require_run_token)]
