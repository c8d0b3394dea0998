"""Who read which block: one event per read by a run's flow code, through
:func:`service.events.record` (issue 15's one function to record an event).

``pushpool.block.read`` about ``pushpool.block.<type>/<name>``, related to the flow run
(and its deployment and pool); the payload names the attempt, never a value.
"""

from __future__ import annotations

from service import events
from service.event_records import Resource
from service.models import FlowRun
from service.services import Services

BLOCK = "pushpool.block"


def block_read(svc: Services, run: FlowRun, ref: str) -> None:
    """Record that ``run`` (attempt ``run.run_count``) read block ``ref``."""
    slug, _, name = ref.partition("/")
    events.record(
        svc.store,
        f"{BLOCK}.read",
        Resource(id=f"{BLOCK}.{ref}", labels={"type": slug, "name": name}),
        now=svc.clock(),
        related=[events.run_resource(run), *events.run_related(run)],
        payload={"attempt": run.run_count},
    )
