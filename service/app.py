"""The FastAPI application, built by :func:`create_app` (no import-time globals)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from service.api import (
    api_keys,
    concurrency_limits,
    deployments,
    errors,
    flow_runs,
    health,
    runner,
    scheduler,
    task_runs,
    work_pools,
)
from service.api.limits import BodySizeLimit
from service.services import Services

log = logging.getLogger("pushpool.server")


def seconds_until_next_tick(svc: Services) -> float:
    """The tick interval, or less when a scheduled run falls due sooner."""
    now = svc.clock()
    interval = svc.settings.tick_interval_seconds
    upcoming = svc.store.next_scheduled_start(now)
    if upcoming is None:
        return interval
    return min(interval, max(0.01, (upcoming - now).total_seconds()))


async def tick_loop(svc: Services) -> None:
    """The in-process scheduler: a tick every ``tick_interval_seconds``, and one as soon
    as a scheduled run falls due."""
    while True:
        delay = svc.settings.tick_interval_seconds
        try:
            await run_in_threadpool(svc.scheduler.tick, svc.clock())
            delay = await run_in_threadpool(seconds_until_next_tick, svc)
        except Exception:
            log.exception("tick failed; trying again next interval")
        await asyncio.sleep(delay)


def create_app(
    svc: Services | None = None,
    *,
    run_scheduler: bool = False,
    services: Callable[[], Services] | None = None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """The API. Give ``svc``, or a ``services`` factory called on the first request that
    needs them (so a health check on a cold Lambda loads no store and no SDK)."""
    if svc is None and services is None:
        raise TypeError("create_app needs svc or a services factory")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything imported and built so far lives as long as the process: keep it out
        # of the collector's generations so collections stay short (tail latency).
        gc.freeze()
        task = asyncio.create_task(tick_loop(svc)) if run_scheduler and svc else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="pushpool",
        version="0.1.0",
        description="Push flow runs to serverless infrastructure. Authenticate with "
        "`Authorization: Bearer <api key>`.",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.state.services_factory = services
    # With a prefix FastAPI builds an included route on first use, not at include time.
    for module in (
        health,
        work_pools,
        deployments,
        flow_runs,
        runner,
        api_keys,
        scheduler,
        task_runs,  # sdk: task runs and their graph
        concurrency_limits,  # sdk: tag concurrency limits
    ):
        app.include_router(module.router, prefix="/api")
    errors.install(app)
    limit = max_body_bytes or (svc.settings.max_body_bytes if svc else 1_048_576)
    app.add_middleware(BodySizeLimit, max_bytes=limit)
    return app
