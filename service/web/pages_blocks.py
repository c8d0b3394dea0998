"""Blocks: the types and documents (secret fields masked ``********``, never readable
back), a create/replace form generated from the type's JSON Schema, and delete.

Writes go through ``service.blocks.ops.put_block`` and ``Store.delete_block``, as the
API's ``PUT``/``DELETE /api/blocks/{slug}/{name}`` do: the same validation (422 naming
the field, shown next to it), a secret field left empty on replace keeps its value, and
a block a deployment declares is not deleted (the error names the deployments). Secret
fields are password inputs that are never prefilled; no page ever holds a secret.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from service.api.deps import ServicesDep
from service.blocks import ops
from service.blocks.models import SLUG_PATTERN, BlockType
from service.errors import InvalidInput
from service.services import Services
from service.web import forms
from service.web.common import WebRoute
from service.web.render import page
from service.web.session import DeployerPost, PageKey, read_form

router = APIRouter(route_class=WebRoute)
VALUES = "value."
SlugPath = Path(pattern=SLUG_PATTERN)
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
#: A block's name in a path; ``+new`` (the create form) can never be one.
NamePath = Path(min_length=1, max_length=100, pattern=NAME)


def block_fields(block_type: BlockType, current: dict[str, object]) -> list[forms.Field]:
    """The type's form; its secret fields are password inputs, always empty (one
    already stored is not required: left empty, it is kept)."""
    fields = forms.document_fields(block_type.json_schema, current)
    for f in fields:
        if f.name in block_type.secret_fields:
            f.kind, f.value, f.options = "password", "", []
            f.required = f.required and f.name not in current
    return fields


@router.get("/blocks")
def blocks_page(request: Request, svc: ServicesDep, _: PageKey) -> Response:
    context = {"types": ops.list_types(svc), "blocks": ops.list_views(svc)}
    return page(request, "blocks.html", context)


def _form_page(
    request: Request,
    block_type: BlockType,
    fields: list[forms.Field],
    *,
    view: ops.BlockView | None,
    name: str = "",
    error: str | None = None,
) -> Response:
    context = {"type": block_type, "fields": fields, "view": view, "name": name, "error": error}
    return page(request, "block.html", context, status_code=422 if error else 200)


@router.get("/blocks/{slug}/+new")
def new_block(request: Request, svc: ServicesDep, _: PageKey, slug: str = SlugPath) -> Response:
    block_type = ops.get_type(svc, slug)
    return _form_page(request, block_type, block_fields(block_type, {}), view=None)


@router.get("/blocks/{slug}/{name}")
def block_page(
    request: Request, svc: ServicesDep, _: PageKey, slug: str = SlugPath, name: str = NamePath
) -> Response:
    block_view = ops.get_view(svc, slug, name)
    block_type = ops.get_type(svc, slug)
    fields = block_fields(block_type, block_view.values)
    return _form_page(request, block_type, fields, view=block_view, name=name)


async def _put(
    request: Request, svc: Services, slug: str, name: str, existing: ops.BlockView | None
) -> Response:
    block_type = ops.get_type(svc, slug)
    form = await read_form(request)
    fields = block_fields(block_type, existing.values if existing else {})
    try:
        values = forms.parse(fields, form, VALUES, root="values")
        await run_in_threadpool(ops.put_block, svc, slug, name, ops.BlockValues(values=values))
    except InvalidInput as exc:
        forms.refill(fields, form, VALUES)
        placed = forms.show_error(fields, exc, "values")
        error = "fix the field marked below" if placed else str(exc)
        return _form_page(request, block_type, fields, view=existing, name=name, error=error)
    return RedirectResponse(f"/blocks/{slug}/{name}", status_code=303)


@router.post("/blocks/{slug}/+new")
async def create_block(
    request: Request, svc: ServicesDep, _: DeployerPost, slug: str = SlugPath
) -> Response:
    name = (await read_form(request)).get("name", "").strip()
    if not re.fullmatch(NAME, name):
        raise InvalidInput("name", "1-100 letters, digits, '_', '.', '-', starting alphanumeric")
    return await _put(request, svc, slug, name, None)


@router.post("/blocks/{slug}/{name}")
async def replace_block(
    request: Request, svc: ServicesDep, _: DeployerPost, slug: str = SlugPath, name: str = NamePath
) -> Response:
    return await _put(request, svc, slug, name, ops.get_view(svc, slug, name))


@router.post("/blocks/{slug}/{name}/delete")
async def delete_block(
    svc: ServicesDep, _: DeployerPost, slug: str = SlugPath, name: str = NamePath
) -> Response:
    """Refused (409 page naming the deployments) while a deployment declares it."""
    await run_in_threadpool(svc.store.delete_block, slug, name)
    return RedirectResponse("/blocks", status_code=303)
