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
    automations,
    block_types,
    blocks,
    concurrency_limits,
    deployments,
    errors,
    events,
    flow_runs,
    health,
    runner,
    scheduler,
    task_runs,
    webhooks,
    work_pools,
)
from service.api.limits import BodySizeLimit
from service.api.responses import errors as error_responses
from service.api.responses import exact_openapi
from service.services import Services
from service.web import router as dashboard

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
    as a scheduled run falls due - also one that became due sooner while the loop slept
    (a retry after ``retry_delay_seconds``): ``svc.wake()`` makes it look again."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(woken.set)

    svc.wake = wake
    while True:
        woken.clear()  # what the tick sees needs no wake-up
        delay = svc.settings.tick_interval_seconds
        try:
            await run_in_threadpool(svc.scheduler.tick, svc.clock())
            delay = await run_in_threadpool(seconds_until_next_tick, svc)
        except Exception:
            log.exception("tick failed; trying again next interval")
        await _sleep_or_wake(svc, woken, delay)


async def _sleep_or_wake(svc: Services, woken: asyncio.Event, delay: float) -> None:
    """Sleep ``delay`` seconds; on a wake-up, sleep only until the next run is due."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + delay
    while (left := deadline - clock()) > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), left)
            woken.clear()
            sooner = await run_in_threadpool(seconds_until_next_tick, svc)
            deadline = min(deadline, asyncio.get_running_loop().time() + sooner)


#: (A 422 is added to those that take a body.)
RUNNER_ERRORS = error_responses(401, 404, 409, 413, 429)


def _document_exactly(app: FastAPI) -> None:
    """``/openapi.json`` lists exactly what each operation answers (built once, cached)."""
    build = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            app.openapi_schema = exact_openapi(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
        "`Authorization: Bearer <api key>`; a key's role (viewer, deployer, admin) decides "
        "what it may do. This document (`/openapi.json`, `/docs`) and `/api/health` are "
        "public.",
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
        api_keys,
        scheduler,
        task_runs,  # sdk: task runs and their graph
        concurrency_limits,  # sdk: tag concurrency limits
        block_types,  # blocks
        blocks,  # blocks
        events,
        webhooks,
        automations,
    ):
        app.include_router(module.router, prefix="/api")
    # The runner's routes take a run token; what they answer besides success:
    for runner_router in (
        runner.router,
        task_runs.runner_router,
        concurrency_limits.runner_router,
        blocks.runner_router,  # blocks
    ):
        app.include_router(runner_router, prefix="/api", responses=RUNNER_ERRORS)
    app.include_router(dashboard)  # the web dashboard at / (service/web)
    app.include_router(events.runner_router, prefix="/api", responses=RUNNER_ERRORS)
    app.include_router(webhooks.hooks_router, prefix="/api")
    errors.install(app)
    _document_exactly(app)
    limit = max_body_bytes or (svc.settings.max_body_bytes if svc else 1_048_576)
    app.add_middleware(BodySizeLimit, max_bytes=limit)
    return app
