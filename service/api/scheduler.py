from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from service.api.deps import DeployerKey, ServicesDep
from service.api.responses import PRIVILEGED

router = APIRouter(prefix="/scheduler", tags=["scheduler"], responses=PRIVILEGED)


@router.post("/tick")
def tick(svc: ServicesDep, _: DeployerKey) -> dict[str, Any]:
    """Run one tick now: materialise, skip missed, dispatch, reconcile."""
    report = svc.scheduler.tick(svc.clock())
    return dataclasses.asdict(report)
