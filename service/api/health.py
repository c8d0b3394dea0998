from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness. Public, like the API description at ``/openapi.json`` and ``/docs``."""
    return {"status": "ok"}
