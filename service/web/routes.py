"""The dashboard's router: sign-in, static files, and the pages of each area."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from service.api.deps import ServicesDep
from service.security import hash_secret
from service.web import (
    pages_admin,
    pages_automations,
    pages_blocks,
    pages_deployments,
    pages_events,
    pages_pools,
    pages_runs,
)
from service.web.assets import CACHE_CONTROL, by_url_name
from service.web.common import WebRoute, error_page
from service.web.render import page
from service.web.session import (
    COOKIE,
    CSRF_FIELD,
    PageKey,
    check_origin,
    clear_session,
    csrf_token,
    is_secure,
    read_form,
    set_session,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
#: Each area's router (``pages_admin`` before ``pages_pools``: ``/work-pools/new`` first).
AREAS = (
    pages_runs,
    pages_deployments,
    pages_admin,
    pages_pools,
    pages_events,
    pages_automations,
    pages_blocks,
)
for _area in AREAS:
    router.include_router(_area.router)


@router.get("/static/{name}")
def static(name: str, request: Request) -> Response:
    """A content-hashed file: cached for a year, revalidated by ETag if asked."""
    asset = by_url_name().get(name)
    if asset is None:
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.path.read_bytes(), media_type=asset.media_type, headers=headers)


@router.get("/")
def home(_: PageKey) -> Response:
    return RedirectResponse("/runs", status_code=303)


@router.get("/login")
def login_form(request: Request) -> Response:
    return page(request, "login.html", {"error": None})


@router.post("/login")
async def login(request: Request, svc: ServicesDep) -> Response:
    """Sign in: a valid, unrevoked key becomes the session cookie (never echoed back)."""
    check_origin(request)
    api_key = (await read_form(request)).get("api_key", "").strip()
    key = svc.store.find_api_key(hash_secret(api_key)) if api_key else None
    if key is None:
        return page(request, "login.html", {"error": "unknown or revoked API key"}, status_code=401)
    response = RedirectResponse("/runs", status_code=303)
    set_session(response, api_key, secure=is_secure(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out (CSRF-checked, so another site cannot sign a user out)."""
    check_origin(request)
    sent = (await read_form(request)).get(CSRF_FIELD, "")
    secret = request.cookies.get(COOKIE)
    if secret is None or not hmac.compare_digest(sent, csrf_token(secret)):
        return error_page(request, 403, "missing or wrong CSRF token")
    response = RedirectResponse("/login", status_code=303)
    clear_session(response, secure=is_secure(request))
    return response
