"""Deployments and schedules: the name item, the deployment item and its counter, the
pools' ``deployments`` counts, schedules, and the tick (due schedules, materialising).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

from botocore.exceptions import ClientError

from service.errors import (
    BlockNotFound,
    Conflict,
    DeploymentNotFound,
    InvalidInput,
    PoolNotFound,
)
from service.models import (
    Deployment,
    ScheduleRecord,
)
from service.store.base import (
    Materialisation,
)
from service.store.dynamo._table import (
    _RETRIES,
    Item,
    _cancelled,
    _code,
    _cond,
    _enc,
    _Expr,
    _opt_ts,
    _order,
    _update,
    from_ts,
    ts,
)
from service.store.dynamo.blocks import block_use_op
from service.store.dynamo.pools import _pool_count
from service.store.dynamo.runs import RunsMixin


def _dep_guard(old: Item | None) -> Callable[[_Expr], str]:
    """The condition that the deployment item is still as read (``old``, or missing) as far
    as the counters go: the pool it is counted in and the blocks it is a user of."""
    if old is None:
        return lambda e: "attribute_not_exists(pk)"

    def same(e: _Expr, attr: str) -> str:
        value = old.get(attr)
        if value is None:  # written before that counter: counted nowhere
            return f"attribute_not_exists({e.n(attr)})"
        return f"{e.n(attr)} = {e.v(value)}"

    return lambda e: f"attribute_exists(pk) AND {same(e, 'counted_in')} AND {same(e, 'blocks_in')}"


def _blocks_in(item: Item | None) -> set[str]:
    """The blocks whose ``users`` the deployment item is counted in."""
    if item is None or item.get("blocks_in") is None:
        return set()
    return set(json.loads(item["blocks_in"]))


#: The most operations one ``TransactWriteItems`` takes.
_MAX_TRANSACTION = 100


def _check_size(deployment: Deployment, ops: list[dict[str, Any]]) -> None:
    """``InvalidInput`` (nothing written) when one deploy changes more block references,
    with its schedules, than one transaction can write."""
    if len(ops) > _MAX_TRANSACTION:
        raise InvalidInput(
            "blocks",
            f"deployment {deployment.flow_name}/{deployment.name} changes too many block "
            f"references at once with its schedules ({len(ops)} writes, at most "
            f"{_MAX_TRANSACTION}): change its blocks in two steps",
        )


class DeploymentsMixin(RunsMixin):
    # -- deployments ---------------------------------------------------------------------
    @staticmethod
    def _name_key(flow_name: str, name: str) -> Item:
        return {"pk": "DEPNAME#" + json.dumps([flow_name, name]), "sk": "DEPNAME"}

    @staticmethod
    def _deployment_item(d: Deployment) -> Item:
        return {
            "pk": f"DEP#{d.id}",
            "sk": "DEP",
            "doc": d.model_dump_json(),
            "flow_name": d.flow_name,
            "name": d.name,
            "work_pool": d.work_pool,
            "counted_in": d.work_pool,
            "blocks_in": json.dumps(sorted(set(d.blocks))),
            "paused": d.paused,
            "gsi3pk": "DEPS",
            "gsi3sk": d.id,
        }

    def _deployment_items(self) -> Iterator[Item]:
        return self._query("gsi3pk", "DEPS", index="by_kind")

    def upsert_deployment(
        self, deployment: Deployment, schedules: list[ScheduleRecord]
    ) -> tuple[Deployment, bool]:
        """One transaction writes the name (on create), the deployment item, its counter
        and the pools' ``deployments`` counters: +1 on the pool it names, conditional on
        that pool existing (which is the ``PoolNotFound`` check: no read before, so a pool
        deleted meanwhile cannot be missed), -1 on the pool it was counted in before. The
        deployment item's write is conditional on the pool it was counted in (as read), so
        a concurrent replace or delete makes it read again. The schedules are written in
        the same transaction (at most 20 puts and 20 deletes: the whole stays within the
        100 operations a transaction takes); the ``SCHEDULED`` runs of schedules removed or
        deactivated are deleted after it. The blocks it newly lists count it as a user
        and those it no longer lists stop (``service.store.dynamo.blocks``), in the same
        transaction; a block missing is the ``BlockNotFound``."""
        name_key = self._name_key(deployment.flow_name, deployment.name)
        gone: set[str] = set()  # old pools found missing (hand-edited): nothing to give back
        gone_blocks: set[str] = set()  # likewise, blocks
        for _ in range(_RETRIES):
            existing = self._get(name_key["pk"], name_key["sk"])
            created = existing is None
            stored = deployment
            if existing is not None:
                stored = deployment.model_copy(
                    update={"id": existing["id"], "created_at": from_ts(existing["created_at"])}
                )
            item = _enc(self._deployment_item(stored))
            counter = _update(
                {"pk": f"CNT#{stored.id}", "sk": "CNT"},
                set_={"concurrency_limit": stored.concurrency_limit},
            )
            was: str | None = None
            old: Item | None = None
            if created:
                ref = name_key | {"id": stored.id, "created_at": ts(stored.created_at)}
                ops: list[dict[str, Any]] = [
                    {"Put": {"Item": _enc(ref), "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"Item": item}},
                    {"Update": counter},
                ]
            else:
                old = self._deployment_doc(stored.id)
                was = None if old is None else old.get("counted_in")
                ops = [{"Put": {"Item": item} | _cond(_dep_guard(old))}, {"Update": counter}]
            new_at = len(ops)
            # Counted there already: +0, only to check that the pool still exists (an
            # Update, not a condition check op, which would need another IAM action).
            ops.append(_pool_count(stored.work_pool, 0 if was == stored.work_pool else +1))
            was_at = len(ops)
            if was is not None and was != stored.work_pool and was not in gone:
                ops.append(_pool_count(was, -1))
            uses_at = len(ops)
            uses = self._block_uses(stored, old, gone_blocks)
            ops += [op for _, op in uses]
            schedule_ops, stopped = self._schedule_ops(stored, schedules)
            ops += schedule_ops  # last: the reasons' indices above stay as they are
            _check_size(stored, ops)
            try:
                self._transact(ops)
            except ClientError as exc:
                reasons = _cancelled(exc)
                if reasons[new_at] == "ConditionalCheckFailed":
                    raise PoolNotFound(stored.work_pool) from exc
                if was_at < uses_at and reasons[was_at] == "ConditionalCheckFailed":
                    assert was is not None
                    gone.add(was)
                    continue
                failed = [
                    use
                    for (use, _), reason in zip(uses, reasons[uses_at:], strict=False)
                    if reason == "ConditionalCheckFailed"
                ]
                if failed and reasons[0] == "None":
                    block, added = failed[0]
                    if added:
                        raise BlockNotFound(block) from exc
                    gone_blocks.add(block)  # a block it was a user of is gone (hand-edited)
                    continue
                if reasons[0] != "None":
                    continue  # the name or the item changed meanwhile: read again
                raise
            if stopped:
                self._delete_scheduled_runs(stored.id, schedule_ids=stopped)
            return stored, created
        raise Conflict(f"deployment {deployment.flow_name}/{deployment.name} is contended")

    @staticmethod
    def _block_uses(
        deployment: Deployment, old: Item | None, gone: set[str]
    ) -> list[tuple[tuple[str, bool], dict[str, Any]]]:
        """``((ref, added), op)`` for each block the deployment newly lists (added to its
        ``users``) or no longer lists (removed), skipping blocks found ``gone``."""
        before, after = _blocks_in(old), set(deployment.blocks)
        out = [
            ((ref, True), block_use_op(ref, deployment.id, add=True))
            for ref in sorted(after - before)
        ]
        out += [
            ((ref, False), block_use_op(ref, deployment.id, add=False))
            for ref in sorted(before - after - gone)
        ]
        return out

    @staticmethod
    def _schedule_item(
        rec: ScheduleRecord, deployment: Deployment, cursor: datetime | None
    ) -> Item:
        item: Item = {
            "pk": f"SCHED#{rec.id}",
            "sk": "SCHED",
            "gsi2pk": f"SCHEDS#{deployment.id}",
            "gsi2sk": rec.id,
            "id": rec.id,
            "deployment_id": deployment.id,
            "doc": rec.schedule.model_dump_json(),
            "active": rec.active,
            "next_fire_at": None if cursor is None else ts(cursor),
        }
        if rec.active and cursor is not None and not deployment.paused:
            item |= {"gsi3pk": "SCHED", "gsi3sk": _order(cursor, rec.id)}
        return item

    def _schedule_items(self, deployment_id: str) -> list[Item]:
        return list(self._query("gsi2pk", f"SCHEDS#{deployment_id}", index="by_deployment"))

    def _schedule_ops(
        self, deployment: Deployment, records: list[ScheduleRecord]
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """The transaction ops that make the deployment's schedules ``records`` (an
        unchanged active schedule keeps its cursor), and the ids of the schedules whose
        ``SCHEDULED`` runs must go (removed or deactivated)."""
        old = {i["id"]: i for i in self._schedule_items(deployment.id)}
        new_ids = {r.id for r in records}
        gone = {sid for sid in old if sid not in new_ids}
        gone |= {r.id for r in records if r.id in old and old[r.id]["active"] and not r.active}
        ops: list[dict[str, Any]] = [
            {"Delete": {"Key": _enc({"pk": f"SCHED#{sid}", "sk": "SCHED"})}}
            for sid in sorted(old)
            if sid not in new_ids
        ]
        for r in records:
            cursor: datetime | None = r.next_fire_at if r.active else None
            if r.id in old and r.active and old[r.id]["active"]:
                stored = old[r.id].get("next_fire_at")
                cursor = None if stored is None else from_ts(stored)
            ops.append({"Put": {"Item": _enc(self._schedule_item(r, deployment, cursor))}})
        return ops, gone

    def _delete_scheduled_runs(
        self, deployment_id: str, *, schedule_ids: set[str] | None = None, auto_only: bool = True
    ) -> int:
        n = 0
        for item in self._query(
            "gsi2pk",
            f"RUNDEP#{deployment_id}",
            index="by_deployment",
            filt=lambda e: f"{e.n('state_type')} = {e.v('SCHEDULED')}",
        ):
            if auto_only and not item.get("auto_scheduled"):
                continue
            if schedule_ids is not None and item.get("schedule_id") not in schedule_ids:
                continue
            n += self._delete_run(item)
        return n

    def _deployment_doc(self, deployment_id: str) -> Item | None:
        return self._get(f"DEP#{deployment_id}", "DEP")

    def get_deployment(self, deployment_id: str) -> Deployment:
        item = self._deployment_doc(deployment_id)
        if item is None:
            raise DeploymentNotFound(deployment_id)
        return Deployment.model_validate_json(item["doc"])

    def find_deployment(self, flow_name: str, name: str) -> Deployment:
        key = self._name_key(flow_name, name)
        ref = self._get(key["pk"], key["sk"])
        item = None if ref is None else self._deployment_doc(ref["id"])
        if item is None:
            raise DeploymentNotFound(f"{flow_name}/{name}")
        return Deployment.model_validate_json(item["doc"])

    def list_deployments(self, *, work_pool: str | None = None) -> list[Deployment]:
        items = [
            i for i in self._deployment_items() if work_pool is None or i["work_pool"] == work_pool
        ]
        items.sort(key=lambda i: (i["flow_name"], i["name"]))
        return [Deployment.model_validate_json(i["doc"]) for i in items]

    def delete_deployment(self, deployment_id: str) -> None:
        """The deployment, its name and its schedules go in one transaction (a deployment
        has at most 20 schedules, well inside the 100 items a transaction takes), so no
        cut-short delete leaves a schedule firing for a deployment that is gone. Its
        ``SCHEDULED`` runs are deleted after, each conditionally; any a cut-short delete
        leaves still end: their runner finds no deployment and the run fails.

        The same transaction gives back the deployment's count on the pool it is counted
        in, conditional on the pool existing (an ``Update`` would otherwise create a bare
        pool item). That pool cannot have been deleted while the count held it, so the
        condition fails only for items edited by hand; the delete then goes ahead without
        it rather than leaving a deployment nobody can delete."""
        skip_pool = False
        gone_blocks: set[str] = set()
        for _ in range(_RETRIES):
            old = self._deployment_doc(deployment_id)
            if old is None:
                raise DeploymentNotFound(deployment_id)
            counted = old.get("counted_in")
            ops: list[dict[str, Any]] = [
                {
                    "Delete": {"Key": _enc({"pk": f"DEP#{deployment_id}", "sk": "DEP"})}
                    | _cond(_dep_guard(old))
                },
                {"Delete": {"Key": _enc(self._name_key(old["flow_name"], old["name"]))}},
                # Runs left behind no longer count against a deployment limit.
                {
                    "Update": _update(
                        {"pk": f"CNT#{deployment_id}", "sk": "CNT"}, remove=["concurrency_limit"]
                    )
                },
            ]
            pool_at: int | None = None
            if counted is not None and not skip_pool:
                pool_at = len(ops)
                ops.append(_pool_count(counted, -1))
            uses_at = len(ops)
            released = sorted(_blocks_in(old) - gone_blocks)
            ops += [block_use_op(ref, deployment_id, add=False) for ref in released]
            ops += [
                {"Delete": {"Key": _enc({"pk": s["pk"], "sk": s["sk"]})}}
                for s in self._schedule_items(deployment_id)
            ]
            try:
                self._transact(ops)
            except ClientError as exc:
                reasons = _cancelled(exc)
                if reasons[0] != "None":
                    continue  # deleted or moved to another pool meanwhile: read again
                if pool_at is not None and reasons[pool_at] == "ConditionalCheckFailed":
                    skip_pool = True
                    continue
                lost = [
                    ref
                    for ref, reason in zip(released, reasons[uses_at:], strict=False)
                    if reason == "ConditionalCheckFailed"
                ]
                if lost:  # a block it was a user of is gone (hand-edited): nothing to release
                    gone_blocks.update(lost)
                    continue
                raise
            break
        else:
            raise Conflict(f"deployment {deployment_id} is contended")
        self._delete_scheduled_runs(deployment_id, auto_only=False)
        # The deployment's logs go with it (its other runs stay, as records).
        runs = self._query("gsi2pk", f"RUNDEP#{deployment_id}", index="by_deployment")
        self.delete_logs(run_ids=[item["id"] for item in runs])

    def get_schedules(self, deployment_id: str) -> list[ScheduleRecord]:
        return [self._schedule(i) for i in self._schedule_items(deployment_id)]

    @staticmethod
    def _schedule(item: Item) -> ScheduleRecord:
        return ScheduleRecord(
            id=item["id"],
            deployment_id=item["deployment_id"],
            schedule=json.loads(item["doc"]),
            next_fire_at=_opt_ts(item.get("next_fire_at")),
            active=bool(item["active"]),
        )

    # -- the tick ------------------------------------------------------------------------
    def due_schedules(self, until: datetime, limit: int) -> list[tuple[ScheduleRecord, Deployment]]:
        if limit <= 0:
            return []
        bound = ts(until) + "$"  # '#' < '$': every sort key at or before ``until``
        items = list(
            islice(
                self._query(
                    "gsi3pk",
                    "SCHED",
                    index="by_kind",
                    sk=lambda e, k: f"{e.n(k)} < {e.v(bound)}",
                    page=limit,
                ),
                limit,
            )
        )
        deps = self._deployments_by_id({i["deployment_id"] for i in items})
        found: list[tuple[ScheduleRecord, Deployment]] = []
        for item in items:
            dep = deps.get(item["deployment_id"])
            if dep is None:
                # A schedule outliving its deployment (written by a version of this store
                # that deleted them one by one) would sit at the head of the index for
                # ever, taking a due slot each tick: drop it.
                self._delete(item["pk"], item["sk"])
            elif not dep.paused and item["active"]:
                found.append((self._schedule(item), dep))
        return found

    def get_deployments(self, deployment_ids: Iterable[str]) -> dict[str, Deployment]:
        return self._deployments_by_id(set(deployment_ids))

    def _deployments_by_id(self, ids: Iterable[str]) -> dict[str, Deployment]:
        """BatchGetItem, 100 keys a call."""
        items = self._batch_get([{"pk": f"DEP#{i}", "sk": "DEP"} for i in sorted(ids)])
        found = (Deployment.model_validate_json(item["doc"]) for item in items)
        return {d.id: d for d in found}

    def materialise(self, batch: Sequence[Materialisation]) -> int:
        created = 0
        for m in batch:
            for run in m.runs:
                created += self._insert_run(run)
        for m in batch:
            if m.next_fire_at is not None:
                self._move_cursor(m.schedule_id, m.next_fire_at)
        return created

    def _move_cursor(self, schedule_id: str, at: datetime) -> None:
        """One conditional UpdateItem. ``gsi3sk`` is always set: without ``gsi3pk`` (inactive
        or paused) the schedule stays out of the due index all the same."""
        set_: Item = {"next_fire_at": ts(at), "gsi3sk": _order(at, schedule_id)}

        def cond(e: _Expr) -> str:
            nf = e.n("next_fire_at")
            return (
                f"attribute_exists(pk) AND {e.n('active')} = {e.v(True)} AND "
                f"(attribute_not_exists({nf}) OR {nf} < {e.v(ts(at))})"
            )

        try:
            self._upd(_update({"pk": f"SCHED#{schedule_id}", "sk": "SCHED"}, set_=set_, cond=cond))
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    def reset_schedules(self, deployment_id: str, cursors: dict[str, datetime | None]) -> int:
        n = self._delete_scheduled_runs(deployment_id)
        doc = self._deployment_doc(deployment_id)
        dep = None if doc is None else Deployment.model_validate_json(doc["doc"])
        for item in self._schedule_items(deployment_id):
            if item["id"] not in cursors:
                continue
            cursor = cursors[item["id"]]
            indexed = cursor is not None and item["active"] and dep is not None and not dep.paused
            self._upd(
                _update(
                    {"pk": item["pk"], "sk": item["sk"]},
                    set_={
                        "next_fire_at": None if cursor is None else ts(cursor),
                        "gsi3pk": "SCHED" if indexed else None,
                        "gsi3sk": _order(cursor, item["id"]) if indexed and cursor else None,
                    },
                )
            )
        return n
