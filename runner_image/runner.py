"""Orchestration of one flow run: credential -> spec -> code -> RUNNING -> flow -> state.

Exit codes (the evidence a platform keeps when no report arrives; the reconciler maps
them, see ``service/reconcile.py``):

* ``0`` (:data:`EXIT_COMPLETED`): the flow completed, whether or not its result was
  delivered;
* ``1`` (:data:`EXIT_FAILED`): the flow failed (it raised, or its code, entrypoint or
  parameters were unusable);
* ``2`` (:data:`EXIT_BAD_ENVIRONMENT`): the environment does not describe a run;
* ``3`` (:data:`EXIT_RUNNER_FAULT`): the runner could not do its part (the credential
  exchange, the spec, the ``RUNNING`` report, or the service revoked the run): the flow
  did not run, or its outcome is unknown;
* ``130``/``143``: cancelled (SIGINT / SIGTERM or a cancellation from the service).

Delivery: every call to the service is retried for the delivery window (default 15
minutes) with backoff, so a control plane that restarts or is briefly unreachable costs
nothing; the flow's work is done by then. With ``PUSHPOOL_OUTCOME_FILE`` set (the process
pool sets it), the runner also leaves a small JSON outcome record there as soon as the
flow has ended: ``{"state", "exit_code", "reported"}``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import time
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
from runner_image.schema import record_schema, wants_schema
from runner_image.timeout import FlowTimeout, timed_out, timeout_seconds

if TYPE_CHECKING:
    from runner_image.source import SourceCheckout

EXIT_COMPLETED = 0
EXIT_FAILED = 1
EXIT_BAD_ENVIRONMENT = 2
EXIT_RUNNER_FAULT = 3
RUN_TOKEN_PREFIX = "ppr_"

#: The final report gets at least this long (or the window, if shorter), even when the
#: logs took the whole window.
MIN_REPORT_WINDOW = 30.0

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
    timeout_seconds: float | None = None

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
            timeout_seconds=timeout_seconds(data.get("timeout_seconds")),
        )


def run(config: RunnerConfig) -> int:
    """Execute the flow run described by ``config``; return the process exit code."""
    client = RunnerClient(config.api_url, config.flow_run_id)
    interrupter = Interrupter()
    interrupter.install()
    try:
        return _run(client, interrupter, config)
    finally:
        interrupter.uninstall()
        client.close()


def new_run_token() -> str:
    """``ppr_`` + 43 URL-safe characters (256 random bits): the runner's own run token.
    (``secrets`` costs ~15 ms to import at start-up; this is what it would do.)"""
    import base64

    return RUN_TOKEN_PREFIX + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def _run(client: RunnerClient, interrupter: Interrupter, config: RunnerConfig) -> int:
    record = OutcomeRecord(config.outcome_file)
    token = new_run_token()
    redact = Redactor(config.bootstrap, token, *config.secrets)
    setup_deadline = time.monotonic() + config.window
    try:
        client.exchange(config.bootstrap, token, setup_deadline)
        data = client.get_spec(setup_deadline)
    except ApiError as exc:
        _console(redact(f"could not start the run: {exc}"))
        return record.write(Outcome(None, EXIT_RUNNER_FAULT), reported=False)
    capture = LogCapture(
        client.send_logs,
        redact=redact,
        on_unauthorized=lambda: interrupter.trigger(Reason.UNAUTHORIZED),
        spool_dir=Path.cwd(),
        window=config.window,
    )
    capture.start()
    try:
        spec = FlowRunSpec.from_json(data)
    except SpecError as exc:
        return _finish(client, capture, None, _failed(exc), record, config.window, redact)
    heartbeat = Heartbeat(client.heartbeat, spec.heartbeat_seconds, interrupter.trigger)
    heartbeat.start()
    checkout: list[SourceCheckout] = []
    try:
        outcome = _execute(spec, client, interrupter, checkout, setup_deadline, redact)
        # Heartbeats go on while the outcome is delivered: the run is alive until then.
        root = checkout[0] if checkout else None
        return _finish(client, capture, root, outcome, record, config.window, redact)
    finally:
        heartbeat.stop()


def _execute(
    spec: FlowRunSpec,
    client: RunnerClient,
    interrupter: Interrupter,
    checkout: list[SourceCheckout],
    deadline: float,
    redact: Redactor,
) -> Outcome:
    try:
        with interrupter.armed():
            flow = _setup(spec, checkout)
    except BaseException as exc:
        return _outcome_for(exc, setup=True)
    if wants_schema(spec.source, spec.parameter_schema):
        record_schema(client, flow)
    if interrupter.reason is not None:  # stopped while setting up: never start
        return _cancelled(interrupter.reason)
    try:
        client.set_state("RUNNING", deadline=deadline)
    except Conflict as exc:
        return _not_started(f"the service refused RUNNING: {exc}")
    except ApiError as exc:
        return _not_started(f"could not report RUNNING: {exc}")
    logger.info("Running flow %r (%s)", spec.flow_name, spec.entrypoint)
    try:
        from runner_image.tasks import task_environment  # sdk: pushpool flows' task runs

        with (
            FlowTimeout(spec.timeout_seconds, interrupter.trigger),
            interrupter.armed(),
            task_environment(spec.id, client, redact.add),
        ):
            value = call_flow(flow, spec.parameters)
    except BaseException as exc:
        if interrupter.reason is Reason.TIMED_OUT:
            return timed_out(spec.timeout_seconds)
        return _outcome_for(exc, setup=False)
    if interrupter.delivered and interrupter.reason is not None:  # flow swallowed it
        if interrupter.reason is Reason.TIMED_OUT:
            return timed_out(spec.timeout_seconds)
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
        return Outcome(None, EXIT_RUNNER_FAULT)
    message = (
        "Flow run cancelled by the service"
        if reason is Reason.CANCELLING
        else f"Flow run cancelled ({reason.value} received)"
    )
    logger.warning("%s", message)
    return Outcome("CANCELLED", reason.exit_code, message=message)


def _not_started(message: str) -> Outcome:
    _console(f"{message}; the flow was not run")
    return Outcome(None, EXIT_RUNNER_FAULT)


def _finish(
    client: RunnerClient,
    capture: LogCapture,
    checkout: SourceCheckout | None,
    outcome: Outcome,
    record: OutcomeRecord,
    window: float,
    redact: Redactor,
) -> int:
    """Leave the outcome record, ship the logs, report the terminal state (each kept
    trying for ``window`` seconds), clean up; return the exit code, which says what
    the flow did whether or not the report got through."""
    outcome = redact_outcome(outcome, redact)
    record.write(outcome, reported=False)
    deadline = time.monotonic() + window
    capture.stop(deadline)
    reported = outcome.state is None
    try:
        if outcome.state is not None:
            client.set_state(
                outcome.state,
                message=outcome.message,
                result=outcome.result,
                error=outcome.error,
                deadline=max(deadline, time.monotonic() + min(window, MIN_REPORT_WINDOW)),
            )
            reported = True
    except ApiError as exc:
        _console(redact(f"could not report {outcome.state}: {exc}"))
    finally:
        if checkout is not None:
            checkout.cleanup()
    if reported and outcome.state is not None:
        record.write(outcome, reported=True)
    return outcome.exit_code


def redact_outcome(outcome: Outcome, redact: Redactor) -> Outcome:
    """The outcome with the run's secrets removed from its message and error."""
    error = None if outcome.error is None else {k: redact(v) for k, v in outcome.error.items()}
    message = None if outcome.message is None else redact(outcome.message)
    return Outcome(outcome.state, outcome.exit_code, message, outcome.result, error)


class OutcomeRecord:
    """The small JSON file the process pool's reconciler reads when no report came."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def write(self, outcome: Outcome, *, reported: bool) -> int:
        """Write (atomically) and return ``outcome.exit_code``; never raises."""
        if self.path is not None:
            data = {"state": outcome.state, "exit_code": outcome.exit_code, "reported": reported}
            tmp = self.path.with_name(self.path.name + ".tmp")
            try:
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.path)
            except OSError as exc:
                _console(f"could not write the outcome record: {exc}")
        return outcome.exit_code


def _console(message: str) -> None:
    print(f"pushpool-runner: {message}", file=sys.__stderr__ or sys.stderr, flush=True)
