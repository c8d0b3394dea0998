"""The keys by which runs are found without reading others: by when they began (the
``by_began`` GSI, attributes on the run item) and by name or id prefix (one small item
each, written and deleted in the run's own transactions)."""

from __future__ import annotations

from datetime import datetime

from service.models import FlowRun, StateRecord
from service.store.base import began_at
from service.store.dynamo._table import Item, _order, ts
from service.vocabulary import StateType

#: Id characters a ``RUNID#`` item is keyed on: an id prefix at least this long is found
#: by one Query of that partition (a shorter one falls back to a filtered listing).
PREFIX_LEN = 4
BEGAN_PK = "BEGAN"


def began_attrs(run_id: str, at: datetime | None) -> Item:
    """The run item's ``began_at`` and ``by_began`` keys (nothing while it has not begun)."""
    if at is None:
        return {}
    return {"began_at": ts(at), "gsi4pk": BEGAN_PK, "gsi4sk": _order(at, run_id)}


def began_on_insert(run: FlowRun) -> datetime | None:
    """A run created in a state other than ``SCHEDULED`` has begun as it is made."""
    if run.state.type == StateType.SCHEDULED:
        return None
    return began_at(StateType.SCHEDULED, run.state, {"start_time": run.start_time})


def began_on_transition(
    leaving: StateType, state: StateRecord, fields: dict[str, object]
) -> datetime | None:
    return began_at(leaving, state, dict(fields))


def ref_keys(run_id: str, name: str | None) -> list[Item]:
    """The keys of the run's lookup items: by id prefix and (when it has one) by name."""
    keys = [{"pk": f"RUNID#{run_id[:PREFIX_LEN]}", "sk": run_id}]
    if name:
        keys.append({"pk": f"RUNNAME#{name}", "sk": run_id})
    return keys
