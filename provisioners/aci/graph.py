"""Many container groups' instance states in one call: Azure Resource Graph.

ARM's list of container groups leaves instance views out, so reading each group's state
from ARM costs one GET per group. Resource Graph (``POST /providers/
Microsoft.ResourceGraph/resources``, ``azure-mgmt-resourcegraph``) answers one KQL query
over ``microsoft.containerinstance/containergroups`` with up to 1,000 rows per page,
each with the properties the provider returns on GET: ``provisioningState``, the
group's ``instanceView.state`` and the flow container's ``currentState``.

Freshness (Resource Graph's documented model): ARM notifies it of every write (PUT,
stop, DELETE), so what pushpool does shows within seconds; a container ending on its own
is not an ARM write and reaches the index with Resource Graph's periodic full scan, whose
delay is not documented. So a row is a hint: a group it says is still running is taken
as running (a run whose container died unseen is still caught by the reconciler's
heartbeat timeout, which stops it), and a group it says has ended, or that it lacks, is
read with a GET, which is authoritative and has the exit code and events. A row a GET
found stale (the graph still says ``Waiting`` of a running group) is remembered
(:class:`RunningMemo`), so the GET is not repeated until the row changes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from provisioners.aci.arm import ArmClient
from provisioners.aci.names import POOL_TAG

#: Rows per page (Resource Graph's maximum).
PAGE = 1000
#: Container states that end a run; a row in one of them is confirmed with a GET.
ENDED = frozenset({"Terminated"})
ENDED_GROUP = frozenset({"Stopped", "Succeeded", "Failed"})


def _literal(text: str) -> str:
    """A KQL string literal (single quotes; backslash and quote escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def pool_query(resource_group: str, pool: str) -> str:
    """The KQL for one pool's container groups in one resource group."""
    return (
        "resources"
        " | where type =~ 'microsoft.containerinstance/containergroups'"
        f" and resourceGroup =~ {_literal(resource_group)}"
        f" and tags[{_literal(POOL_TAG)}] == {_literal(pool)}"
        " | project name, provisioningState = tostring(properties.provisioningState),"
        " groupState = tostring(properties.instanceView.state),"
        " containerState = tostring(properties.containers[0].properties.instanceView"
        ".currentState.state)"
    )


@dataclass(frozen=True)
class GraphRow:
    """What Resource Graph last indexed of one group ("" where it has nothing)."""

    provisioning_state: str
    group_state: str
    container_state: str

    @property
    def running(self) -> bool:
        """Indexed as running with nothing ended: no GET needed."""
        return (
            self.provisioning_state == "Succeeded"
            and self.container_state == "Running"
            and self.group_state not in ENDED_GROUP
        )


class RunningMemo:
    """Rows a GET confirmed running. While Resource Graph keeps showing a group exactly so
    (it has indexed no change since), the group is still believed running: an index that
    lags on runtime changes costs one GET per group, not one per group per pass. Bounded
    (cleared past :attr:`MAX` entries: only ever an extra GET)."""

    MAX = 10_000

    def __init__(self) -> None:
        self._rows: dict[str, GraphRow] = {}
        self._lock = threading.Lock()

    def believed_running(self, rows: dict[str, GraphRow], name: str) -> bool:
        row = rows.get(name)
        with self._lock:
            return row is not None and (row.running or self._rows.get(name) == row)

    def confirm(self, rows: dict[str, GraphRow], name: str) -> None:
        """A GET found ``name`` running while the graph showed ``rows[name]``."""
        row = rows.get(name)
        if row is None:
            return
        with self._lock:
            if len(self._rows) >= self.MAX:
                self._rows.clear()
            self._rows[name] = row


def _row(item: dict[str, Any]) -> GraphRow:
    return GraphRow(
        str(item.get("provisioningState") or ""),
        str(item.get("groupState") or ""),
        str(item.get("containerState") or ""),
    )


def pool_states(arm: ArmClient, resource_group: str, pool: str) -> dict[str, GraphRow]:
    """Group name (lowercased) -> its row, one call per 1,000 groups."""
    from azure.mgmt.resourcegraph import models

    client = arm.client("graph")
    rows: dict[str, GraphRow] = {}
    skip_token: str | None = None
    while True:
        request = models.QueryRequest(
            subscriptions=[arm.subscription_id],
            query=pool_query(resource_group, pool),
            options=models.QueryRequestOptions(
                top=PAGE, skip_token=skip_token, result_format="objectArray"
            ),
        )
        answer = arm.call(
            "Microsoft.ResourceGraph/resources (query)", partial(client.resources, request)
        )
        for item in answer.data or []:
            rows[str(item["name"]).lower()] = _row(item)
        skip_token = answer.skip_token
        if not skip_token:
            return rows
