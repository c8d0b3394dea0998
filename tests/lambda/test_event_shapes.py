"""The Lambda event samples, and the events the tests build from them, have AWS's shapes.

Each sample in EVENTS_DIR is validated with the aws-lambda-powertools parser model of its
kind, and ``classify()`` must route it to that kind. The EventBridge models are narrowed
to the ``source`` / ``detail-type`` pair ``classify()`` keys on; ECS has no powertools
model, so the "ECS Task State Change" detail is modelled here, limited to the fields the
handler reads.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any, Literal

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayProxyEventV2Model,
    EventBridgeModel,
)
from pydantic import BaseModel, Field, ValidationError
from support.factories import EVENTS_DIR, ecs_task_stopped_event, http_v2_event, sample_event

from service import lambda_handler
from service.lambda_handler import EventKind, classify

RUN_ID_VAR = "PUSHPOOL_FLOW_RUN_ID"


class HttpApiV2Event(APIGatewayProxyEventV2Model):
    # classify() takes a payload as 2.0 only when it says so.
    version: Literal["2.0"]


class ScheduledEvent(EventBridgeModel):
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


class EnvironmentVariable(BaseModel):
    name: str
    value: str


class ContainerOverride(BaseModel):
    environment: list[EnvironmentVariable] = Field(default_factory=list)


class TaskOverrides(BaseModel):
    containerOverrides: list[ContainerOverride] = Field(default_factory=list)


class EcsTaskStateChangeDetail(BaseModel):
    """What ``ecs_task_changed()`` reads; ``startedBy`` and ``overrides`` may be absent."""

    lastStatus: str
    taskArn: str
    startedBy: str | None = None
    overrides: TaskOverrides | None = None


class EcsTaskStateChange(EventBridgeModel):
    source: Literal["aws.ecs"]
    detail_type: Literal["ECS Task State Change"] = Field(alias="detail-type")
    detail: EcsTaskStateChangeDetail


#: The kind of event each model describes: what classify() must answer for it.
MODEL_KINDS: dict[type[BaseModel], EventKind] = {
    HttpApiV2Event: EventKind.HTTP,
    APIGatewayProxyEventModel: EventKind.HTTP,
    ScheduledEvent: EventKind.SCHEDULE,
    EcsTaskStateChange: EventKind.ECS_TASK,
}

#: Every sample in EVENTS_DIR and its model; a sample missing here fails the suite.
SAMPLE_MODELS: dict[str, type[BaseModel]] = {
    "apigw-http-v2-get.json": HttpApiV2Event,
    "apigw-rest-v1-get.json": APIGatewayProxyEventModel,
    "eventbridge-scheduled.json": ScheduledEvent,
    "ecs-task-state-change-stopped.json": EcsTaskStateChange,
}

#: Top-level fields a sample lacks although AWS always sends them, with the value AWS
#: sends. The model must reject the sample for exactly these fields and accept it once
#: they are added; when ../shared/events is fixed, drop the entry (the test says so).
#: (Empty since the scheduled event in ../shared/events gained its "version": "0".)
KNOWN_GAPS: dict[str, dict[str, Any]] = {}

SAMPLE_FILES = sorted(p.name for p in EVENTS_DIR.glob("*.json"))


def as_sent_by_aws(name: str) -> dict[str, Any]:
    """The sample ``name`` with its KNOWN_GAPS filled in."""
    return {**sample_event(name), **KNOWN_GAPS.get(name, {})}


def error_locations(model: type[BaseModel], event: dict[str, Any]) -> set[tuple[Any, ...]]:
    """Where ``model`` rejects ``event`` (empty when it accepts it)."""
    try:
        model.model_validate(event)
    except ValidationError as exc:
        return {tuple(error["loc"]) for error in exc.errors()}
    return set()


def test_every_sample_has_a_model() -> None:
    assert SAMPLE_FILES, f"no event samples in {EVENTS_DIR}"
    assert set(SAMPLE_FILES) == set(SAMPLE_MODELS), "map each sample to its model"
    assert set(KNOWN_GAPS) <= set(SAMPLE_MODELS)


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_validates_with_its_model(name: str) -> None:
    assert name in SAMPLE_MODELS, f"{name}: no model in SAMPLE_MODELS"
    model = SAMPLE_MODELS[name]
    gaps = KNOWN_GAPS.get(name, {})
    rejected = error_locations(model, sample_event(name))
    assert rejected == {(field,) for field in gaps}, (
        f"{name}: {model.__name__} rejects {sorted(rejected)}"
        + (f"; drop its KNOWN_GAPS entry {gaps}" if gaps and not rejected else "")
    )
    model.model_validate(as_sent_by_aws(name))


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_classify_agrees_with_the_model(name: str) -> None:
    assert name in SAMPLE_MODELS, f"{name}: no model in SAMPLE_MODELS"
    event = as_sent_by_aws(name)
    assert classify(event) == MODEL_KINDS[SAMPLE_MODELS[name]]
    # The samples keep the handler's routing honest only if no other model takes them.
    accepted_by = [m.__name__ for m in MODEL_KINDS if not error_locations(m, event)]
    assert accepted_by == [SAMPLE_MODELS[name].__name__]


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path
        node = event
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _set(value: Any, *path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        *parents, last = path
        node = event
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _set_run_id(value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(event: dict[str, Any]) -> None:
        overrides = event["detail"]["overrides"]["containerOverrides"]
        overrides[0]["environment"][0]["value"] = value

    return mutate


V2, V1 = "apigw-http-v2-get.json", "apigw-rest-v1-get.json"
SCHEDULED, ECS = "eventbridge-scheduled.json", "ecs-task-state-change-stopped.json"


@pytest.mark.parametrize(
    ("name", "mutate", "rejected_at", "classified_as"),
    [
        (V2, _drop("requestContext", "http"), ("requestContext", "http"), EventKind.UNKNOWN),
        (V2, _set("1.0", "version"), ("version",), EventKind.UNKNOWN),
        (
            V2,
            _set("get", "requestContext", "http", "method"),
            ("requestContext", "http", "method"),
            EventKind.HTTP,
        ),
        (V1, _drop("httpMethod"), ("httpMethod",), EventKind.UNKNOWN),
        (V1, _drop("requestContext"), ("requestContext",), EventKind.UNKNOWN),
        (SCHEDULED, _set("aws.ecs", "source"), ("source",), EventKind.UNKNOWN),
        (SCHEDULED, _set("Object Created", "detail-type"), ("detail-type",), EventKind.UNKNOWN),
        (ECS, _set("ECS Service Action", "detail-type"), ("detail-type",), EventKind.UNKNOWN),
        (ECS, _drop("detail", "lastStatus"), ("detail", "lastStatus"), EventKind.ECS_TASK),
        (ECS, _drop("detail", "taskArn"), ("detail", "taskArn"), EventKind.ECS_TASK),
        (ECS, _set(7, "detail", "startedBy"), ("detail", "startedBy"), EventKind.ECS_TASK),
        (
            ECS,
            _set_run_id(None),
            ("detail", "overrides", "containerOverrides", 0, "environment", 0, "value"),
            EventKind.ECS_TASK,
        ),
    ],
    ids=[
        "v2-no-http",
        "v2-version-1.0",
        "v2-lowercase-method",
        "v1-no-httpMethod",
        "v1-no-requestContext",
        "scheduled-wrong-source",
        "scheduled-wrong-detail-type",
        "ecs-wrong-detail-type",
        "ecs-no-lastStatus",
        "ecs-no-taskArn",
        "ecs-startedBy-not-a-string",
        "ecs-run-id-not-a-string",
    ],
)
def test_a_broken_sample_is_rejected(
    name: str,
    mutate: Callable[[dict[str, Any]], None],
    rejected_at: tuple[str | int, ...],
    classified_as: EventKind,
) -> None:
    event = copy.deepcopy(as_sent_by_aws(name))
    mutate(event)
    rejected = error_locations(SAMPLE_MODELS[name], event)
    assert any(loc[: len(rejected_at)] == rejected_at for loc in rejected), sorted(rejected)
    assert classify(event) == classified_as


def test_the_ecs_sample_carries_what_the_handler_reads() -> None:
    parsed = EcsTaskStateChange.model_validate(sample_event(ECS))
    detail = parsed.detail
    assert detail.lastStatus == "STOPPED"
    assert detail.taskArn.startswith("arn:aws:ecs:")
    assert detail.overrides is not None
    run_ids = [
        pair.value
        for override in detail.overrides.containerOverrides
        for pair in override.environment
        if pair.name == RUN_ID_VAR
    ]
    assert len(run_ids) == 1 and str(uuid.UUID(run_ids[0])) == run_ids[0]
    assert lambda_handler._run_id(sample_event(ECS)["detail"]) == run_ids[0]


@pytest.mark.parametrize(
    ("path", "key", "method"),
    [
        ("/api/health", None, "GET"),
        ("/api/work-pools", None, "GET"),
        ("/api/work-pools", "pp_key", "GET"),
        ("/api/deployments", "pp_key", "POST"),
        ("/api/flow-runs/123", "pp_key", "DELETE"),
    ],
)
def test_built_http_v2_events_validate(path: str, key: str | None, method: str) -> None:
    event = http_v2_event(path, key, method)
    parsed = HttpApiV2Event.model_validate(event)
    assert parsed.rawPath == parsed.requestContext.http.path == path
    assert parsed.requestContext.http.method == method
    assert parsed.body is None and parsed.cookies is None
    assert parsed.headers.get("authorization") == (f"Bearer {key}" if key else None)
    assert classify(event) == EventKind.HTTP


def test_built_http_v2_event_with_an_unknown_method_is_rejected() -> None:
    rejected = error_locations(HttpApiV2Event, http_v2_event("/api/health", method="FETCH"))
    assert rejected == {("requestContext", "http", "method")}


def test_built_rest_v1_event_validates() -> None:
    # As test_handler feeds the REST sample: its headers plus a JSON content type.
    event = sample_event(V1)
    event["headers"] = {**event.get("headers", {}), "content-type": "application/json"}
    APIGatewayProxyEventModel.model_validate(event)
    assert classify(event) == EventKind.HTTP


def test_built_ecs_task_stopped_event_validates() -> None:
    run_id = str(uuid.uuid4())
    task_arn = "arn:aws:ecs:us-east-1:123456789012:task/demo/abc123"
    cluster_arn = "arn:aws:ecs:us-east-1:123456789012:cluster/demo"
    event = ecs_task_stopped_event(task_arn, run_id, cluster_arn)
    parsed = EcsTaskStateChange.model_validate(event)
    assert parsed.detail.taskArn == task_arn and event["detail"]["clusterArn"] == cluster_arn
    assert lambda_handler._run_id(event["detail"]) == run_id
    assert classify(event) == EventKind.ECS_TASK
