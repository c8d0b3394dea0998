"""Who read which block: one record per read by a run's flow code.

INTEGRATOR: the events feature (issue 15, branch ``events``) was not available when
this was written; :func:`block_read` is the one place to wire to its "record an event"
function. Until then a read is recorded on the ``pushpool.events`` logger (the server's
log; CloudWatch on Lambda), never with a value.
"""

from __future__ import annotations

import logging

from service.models import FlowRun
from service.services import Services

log = logging.getLogger("pushpool.events")


def block_read(svc: Services, run: FlowRun, ref: str) -> None:
    """Record that ``run`` (attempt ``run.run_count``) read block ``ref``."""
    log.info(
        "block.read ref=%s flow_run=%s attempt=%s deployment=%s at=%s",
        ref,
        run.id,
        run.run_count,
        run.deployment_id,
        svc.clock().isoformat(),
    )
