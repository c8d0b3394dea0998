"""Signing in with an API key, the session cookie, CSRF and role checks for pages.

Decision: the cookie holds the API key itself (HttpOnly, SameSite=Strict, Secure, Path=/),
not a server-side session id. Every request hashes it and looks the key up in the store
exactly as the API does, so revoking the key signs the browser out at once, and nothing
lives in process memory (Lambda serves any request from any instance). No new table is
needed. The key never reaches a URL or the page's JavaScript (HttpOnly).

CSRF: every form and htmx request carries a token derived from the session's key
(HMAC-SHA256 keyed by the key); a page without the key cannot compute it. The server
checks it on every POST, and also that an ``Origin`` header, when sent, is this site.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from service.api.deps import ServicesDep, check_rate
from service.models import ApiKey, Role
from service.security import hash_secret, require_role

COOKIE = "pushpool_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: Browsers keep the session this long unless the user signs out (the key may be revoked
#: sooner: that ends it at once).
MAX_AGE = 12 * 3600


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form a page posted (every dashboard form is; the body is bounded by
    the app's body-size limit). The standard library parses it: no multipart parser is
    imported into the app for this."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HTTPException(422, "the form could not be read") from exc
    return dict(pairs)


class NotSignedIn(Exception):
    """No session cookie, or its key is unknown or revoked: the page sends to sign-in."""


def csrf_token(api_key: str) -> str:
    """The session's CSRF token: only someone holding the key can compute it."""
    return hmac.new(api_key.encode(), b"pushpool-dashboard-csrf", hashlib.sha256).hexdigest()


def set_session(response: Response, api_key: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        api_key,
        max_age=MAX_AGE,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")


def is_secure(request: Request) -> bool:
    """``Secure`` cookies: always over HTTPS (API Gateway, a proxy saying so); on plain
    HTTP only loopback, which browsers treat as a secure context."""
    forwarded = request.headers.get("x-forwarded-proto", "")
    if request.url.scheme == "https" or forwarded == "https":
        return True
    return request.url.hostname in {"127.0.0.1", "localhost", "::1"}


def check_origin(request: Request) -> None:
    """403 when the request says it comes from another site."""
    origin = request.headers.get("origin")
    if origin is None:  # a same-site form post from an old browser; the token still counts
        return
    host = request.headers.get("host", "")
    forwarded = request.headers.get("x-forwarded-host")
    allowed = {f"{scheme}://{h}" for scheme in ("http", "https") for h in (host, forwarded) if h}
    if origin not in allowed:
        raise HTTPException(403, "cross-site request refused (Origin is not this site)")


async def web_key(request: Request, svc: ServicesDep) -> ApiKey:
    """The signed-in key (``NotSignedIn`` otherwise), within the key's rate limit (429
    otherwise); the request's state gets its CSRF token for the templates."""
    secret = request.cookies.get(COOKIE)
    key = svc.store.find_api_key(hash_secret(secret)) if secret else None
    if key is None or secret is None:
        raise NotSignedIn()
    check_rate(request, svc, key)  # the key's own limit, as on the API (429 page past it)
    request.state.csrf = csrf_token(secret)
    request.state.key = key
    return key


async def _checked_post(request: Request, key: Annotated[ApiKey, Depends(web_key)]) -> ApiKey:
    """A POST from our own page: same origin, and the session's CSRF token."""
    check_origin(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        sent = (await read_form(request)).get(CSRF_FIELD)
    if sent is None or not hmac.compare_digest(sent, request.state.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return key


def _post_role(needed: Role) -> object:
    async def dependency(key: Annotated[ApiKey, Depends(_checked_post)]) -> ApiKey:
        require_role(key, needed)
        return key

    return Depends(dependency)


#: Any signed-in key: pages.
PageKey = Annotated[ApiKey, Depends(web_key)]
#: Actions (CSRF-checked POSTs) by role.
DeployerPost = Annotated[ApiKey, _post_role(Role.DEPLOYER)]
AdminPost = Annotated[ApiKey, _post_role(Role.ADMIN)]
