from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from service.api.deps import ApiKeyDep, ServicesDep

router = APIRouter(prefix="/scheduler", tags=["scheduler"])


@router.post("/tick")
def tick(svc: ServicesDep, _: ApiKeyDep) -> dict[str, Any]:
    """Run one tick now: materialise, skip missed, dispatch, reconcile."""
    report = svc.scheduler.tick(svc.clock())
    return dataclasses.asdict(report)
