"""Automations: the list (trigger, paused, last firing), an automation's trigger and
actions as YAML with its firings and action outcomes (the events of resource
``pushpool.automation.<name>``, as ``pushpool automation inspect`` shows them), and
pause / resume / delete / create-from-YAML.

As in the API, automations are a deployer's business: a viewer key gets 403. Reads and
writes go through ``Store.get_automation``/``list_automations``, the API's
``list_events`` and ``service.automations`` (create, set_paused, delete).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from service import automations
from service.api.deps import ServicesDep
from service.api.events import list_events
from service.automation_records import Automation, AutomationCreate, describe_trigger
from service.errors import InvalidInput
from service.event_records import Event
from service.models import ApiKey, Role
from service.security import require_role
from service.services import Services
from service.validation import check_model
from service.web.common import WebRoute
from service.web.render import page
from service.web.session import DeployerPost, PageKey, read_form

router = APIRouter(route_class=WebRoute)
#: Firings and outcomes shown on an automation's page (newest first).
HISTORY = 50
EXAMPLE = """name: retry-failed
trigger:
  event: pushpool.flow-run.Failed
actions:
  - type: notify
    url: https://hooks.example.com/pushpool
"""


async def history(svc: Services, key: ApiKey, name: str, limit: int) -> list[Event]:
    """The automation's firings and action outcomes, newest first."""
    resource = f"{automations.AUTOMATION}.{name}"
    found = await list_events(
        svc,
        key,
        name=[],
        resource=resource,
        label=[],
        since=None,
        until=None,
        limit=limit,
        cursor=None,
    )
    return found.items


def as_yaml(automation: Automation) -> str:
    import yaml  # only for this page

    data = automation.model_dump(mode="json", include={"trigger", "actions"}, exclude_none=True)
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def summary(automation: Automation) -> str:
    """The trigger in one line: ``3 of pushpool.flow-run.Failed within 600 s per flow``."""
    return describe_trigger(automation.trigger.model_dump(mode="json", exclude_none=True))


async def _list_page(
    request: Request, svc: Services, key: ApiKey, *, yaml_text: str = "", error: str | None = None
) -> Response:
    rows: list[dict[str, Any]] = []
    for a in svc.store.list_automations():
        last = await history(svc, key, a.name, 1)
        rows.append({"a": a, "summary": summary(a), "last": last[0] if last else None})
    context = {"rows": rows, "yaml_text": yaml_text or EXAMPLE, "error": error}
    return page(request, "automations.html", context, status_code=422 if error else 200)


@router.get("/automations")
async def automations_page(request: Request, svc: ServicesDep, key: PageKey) -> Response:
    require_role(key, Role.DEPLOYER)  # as the API
    return await _list_page(request, svc, key)


@router.get("/automations/{name}")
async def automation_page(name: str, request: Request, svc: ServicesDep, key: PageKey) -> Response:
    require_role(key, Role.DEPLOYER)
    automation = svc.store.get_automation(name)
    context = {
        "a": automation,
        "summary": summary(automation),
        "yaml": as_yaml(automation),
        "history": await history(svc, key, name, HISTORY),
    }
    return page(request, "automation.html", context)


def _parse_yaml(text: str) -> AutomationCreate:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput("yaml", f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise InvalidInput("yaml", "must be a mapping with name, trigger and actions")
    body = check_model(AutomationCreate, data, "automation")
    assert isinstance(body, AutomationCreate)
    return body


@router.post("/automations")
async def create_automation(request: Request, svc: ServicesDep, key: DeployerPost) -> Response:
    """Create from the YAML textarea (the same model as ``POST /api/automations``)."""
    text = (await read_form(request)).get("yaml", "")
    try:
        body = _parse_yaml(text)
        created = await run_in_threadpool(automations.create, svc, body, key)
    except InvalidInput as exc:
        return await _list_page(request, svc, key, yaml_text=text, error=str(exc))
    return RedirectResponse(f"/automations/{created.name}", status_code=303)


async def _set_paused(svc: Services, name: str, paused: bool) -> Response:
    await run_in_threadpool(automations.set_paused, svc, name, paused)
    return RedirectResponse(f"/automations/{name}", status_code=303)


@router.post("/automations/{name}/pause")
async def pause(name: str, svc: ServicesDep, _: DeployerPost) -> Response:
    return await _set_paused(svc, name, True)


@router.post("/automations/{name}/resume")
async def resume(name: str, svc: ServicesDep, _: DeployerPost) -> Response:
    return await _set_paused(svc, name, False)


@router.post("/automations/{name}/delete")
async def delete(name: str, svc: ServicesDep, _: DeployerPost) -> Response:
    await run_in_threadpool(automations.delete, svc, name)
    return RedirectResponse("/automations", status_code=303)
