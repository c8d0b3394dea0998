"""What every dashboard route shares: the route class that turns errors into pages."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from service.api.errors import status_for
from service.errors import PushpoolError
from service.web.render import page
from service.web.session import NotSignedIn

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _signed_out(request: Request) -> Response:
    if request.headers.get("HX-Request"):  # a poll: have htmx load the sign-in page
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse("/login", status_code=303)


def error_page(
    request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    response = page(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )
    response.headers.update(headers or {})
    return response


class WebRoute(APIRoute):
    """A page or action: signed-out requests go to sign-in; project errors (and 403s from
    the CSRF and origin checks) become an error page with the API's status for them."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except NotSignedIn:
                return _signed_out(request)
            except PushpoolError as exc:
                return error_page(request, status_for(exc), str(exc))
            except HTTPException as exc:
                if exc.status_code < 400 or exc.status_code >= 500:
                    raise
                return error_page(request, exc.status_code, str(exc.detail), exc.headers)

        return wrapped
