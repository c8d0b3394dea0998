"""Listing and counting runs: which key answers a filter, so none needs a ``Scan``.

* by name, or by an id prefix of at least ``PREFIX_LEN`` characters: one ``Query`` of the
  ``RUNNAME#``/``RUNID#`` lookup items, then ``BatchGetItem`` of the runs they name (a
  handful: names are near-unique, a 4-character prefix is 1 run in 65,536);
* by when runs began (``RunFilter.by_began``, the default "most recent" listing): the
  ``by_began`` GSI;
* by a deployment: ``by_deployment``; by states: one ``by_state`` partition per state,
  merged; otherwise ``by_kind`` (``RUNS``). The last three are in expected-start order.

Other filters (pool, flow, tag, a state set on a deployment's or ``by_began`` listing)
are filter expressions on the chosen partition. ``count_runs`` queries the same key with
``Select=COUNT``: DynamoDB counts, and no item comes back.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from service.errors import InvalidInput
from service.store.base import Page, RunFilter
from service.store.dynamo._runkeys import BEGAN_PK, PREFIX_LEN
from service.store.dynamo._table import Item, _Expr, _order, from_ts
from service.store.dynamo.runs import RunsMixin

Source = tuple[str, str, str]  # (the index's partition-key attribute, its value, index)


@dataclass(frozen=True)
class _Plan:
    """How one filtered listing is read: partitions, key bounds, filter expression."""

    flt: RunFilter
    after: str | None  # the cursor: the sort key a page continues past

    @property
    def sources(self) -> list[Source]:
        flt = self.flt
        if flt.by_began:
            return [("gsi4pk", BEGAN_PK, "by_began")]
        if flt.deployment_id is not None:
            return [("gsi2pk", f"RUNDEP#{flt.deployment_id}", "by_deployment")]
        if flt.states:
            states = dict.fromkeys(s.value for s in flt.states)
            return [("gsi1pk", f"STATE#{s}", "by_state") for s in states]
        return [("gsi3pk", "RUNS", "by_kind")]

    @property
    def sk_name(self) -> str:
        return self.sources[0][0][:4] + "sk"

    @property
    def floor(self) -> str | None:
        return None if self.flt.since is None else _order(self.flt.since, "")

    @property
    def ceiling(self) -> str | None:
        return None if self.flt.before is None else _order(self.flt.before, "")

    def filt(self) -> Callable[[_Expr], str] | None:
        flt, index = self.flt, self.sources[0][2]

        def build(e: _Expr) -> str:
            parts = []
            if flt.work_pool is not None:
                parts.append(f"{e.n('work_pool')} = {e.v(flt.work_pool)}")
            if flt.deployment_id is not None and index != "by_deployment":
                parts.append(f"{e.n('deployment_id')} = {e.v(flt.deployment_id)}")
            if flt.states and index != "by_state":
                states = ", ".join(e.v(s.value) for s in flt.states)
                parts.append(f"{e.n('state_type')} IN ({states})")
            parts += _run_filter_parts(e, flt)
            return " AND ".join(parts)

        return build if build(_Expr()) else None

    def sk(self) -> Callable[[_Expr, str], str] | None:
        """Past the cursor, and from ``since`` on (oldest first) or below ``before``
        (newest first); the other bound is where the reader stops."""
        return _run_sk_condition(self.flt.ascending, self.after, self.floor, self.ceiling)

    def count_sk(self) -> tuple[bool, Callable[[_Expr, str], str] | None]:
        """``(True, the key condition that holds exactly the runs to count)``, or
        ``(False, None)`` when none does (a cursor and the far bound together)."""
        lo, hi = self.floor, self.ceiling
        if self.after is not None:
            if (hi if self.flt.ascending else lo) is not None:
                return False, None
            return True, self.sk()
        if lo is not None and hi is not None:  # no key equals a bound ("T#"): inclusive
            return True, lambda e, k: f"{e.n(k)} BETWEEN {e.v(lo)} AND {e.v(hi)}"
        if lo is not None:
            return True, lambda e, k: f"{e.n(k)} >= {e.v(lo)}"
        if hi is not None:
            return True, lambda e, k: f"{e.n(k)} < {e.v(hi)}"
        return True, None

    def beyond(self, key: str) -> bool:
        """Past the far bound: the reader stops (keys come in order)."""
        if self.floor is not None and key < self.floor:
            return True  # newest first: everything from here on is before `since`
        return self.ceiling is not None and key >= self.ceiling

    def within(self, key: str) -> bool:
        """Inside every bound, the cursor included (for runs read by name or prefix)."""
        if self.after is not None and (
            key <= self.after if self.flt.ascending else key >= self.after
        ):
            return False
        return not self.beyond(key)


class RunListingMixin(RunsMixin):
    def list_runs(self, flt: RunFilter, limit: int, cursor: str | None = None) -> Page:
        plan = _Plan(flt, None if cursor is None else _decode_cursor(cursor))
        rows = list(self._ref_rows(plan) if _by_ref(flt) else self._index_rows(plan, limit))
        items = [self._run(i) for i in rows[:limit]]
        if len(rows) <= limit or not items:
            return Page(items, None)
        return Page(items, _encode_cursor(rows[limit - 1][plan.sk_name]))

    def count_runs(
        self, flt: RunFilter, cursor: str | None = None, at_most: int | None = None
    ) -> int:
        plan = _Plan(flt, None if cursor is None else _decode_cursor(cursor))
        if _by_ref(flt):
            total = len(self._ref_rows(plan))
            return total if at_most is None else min(total, at_most)
        countable, sk = plan.count_sk()
        if not countable:  # rare: read and count instead
            return super().count_runs(flt, cursor, at_most)
        total = 0
        for pk_name, pk, index in plan.sources:
            left = None if at_most is None else at_most - total
            total += self._count(pk_name, pk, index=index, sk=sk, filt=plan.filt(), at_most=left)
            if at_most is not None and total >= at_most:
                return at_most
        return total

    def _index_rows(self, plan: _Plan, limit: int) -> Iterator[Item]:
        """Up to ``limit + 1`` runs from the plan's partitions, merged in key order."""
        filt = plan.filt()
        iters = [
            self._query(
                pk_name,
                pk,
                index=index,
                sk=plan.sk(),
                filt=filt,
                forward=plan.flt.ascending,
                page=None if filt else limit + 1,
            )
            for pk_name, pk, index in plan.sources
        ]
        key = plan.sk_name
        merged = heapq.merge(*iters, key=lambda i: i[key], reverse=not plan.flt.ascending)
        for n, item in enumerate(merged):
            if plan.beyond(item[key]) or n > limit:
                return
            yield item

    def _ref_rows(self, plan: _Plan) -> list[Item]:
        """Every run the name or id prefix names that the rest of the filter selects, in
        the listing's order, from the cursor on."""
        flt = plan.flt
        if flt.name is not None:
            refs = self._query("pk", f"RUNNAME#{flt.name}", consistent=True)
        else:
            prefix = flt.id_prefix or ""
            refs = self._query(
                "pk",
                f"RUNID#{prefix[:PREFIX_LEN]}",
                sk=lambda e, k: f"begins_with({e.n(k)}, {e.v(prefix)})",
                consistent=True,
            )
        items = self._batch_get([{"pk": f"RUN#{ref['sk']}", "sk": "RUN"} for ref in refs])
        key = plan.sk_name
        rows = [i for i in items if key in i and _matches(i, flt) and plan.within(i[key])]
        return sorted(rows, key=lambda i: i[key], reverse=not flt.ascending)


def _by_ref(flt: RunFilter) -> bool:
    """Whether the name or id prefix finds the runs (by their lookup items)."""
    return flt.name is not None or len(flt.id_prefix or "") >= PREFIX_LEN


def _matches(item: Item, flt: RunFilter) -> bool:
    """The filter's terms other than the key bounds, on a run item."""
    tags = json.loads(item.get("tags") or "[]")
    return (
        (flt.deployment_id is None or item.get("deployment_id") == flt.deployment_id)
        and (not flt.states or item["state_type"] in {s.value for s in flt.states})
        and (flt.work_pool is None or item["work_pool"] == flt.work_pool)
        and (flt.flow_name is None or item["flow_name"] == flt.flow_name)
        and (flt.name is None or item.get("name") == flt.name)
        and (flt.id_prefix is None or item["id"].startswith(flt.id_prefix))
        and (flt.tag is None or flt.tag in tags)
    )


def _run_filter_parts(e: _Expr, flt: RunFilter) -> list[str]:
    """Filter-expression terms for the run attributes no index is keyed on."""
    parts = []
    if flt.flow_name is not None:
        parts.append(f"{e.n('flow_name')} = {e.v(flt.flow_name)}")
    if flt.name is not None:
        parts.append(f"{e.n('name')} = {e.v(flt.name)}")
    if flt.id_prefix is not None:
        parts.append(f"begins_with({e.n('id')}, {e.v(flt.id_prefix)})")
    if flt.tag is not None:  # tags are stored as a JSON list
        parts.append(f"contains({e.n('tags')}, {e.v(json.dumps(flt.tag))})")
    return parts


def _run_sk_condition(
    ascending: bool, after: str | None, floor: str | None, ceiling: str | None
) -> Callable[[_Expr, str], str] | None:
    """The sort-key condition of a run listing: past the cursor, and from ``since`` on
    (oldest first) or below ``before`` (newest first); the other bound is where the caller
    stops reading."""
    if after is not None:
        op = ">" if ascending else "<"
        return lambda e, k: f"{e.n(k)} {op} {e.v(after)}"
    if ascending and floor is not None:
        return lambda e, k: f"{e.n(k)} >= {e.v(floor)}"
    if not ascending and ceiling is not None:
        return lambda e, k: f"{e.n(k)} < {e.v(ceiling)}"
    return None


def _encode_cursor(key: str) -> str:
    """The cursor of a page ending at the run whose sort key (``T#id``) is ``key``."""
    at, run_id = key.split("#", 1)
    raw = f"{from_ts(at).isoformat()}|{run_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    """The sort key (``T#id``) a page continues below."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, run_id = raw.split("|", 1)
        value = datetime.fromisoformat(start)
        if value.tzinfo is None:
            raise ValueError("naive")
        return _order(value, run_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this server issued") from exc
