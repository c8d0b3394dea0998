"""A deployment's parameter schema recorded by its runner's first look at the code.

An ``image`` source's code is not on the deploying machine, so ``pushpool deploy
--image`` cannot read the flow's signature. The runner of its first run has the code:
it derives the schema from the flow's annotations (pydantic, the rules it validates
parameters with) and sends it through the run's own credentials. The service takes it
only while the deployment has no schema (one given at deploy time always wins, and
the first recorded one is kept), checks it is a JSON Schema the service can validate
with in bounded time, and caps its size; later runs' parameters are then checked with
it at the API (422), like a schema given at deploy time.
"""

from __future__ import annotations

import json

from service.errors import Conflict, DeploymentNotFound, InvalidInput
from service.models import BoundedDict, FlowRun, Strict
from service.services import Services
from service.validation import check_json_schema

#: The largest schema a runner may record (compact JSON).
MAX_SCHEMA_BYTES = 64 * 1024


class SchemaReport(Strict):
    """What the runner sends: the schema of its flow's parameters."""

    parameter_schema: BoundedDict


def record(svc: Services, run: FlowRun, schema: dict[str, object]) -> None:
    """Record ``schema`` on ``run``'s deployment. ``InvalidInput`` (too large, not a valid
    JSON Schema), ``Conflict`` (the deployment has a schema already: nothing changes),
    ``DeploymentNotFound``."""
    if run.deployment_id is None:
        raise DeploymentNotFound("(none)")
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > MAX_SCHEMA_BYTES:
        raise InvalidInput(
            "parameter_schema", f"is {size} bytes of JSON; at most {MAX_SCHEMA_BYTES} are kept"
        )
    check_json_schema(schema)
    if not svc.store.record_parameter_schema(run.deployment_id, schema, svc.clock()):
        raise Conflict("the deployment has a parameter schema already; it is kept")
