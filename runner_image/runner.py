"""Orchestration of one flow run: spec -> code -> RUNNING -> flow -> terminal state."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner_image.client import ApiError, Conflict, RunnerClient
from runner_image.config import RunnerConfig
from runner_image.errors import SetupError, SpecError
from runner_image.heartbeat import Heartbeat, heartbeat_interval
from runner_image.interrupts import FlowInterrupted, Interrupter, Reason
from runner_image.logs import LogCapture, Redactor
from runner_image.outcome import Outcome, error_payload, serialize_result

if TYPE_CHECKING:
    from runner_image.source import SourceCheckout

EXIT_COMPLETED = 0
EXIT_FAILED = 1

logger = logging.getLogger("pushpool.runner")


@dataclass(frozen=True)
class FlowRunSpec:
    id: str
    flow_name: str
    entrypoint: str
    source: Mapping[str, Any] | None
    parameters: Mapping[str, Any]
    parameter_schema: Mapping[str, Any] | None
    heartbeat_seconds: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlowRunSpec:
        parameters = data.get("parameters") or {}
        schema = data.get("parameter_schema")
        source = data.get("source")
        if not isinstance(parameters, dict):
            raise SpecError("spec 'parameters' is not an object")
        if schema is not None and not isinstance(schema, dict):
            raise SpecError("spec 'parameter_schema' is not an object")
        if source is not None and not isinstance(source, dict):
            raise SpecError("spec 'source' is not an object")
        return cls(
            id=str(data.get("id", "")),
            flow_name=str(data.get("flow_name") or "flow"),
            entrypoint=data.get("entrypoint") or "",
            source=source,
            parameters=parameters,
            parameter_schema=schema,
            heartbeat_seconds=heartbeat_interval(data.get("heartbeat_seconds")),
        )


def run(config: RunnerConfig) -> int:
    """Execute the flow run described by ``config``; return the process exit code."""
    client = RunnerClient(config.api_url, config.flow_run_id, config.token)
    interrupter = Interrupter()
    interrupter.install()
    try:
        return _run(client, interrupter, Redactor(config.token))
    finally:
        interrupter.uninstall()
        client.close()


def _run(client: RunnerClient, interrupter: Interrupter, redact: Redactor) -> int:
    try:
        data = client.get_spec()
    except ApiError as exc:
        _console(f"could not fetch the flow run spec: {exc}")
        return EXIT_FAILED
    capture = LogCapture(
        client.send_logs,
        redact=redact,
        on_unauthorized=lambda: interrupter.trigger(Reason.UNAUTHORIZED),
    )
    capture.start()
    try:
        spec = FlowRunSpec.from_json(data)
    except SpecError as exc:
        return _finish(client, capture, None, _failed(exc))
    heartbeat = Heartbeat(client.heartbeat, spec.heartbeat_seconds, interrupter.trigger)
    heartbeat.start()
    checkout: list[SourceCheckout] = []
    try:
        outcome = _execute(spec, client, interrupter, checkout)
    finally:
        heartbeat.stop()
    return _finish(client, capture, checkout[0] if checkout else None, outcome)


def _execute(
    spec: FlowRunSpec,
    client: RunnerClient,
    interrupter: Interrupter,
    checkout: list[SourceCheckout],
) -> Outcome:
    try:
        with interrupter.armed():
            flow = _setup(spec, checkout)
    except BaseException as exc:
        return _outcome_for(exc, setup=True)
    if interrupter.reason is not None:  # stopped while setting up: never start
        return _cancelled(interrupter.reason)
    try:
        client.set_state("RUNNING")
    except Conflict as exc:
        return _not_started(f"the service refused RUNNING: {exc}")
    except ApiError as exc:
        return _not_started(f"could not report RUNNING: {exc}")
    logger.info("Running flow %r (%s)", spec.flow_name, spec.entrypoint)
    try:
        from runner_image.tasks import task_environment  # sdk: pushpool flows' task runs

        with interrupter.armed(), task_environment(spec.id, client):  # sdk
            value = call_flow(flow, spec.parameters)
    except BaseException as exc:
        return _outcome_for(exc, setup=False)
    if interrupter.delivered and interrupter.reason is not None:  # flow swallowed it
        return _cancelled(interrupter.reason)
    return _completed(value)


def _setup(spec: FlowRunSpec, checkout: list[SourceCheckout]) -> Callable[..., Any]:
    from runner_image.entrypoint import load_flow
    from runner_image.parameters import validate_parameters
    from runner_image.source import prepare_source

    source_type = (spec.source or {}).get("type", "image")
    logger.info("Preparing %s source for flow %r", source_type, spec.flow_name)
    checkout.append(prepare_source(spec.source, Path.cwd()))
    flow = load_flow(checkout[0].root, spec.entrypoint)
    validate_parameters(flow, spec.parameters, spec.parameter_schema)
    return flow


def call_flow(flow: Callable[..., Any], parameters: Mapping[str, Any]) -> Any:
    """Call ``flow(**parameters)``; coroutines are run to completion with asyncio."""
    value = flow(**parameters)
    if inspect.iscoroutine(value):
        import asyncio

        return asyncio.run(value)
    return value


# -- outcomes ---------------------------------------------------------------------


def _outcome_for(exc: BaseException, *, setup: bool) -> Outcome:
    if isinstance(exc, FlowInterrupted):
        return _cancelled(exc.reason)
    if isinstance(exc, SystemExit) and exc.code in (0, None) and not setup:
        return _completed(None)
    return _failed(exc)


def _completed(value: Any) -> Outcome:
    logger.info("Flow run completed")
    return Outcome("COMPLETED", EXIT_COMPLETED, result=serialize_result(value))


def _failed(exc: BaseException) -> Outcome:
    error = error_payload(exc)
    phase = "could not start" if isinstance(exc, SetupError) else "failed"
    message = f"Flow run {phase}: {error['type']}: {error['message']}"
    logger.error("%s", message)
    return Outcome("FAILED", EXIT_FAILED, message=message, error=error)


def _cancelled(reason: Reason) -> Outcome:
    if reason is Reason.UNAUTHORIZED:
        _console("the service revoked this run's token (401); stopping without reporting")
        return Outcome(None, EXIT_FAILED)
    message = (
        "Flow run cancelled by the service"
        if reason is Reason.CANCELLING
        else f"Flow run cancelled ({reason.value} received)"
    )
    logger.warning("%s", message)
    return Outcome("CANCELLED", reason.exit_code, message=message)


def _not_started(message: str) -> Outcome:
    _console(f"{message}; the flow was not run")
    return Outcome(None, EXIT_FAILED)


def _finish(
    client: RunnerClient,
    capture: LogCapture,
    checkout: SourceCheckout | None,
    outcome: Outcome,
) -> int:
    """Flush logs, report the terminal state, clean up; return the exit code."""
    capture.stop()
    try:
        if outcome.state is not None:
            client.set_state(
                outcome.state, message=outcome.message, result=outcome.result, error=outcome.error
            )
    except ApiError as exc:
        _console(f"could not report {outcome.state}: {exc}")
        if outcome.state != "CANCELLED":
            return EXIT_FAILED
    finally:
        if checkout is not None:
            checkout.cleanup()
    return outcome.exit_code


def _console(message: str) -> None:
    print(f"pushpool-runner: {message}", file=sys.__stderr__ or sys.stderr, flush=True)
