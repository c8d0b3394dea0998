"""Admin forms: create an API key (its secret shown once, on that response only), create
a work pool and edit its config, each form generated from the pool type's config schema.

Everything goes through the API's own code: ``create_key`` (the route function itself,
with its role checks), ``pools.create_pool`` / ``pools.update_pool`` (the same models and
config validation as ``POST``/``PATCH /api/work-pools``). Only admin keys see these pages
and post these forms (``AdminPost``: CSRF, origin, then role; a deployer or viewer gets 403).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from provisioners.base import pool_types, provisioner_class
from service import pools
from service.api.api_keys import ApiKeyCreate, create_key
from service.api.deps import ServicesDep
from service.errors import InvalidInput
from service.models import Role, WorkPool
from service.security import require_role
from service.services import Services
from service.validation import check_model
from service.web import forms
from service.web.common import WebRoute
from service.web.render import page
from service.web.session import AdminPost, PageKey, read_form

router = APIRouter(route_class=WebRoute)
CONFIG = "config."


def _keys_page(
    request: Request, svc: Services, *, created: Any = None, error: str | None = None
) -> Response:
    context = {"keys": svc.store.list_api_keys(), "created": created, "error": error}
    status = 201 if created is not None else 422 if error else 200
    return page(request, "keys.html", context, status_code=status)


@router.get("/api-keys")
def keys_page(request: Request, svc: ServicesDep, key: PageKey) -> Response:
    require_role(key, Role.ADMIN)  # as the API: only admins see the keys
    return _keys_page(request, svc)


def _key_body(form: dict[str, str]) -> ApiKeyCreate:
    pools_text = form.get("pools", "").strip()
    data: dict[str, Any] = {"name": form.get("name", "").strip(), "role": form.get("role", "")}
    if pools_text:
        data["pools"] = [p.strip() for p in pools_text.split(",") if p.strip()]
    body = check_model(ApiKeyCreate, data, "api_key")
    assert isinstance(body, ApiKeyCreate)
    return body


@router.post("/api-keys")
async def create_key_form(request: Request, svc: ServicesDep, key: AdminPost) -> Response:
    """Create a key; this response (``no-store``) is the only place its secret appears."""
    try:
        body = _key_body(await read_form(request))
        created = await run_in_threadpool(create_key, body, svc, key)
    except InvalidInput as exc:
        return _keys_page(request, svc, error=str(exc))
    return _keys_page(request, svc, created=created)


@router.post("/api-keys/{key_id}/revoke")
async def revoke(key_id: str, svc: ServicesDep, _: AdminPost) -> Response:
    await run_in_threadpool(svc.store.revoke_api_key, key_id, svc.clock())
    return RedirectResponse("/api-keys", status_code=303)


def config_fields(pool_type: str, current: dict[str, Any]) -> list[forms.Field]:
    """The config form of ``pool_type`` (its provisioner module is imported here: only
    when an admin picks that type)."""
    schema = provisioner_class(pool_type).config_model.model_json_schema()
    return forms.document_fields(schema, current)


def _pool_form(
    request: Request,
    *,
    pool_type: str,
    fields: list[forms.Field],
    pool: WorkPool | None,
    entered: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    context = {
        "types": pool_types(),
        "pool_type": pool_type,
        "fields": fields,
        "pool": pool,
        "entered": entered or {},
        "error": error,
    }
    return page(request, "pool_form.html", context, status_code=422 if error else 200)


def _invalid(
    request: Request,
    exc: InvalidInput,
    fields: list[forms.Field],
    form: dict[str, str],
    **context: Any,
) -> Response:
    forms.refill(fields, form, CONFIG)
    placed = forms.show_error(fields, exc, "config")
    error = "fix the field marked below" if placed else str(exc)
    return _pool_form(request, fields=fields, entered=form, error=error, **context)


@router.get("/work-pools/new")
def new_pool(
    request: Request, key: PageKey, type: str = Query(default="process", max_length=50)
) -> Response:
    require_role(key, Role.ADMIN)
    pool_type = type if type in pool_types() else "process"
    fields = config_fields(pool_type, {})
    return _pool_form(request, pool_type=pool_type, fields=fields, pool=None)


def _limit(form: dict[str, str]) -> int | None:
    raw = form.get("concurrency_limit", "").strip()
    try:
        return int(raw) if raw else None
    except ValueError as exc:
        raise InvalidInput("concurrency_limit", f"{raw[:20]!r} is not a whole number") from exc


@router.post("/work-pools/new")
async def create_pool(request: Request, svc: ServicesDep, _: AdminPost) -> Response:
    form = await read_form(request)
    pool_type = form.get("type", "")
    if pool_type not in pool_types():
        raise InvalidInput("type", f"unknown pool type {pool_type[:50]!r}")
    fields = config_fields(pool_type, {})
    try:
        config = forms.parse(fields, form, CONFIG, root="config")
        data = {"name": form.get("name", "").strip(), "type": pool_type, "config": config}
        body = check_model(pools.WorkPoolCreate, data | {"concurrency_limit": _limit(form)}, "pool")
        assert isinstance(body, pools.WorkPoolCreate)
        created = await run_in_threadpool(pools.create_pool, svc, body)
    except InvalidInput as exc:
        return _invalid(request, exc, fields, form, pool_type=pool_type, pool=None)
    return RedirectResponse(f"/work-pools/{created.name}", status_code=303)


@router.get("/work-pools/{name}/edit")
def edit_pool(name: str, request: Request, svc: ServicesDep, key: PageKey) -> Response:
    require_role(key, Role.ADMIN)
    pool = svc.store.get_pool(name)
    fields = config_fields(pool.type, pool.config)
    return _pool_form(request, pool_type=pool.type, fields=fields, pool=pool)


@router.post("/work-pools/{name}/edit")
async def update_pool(name: str, request: Request, svc: ServicesDep, _: AdminPost) -> Response:
    """``PATCH`` semantics: the config is replaced by the form's (validated by the type's
    model; an emptied field goes back to its default) and the concurrency limit set or
    cleared; the pool's name, type and paused state stay as they are."""
    pool = svc.store.get_pool(name)
    form = await read_form(request)
    fields = config_fields(pool.type, pool.config)
    try:
        config = forms.parse(fields, form, CONFIG, root="config")
        change = {"config": config, "concurrency_limit": _limit(form)}
        body = check_model(pools.WorkPoolUpdate, change, "pool")
        assert isinstance(body, pools.WorkPoolUpdate)
        await run_in_threadpool(pools.update_pool, svc, name, body)
    except InvalidInput as exc:
        return _invalid(request, exc, fields, form, pool_type=pool.type, pool=pool)
    return RedirectResponse(f"/work-pools/{name}", status_code=303)
