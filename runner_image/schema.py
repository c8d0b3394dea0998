"""An ``image`` source's parameter schema, recorded on its deployment by a run.

The code of an image source is not on the machine that deploys it, so its deployment
may have no schema. The runner that loads the flow derives one from the function's
annotations (``pushpool.parameters.parameters_schema``: the pydantic rules the flow's
parameters are validated with) and sends it through the run's own credentials; the
service keeps it only while the deployment has none. A failure here never fails the run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger("pushpool.runner")


class SchemaSink(Protocol):
    def record_parameter_schema(self, schema: dict[str, Any]) -> bool: ...


def wants_schema(source: Any, schema: Any) -> bool:
    """An image source (the default) whose deployment has no schema yet."""
    kind = (source or {}).get("type", "image") if isinstance(source, dict) else "image"
    return schema is None and kind == "image"


def record_schema(client: SchemaSink, flow: Callable[..., Any]) -> None:
    """Derive ``flow``'s parameter schema and record it; log (not raise) what fails."""
    try:
        from pushpool.parameters import parameters_schema

        recorded = client.record_parameter_schema(parameters_schema(inspect.unwrap(flow)))
    except Exception as exc:  # the schema is a convenience; the run goes on
        logger.warning("Could not record the flow's parameter schema: %s", exc)
        return
    if recorded:
        logger.info("Recorded the flow's parameter schema on its deployment")
