"""AWS Lambda entry point: one handler, routed by the shape of the event.

- API Gateway HTTP API (payload 2.0) and REST API (1.0) proxy events go to the FastAPI
  app through Mangum.
- An EventBridge scheduled event runs one tick, stopping before the Lambda deadline.
- An EventBridge "ECS Task State Change" event for a task the service started reconciles
  that run at once (crash detection, teardown) instead of waiting for the next tick.
- Anything else is logged and ignored, never raised.

Nothing heavy is imported or built until an event needs it: a health request loads no
store and no provider SDK. Except where Lambda initialises ahead of any event (SnapStart
snapshots the initialised environment when a version is published; provisioned
concurrency keeps it warm): there everything is built at import, once, so restores and
warm environments start with it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mangum import Mangum

    from service.services import Services

log = logging.getLogger("pushpool.lambda")

#: Stop starting new work this long before the Lambda deadline.
DEADLINE_MARGIN = timedelta(seconds=10)

Event = Mapping[str, Any]


class LambdaContext(Protocol):
    """The part of the Lambda context object we use (the shape is AWS's, not ours)."""

    def get_remaining_time_in_millis(self) -> int: ...


class EventKind(StrEnum):
    HTTP = "http"
    SCHEDULE = "schedule"
    ECS_TASK = "ecs-task"
    UNKNOWN = "unknown"


def classify(event: object) -> EventKind:
    if not isinstance(event, Mapping):
        return EventKind.UNKNOWN
    context = event.get("requestContext")
    if isinstance(context, Mapping) and (
        (event.get("version") == "2.0" and "http" in context) or "httpMethod" in event
    ):
        return EventKind.HTTP
    source, detail_type = event.get("source"), event.get("detail-type")
    if source == "aws.events" and detail_type == "Scheduled Event":
        return EventKind.SCHEDULE
    if source == "aws.ecs" and detail_type == "ECS Task State Change":
        return EventKind.ECS_TASK
    return EventKind.UNKNOWN


@contextlib.contextmanager
def _long_lived_objects() -> Iterator[None]:
    """Build what lives as long as the execution environment with the collector paused.

    Importing FastAPI, building the routes' schemas, importing boto3 and loading its
    service models allocate hundreds of thousands of objects that are never freed; the
    collector's passes over them (one full pass alone took 30 ms) are pure cold-start
    cost. Afterwards they are frozen out of the generations, so later collections during
    requests stay short too.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@functools.cache
def services() -> Services:
    """Built once per execution environment, on the first event that needs it."""
    with _long_lived_objects():
        from service.bootstrap import ensure_key_from_secret
        from service.services import build_services
        from service.settings import get_settings

        svc = build_services(get_settings())
        if svc.settings.admin_api_key_secret_arn:
            ensure_key_from_secret(svc, svc.settings.admin_api_key_secret_arn)
    return svc


@functools.cache
def _http_adapter() -> Mangum:
    with _long_lived_objects():
        from mangum import Mangum

        from service.app import create_app

        return Mangum(create_app(services=services), lifespan="off")


def handler(event: Event, context: LambdaContext) -> Any:
    try:
        kind = classify(event)
        if kind == EventKind.HTTP:
            return _http_adapter()(dict(event), context)  # type: ignore[arg-type]
        if kind == EventKind.SCHEDULE:
            return tick(context)
        if kind == EventKind.ECS_TASK:
            return ecs_task_changed(event)
    except Exception:  # an event must never fail the function: log it, retry next tick
        log.exception("handling a %s event failed", classify(event))
        return {"handled": False}
    log.warning("ignored an event of unknown shape (keys: %s)", sorted(event)[:10])
    return {"ignored": True}


def tick(context: LambdaContext) -> dict[str, Any]:
    import dataclasses

    svc = services()
    now = svc.clock()
    remaining = timedelta(milliseconds=context.get_remaining_time_in_millis())
    report = svc.scheduler.tick(now, deadline=now + remaining - DEADLINE_MARGIN)
    return dataclasses.asdict(report)


def ecs_task_changed(event: Event) -> dict[str, Any]:
    """Reconcile the run of a task the service started, as soon as ECS says it stopped."""
    detail = event.get("detail") or {}
    if detail.get("lastStatus") != "STOPPED":
        return {"handled": False, "reason": "task not stopped"}
    run_id = _run_id(detail)
    if run_id is None:
        return {"handled": False, "reason": "not a pushpool task"}
    svc = services()
    outcome = svc.scheduler.reconciler.reconcile_run(
        run_id, str(detail.get("taskArn")), svc.clock()
    )
    return {"handled": True, "run_id": run_id, "outcome": outcome}


def _run_id(detail: Mapping[str, Any]) -> str | None:
    """The run id from the task's environment overrides, else from ``startedBy``."""
    for override in (detail.get("overrides") or {}).get("containerOverrides", []):
        for pair in override.get("environment", []):
            if pair.get("name") == "PUSHPOOL_FLOW_RUN_ID":
                return str(pair.get("value"))
    started_by = str(detail.get("startedBy", ""))
    try:
        return str(uuid.UUID(started_by))
    except ValueError:
        return None


#: ``AWS_LAMBDA_INITIALIZATION_TYPE`` values for which init runs ahead of any event.
AHEAD_OF_TIME = frozenset({"snap-start", "provisioned-concurrency"})


def prime() -> None:
    """Build the app and the services (store, clients, the bootstrap key) now; if that
    fails, the first event that needs them builds them instead."""
    try:
        _http_adapter()
        services()
    except Exception:
        log.exception("building the function ahead of time failed; the first event will")


if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") in AHEAD_OF_TIME:
    prime()
