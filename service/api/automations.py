"""Automations: deployer keys create, list, inspect, pause, resume and delete them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from service import automations
from service.api.deps import DeployerKey, ServicesDep
from service.api.responses import PRIVILEGED, errors
from service.automation_records import Automation, AutomationCreate

router = APIRouter(prefix="/automations", tags=["automations"], responses=PRIVILEGED)


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(409, 413, 422))
def create_automation(body: AutomationCreate, svc: ServicesDep, key: DeployerKey) -> Automation:
    """A trigger and its actions (templates checked, notify URLs against the allowlist).
    A key limited to some pools may create only automations that notify."""
    return automations.create(svc, body, key)


@router.get("")
def list_automations(svc: ServicesDep, _: DeployerKey) -> list[Automation]:
    """Every automation, by name."""
    return svc.store.list_automations()


@router.get("/{name}", responses=errors(404))
def get_automation(name: str, svc: ServicesDep, _: DeployerKey) -> Automation:
    """One automation; its firings and outcomes are the events of resource
    ``pushpool.automation.<name>``."""
    return svc.store.get_automation(name)


@router.post("/{name}/pause", responses=errors(404))
def pause_automation(name: str, svc: ServicesDep, _: DeployerKey) -> Automation:
    """Stop reacting to events (queued actions still run)."""
    return automations.set_paused(svc, name, True)


@router.post("/{name}/resume", responses=errors(404))
def resume_automation(name: str, svc: ServicesDep, _: DeployerKey) -> Automation:
    return automations.set_paused(svc, name, False)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
def delete_automation(name: str, svc: ServicesDep, _: DeployerKey) -> Response:
    automations.delete(svc, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
