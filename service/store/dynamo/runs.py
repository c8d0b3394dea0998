"""Flow runs and claims: run items, their history, idempotency keys, the concurrency
counters a claim or transition moves, listings, and the teardown queue.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.errors import (
    AlreadyExists,
    Conflict,
    IllegalTransition,
    RunNotFound,
)
from service.models import (
    FlowRun,
    InfraRef,
    StateRecord,
    Teardown,
)
from service.store.base import (
    TransitionEffects,
)
from service.store.dynamo._runkeys import (
    began_attrs,
    began_on_insert,
    began_on_transition,
    ref_keys,
)
from service.store.dynamo._table import (
    _RETRIES,
    _RUN_JSON,
    _RUN_TIMES,
    Item,
    _cancelled,
    _code,
    _cond,
    _enc,
    _Expr,
    _limit_ok,
    _order,
    _reasons,
    _Table,
    _update,
    from_ts,
    ts,
)
from service.vocabulary import ACTIVE, StateType


def _key_free(ref: Item | None) -> Callable[[_Expr], str]:
    """The condition for taking an idempotency key: nobody holds it, or it names the run
    ``ref`` read, which is gone (its delete was cut short, by a store version that deleted
    a run and its key apart) — unless another creator has taken it over meanwhile."""
    if ref is None:
        return lambda e: "attribute_not_exists(pk)"
    was = ref["run_id"]
    return lambda e: f"attribute_not_exists(pk) OR {e.n('run_id')} = {e.v(was)}"


class RunsMixin(_Table):
    # -- runs ----------------------------------------------------------------------------
    @staticmethod
    def _run_item(run: FlowRun, hist_n: int = 1) -> Item:
        data = run.model_dump(mode="json", exclude={"state"})
        item: Item = {"pk": f"RUN#{run.id}", "sk": "RUN", "hist_n": hist_n}
        for k, v in data.items():
            if k in _RUN_TIMES:
                item[k] = None if getattr(run, k) is None else ts(getattr(run, k))
            elif k in _RUN_JSON:
                item[k] = None if v is None else json.dumps(v)
            else:
                item[k] = v
        order = _order(run.expected_start, run.id)
        item |= {
            "token_hash": run.token_hash,
            "state_type": run.state.type.value,
            "state_name": run.state.name,
            "state_message": run.state.message,
            "state_timestamp": ts(run.state.timestamp),
            "gsi1pk": f"STATE#{run.state.type.value}",
            "gsi1sk": order,
            "gsi2pk": None if run.deployment_id is None else f"RUNDEP#{run.deployment_id}",
            "gsi2sk": order,
            "gsi3pk": "RUNS",
            "gsi3sk": order,
        }
        return item | began_attrs(run.id, began_on_insert(run))

    @staticmethod
    def _history_item(run_id: str, n: int, state: StateRecord) -> Item:
        return {
            "pk": f"RUN#{run_id}",
            "sk": f"HIST#{n:010d}",
            "type": state.type.value,
            "name": state.name,
            "message": state.message,
            "timestamp": ts(state.timestamp),
        }

    @staticmethod
    def _run(item: Item) -> FlowRun:
        data: Item = {}
        for k in FlowRun.model_fields:
            if k == "state":
                continue
            v = item.get(k)
            if v is not None and k in _RUN_TIMES:
                v = from_ts(v)
            elif v is not None and k in _RUN_JSON:
                v = json.loads(v)
            if v is not None:
                data[k] = v
        data.setdefault("deployment_id", None)
        data["state"] = StateRecord(
            type=StateType(item["state_type"]),
            name=item["state_name"],
            message=item.get("state_message"),
            timestamp=from_ts(item["state_timestamp"]),
        )
        return FlowRun.model_validate(data)

    @staticmethod
    def _counter_ops(run: FlowRun | Item, delta: int) -> list[dict[str, Any]]:
        """Unconditional changes of the ``active`` counters a run counts against."""
        pool = run.work_pool if isinstance(run, FlowRun) else run["work_pool"]
        dep = run.deployment_id if isinstance(run, FlowRun) else run.get("deployment_id")
        ops = [{"Update": _update({"pk": "POOL", "sk": pool}, add={"active": delta})}]
        if dep is not None:
            ops.append(
                {"Update": _update({"pk": f"CNT#{dep}", "sk": "CNT"}, add={"active": delta})}
            )
        return ops

    def _run_item_or_raise(self, run_id: str) -> Item:
        item = self._get(f"RUN#{run_id}", "RUN")
        if item is None:
            raise RunNotFound(run_id)
        return item

    def create_run(self, run: FlowRun) -> tuple[FlowRun, bool]:
        if run.idempotency_key is None:
            if not self._insert_run(run):
                raise AlreadyExists("flow run", run.id)
            return run, True
        idem = {
            "pk": f"IDEM#{run.deployment_id}#{run.idempotency_key}",
            "sk": "IDEM",
            "run_id": run.id,
        }
        for _ in range(_RETRIES):
            ref = self._get(idem["pk"], "IDEM")
            if ref is not None:
                existing = self._get(f"RUN#{ref['run_id']}", "RUN")
                if existing is not None:
                    return self._run(existing), False
            guard = {"Put": {"Item": _enc(idem)} | _cond(_key_free(ref))}
            try:
                if not self._insert_run(run, [guard]):
                    raise AlreadyExists("flow run", run.id)
                return run, True
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                time.sleep(0.002)  # the key was taken meanwhile: return that run
        raise Conflict(f"idempotency key {run.idempotency_key!r} is contended")

    def get_run(self, run_id: str) -> FlowRun:
        return self._run(self._run_item_or_raise(run_id))

    def state_history(self, run_id: str) -> list[StateRecord]:
        self._run_item_or_raise(run_id)
        return [
            StateRecord(
                type=StateType(h["type"]),
                name=h["name"],
                message=h.get("message"),
                timestamp=from_ts(h["timestamp"]),
            )
            for h in self._query(
                "pk",
                f"RUN#{run_id}",
                sk=lambda e, k: f"begins_with({e.n(k)}, {e.v('HIST#')})",
                consistent=True,
            )
        ]

    def claim_due_runs(
        self,
        now: datetime,
        limit: int,
        issue_token: Callable[[str], str],
        *,
        run_ids: Iterable[str] | None = None,
    ) -> list[FlowRun]:
        if limit <= 0:
            return []
        candidates: Iterable[Item]
        if run_ids is None:
            candidates = self._query(
                "gsi1pk",
                "STATE#SCHEDULED",
                index="by_state",
                sk=lambda e, k: f"{e.n(k)} < {e.v(ts(now) + '$')}",
                page=max(limit * 4, 25),
            )
        else:
            found = [self._get(f"RUN#{i}", "RUN") for i in dict.fromkeys(run_ids)]
            candidates = sorted(
                (
                    i
                    for i in found
                    if i is not None
                    and i["state_type"] == "SCHEDULED"
                    and from_ts(i["expected_start"]) <= now
                ),
                key=lambda i: i["gsi1sk"],
            )
        pools: dict[str, Item | None] = {}
        full_pools: set[str] = set()
        full_deps: set[str] = set()
        claimed: list[FlowRun] = []
        for item in candidates:
            if len(claimed) >= limit:
                break
            pool_name, dep = item["work_pool"], item.get("deployment_id")
            if pool_name not in pools:
                pools[pool_name] = self._get("POOL", pool_name)
            pool = pools[pool_name]
            if pool is None or pool.get("paused") or pool_name in full_pools or dep in full_deps:
                continue
            result = self._claim_one(item, now, issue_token)
            if isinstance(result, FlowRun):
                claimed.append(result)
            elif result == "pool":
                full_pools.add(pool_name)
            elif result == "deployment" and dep is not None:
                full_deps.add(dep)
        return claimed

    def _claim_one(
        self, item: Item, now: datetime, issue_token: Callable[[str], str]
    ) -> FlowRun | str:
        """Claim one run; the run, or why not: ``lost``, ``pool``, ``deployment``."""
        run_id, n = item["id"], int(item["hist_n"])
        token = issue_token(run_id)
        state = StateRecord(type=StateType.PENDING, name="Pending", timestamp=now)
        stamp = ts(now)

        def run_cond(e: _Expr) -> str:
            return f"{e.n('state_type')} = {e.v('SCHEDULED')} AND {e.n('hist_n')} = {e.v(n)}"

        def pool_cond(e: _Expr) -> str:
            return f"attribute_exists(pk) AND {e.n('paused')} = {e.v(False)} AND {_limit_ok(e)}"

        ops: list[dict[str, Any]] = [
            {
                "Update": _update(
                    {"pk": f"RUN#{run_id}", "sk": "RUN"},
                    set_={
                        "state_type": "PENDING",
                        "state_name": "Pending",
                        "state_timestamp": stamp,
                        "updated_at": stamp,
                        "token_hash": token,
                        "hist_n": n + 1,
                        "gsi1pk": "STATE#PENDING",
                    }
                    | began_attrs(run_id, now),
                    remove=["state_message", "infra"],
                    add={"run_count": 1},
                    cond=run_cond,
                )
            },
            {"Put": {"Item": _enc(self._history_item(run_id, n + 1, state))}},
            {
                "Update": _update(
                    {"pk": "POOL", "sk": item["work_pool"]}, add={"active": 1}, cond=pool_cond
                )
            },
        ]
        if item.get("deployment_id") is not None:
            ops.append(
                {
                    "Update": _update(
                        {"pk": f"CNT#{item['deployment_id']}", "sk": "CNT"},
                        add={"active": 1},
                        cond=_limit_ok,
                    )
                }
            )
        try:
            self._transact(ops)
        except ClientError as exc:
            reasons = _cancelled(exc)
            if reasons[0] != "None":
                return "lost"
            if reasons[2] != "None":
                return "pool"
            if len(reasons) > 3 and reasons[3] != "None":
                return "deployment"
            return "lost"
        claimed = dict(item)
        claimed.update(
            state_type="PENDING",
            state_name="Pending",
            state_timestamp=stamp,
            updated_at=stamp,
            token_hash=token,
            run_count=int(item.get("run_count", 0)) + 1,
        )
        claimed.pop("state_message", None)
        claimed.pop("infra", None)
        return self._run(claimed)

    def transition(
        self,
        run_id: str,
        expected: StateType,
        state: StateRecord,
        effects: TransitionEffects | None = None,
    ) -> FlowRun:
        effects = effects or TransitionEffects()
        for _ in range(_RETRIES):
            item = self._run_item_or_raise(run_id)
            current = StateType(item["state_type"])
            if current != expected:
                raise IllegalTransition(run_id, current.value, state.type.value)
            n = int(item["hist_n"])
            set_: Item = {
                "state_type": state.type.value,
                "state_name": state.name,
                "state_message": state.message,
                "state_timestamp": ts(state.timestamp),
                "updated_at": ts(state.timestamp),
                "hist_n": n + 1,
                "gsi1pk": f"STATE#{state.type.value}",
            }
            for key, value in effects.fields.items():
                if isinstance(value, InfraRef):
                    value = value.model_dump(mode="json")
                if value is not None and key in _RUN_TIMES:
                    value = ts(value)
                elif value is not None and key in _RUN_JSON:
                    value = json.dumps(value)
                set_[key] = value
                if key == "expected_start":
                    order = _order(effects.fields[key], run_id)
                    set_["gsi1sk"] = order
                    set_["gsi3sk"] = order
                    if item.get("gsi2pk"):
                        set_["gsi2sk"] = order
            if effects.revoke_token:
                set_["token_hash"] = None
            set_ |= began_attrs(run_id, began_on_transition(expected, state, effects.fields))

            def cond(e: _Expr, exp: str = expected.value, n: int = n) -> str:
                return f"{e.n('state_type')} = {e.v(exp)} AND {e.n('hist_n')} = {e.v(n)}"

            ops: list[dict[str, Any]] = [
                {"Update": _update({"pk": f"RUN#{run_id}", "sk": "RUN"}, set_=set_, cond=cond)},
                {"Put": {"Item": _enc(self._history_item(run_id, n + 1, state))}},
            ]
            was, will = expected in ACTIVE, state.type in ACTIVE
            if was != will:
                ops += self._counter_ops(item, -1 if was else +1)
            if effects.teardown and item.get("infra") is not None:
                (tid,) = self._next_ids("teardown", 1)
                ops.append(
                    {
                        "Put": {
                            "Item": _enc(
                                {
                                    "pk": "TEARDOWN",
                                    "sk": f"{tid:020d}",
                                    "id": tid,
                                    "run_id": run_id,
                                    "work_pool": item["work_pool"],
                                    "infra": item["infra"],
                                    "created_at": ts(state.timestamp),
                                }
                            )
                        }
                    }
                )
            try:
                self._transact(ops)
            except ClientError as exc:
                if _code(exc) == "TransactionCanceledException" and _reasons(exc)[0] != "None":
                    continue  # changed meanwhile: re-read (raises if the state moved)
                raise
            return self.get_run(run_id)
        item = self._run_item_or_raise(run_id)
        raise IllegalTransition(run_id, item["state_type"], state.type.value)

    def _guarded_update(
        self, run_id: str, expected: StateType | str, values: Item, field: str = "state_type"
    ) -> bool:
        """Set ``values`` on the run if its ``field`` is ``expected`` (the state, or
        another attribute's value); ``False`` if it is not."""
        value = expected.value if isinstance(expected, StateType) else expected
        try:
            self._upd(
                _update(
                    {"pk": f"RUN#{run_id}", "sk": "RUN"},
                    set_=values,
                    cond=lambda e: f"{e.n(field)} = {e.v(value)}",
                )
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_infra(self, run_id: str, expected: StateType, infra: InfraRef) -> bool:
        return self._guarded_update(
            run_id, expected, {"infra": json.dumps(infra.model_dump(mode="json"))}
        )

    def set_infra_many(self, started: Sequence[tuple[FlowRun, InfraRef]]) -> set[str]:
        """One conditional UpdateItem per run (DynamoDB has no cheaper batch of those)."""
        done: set[str] = set()
        for run, infra in started:

            def cond(e: _Expr, n: int = run.run_count) -> str:
                st = e.n("state_type")
                return (
                    f"{st} IN ({e.v('PENDING')}, {e.v('RUNNING')}) "
                    f"AND {e.n('run_count')} = {e.v(n)}"
                )

            value = {"infra": json.dumps(infra.model_dump(mode="json"))}
            key = {"pk": f"RUN#{run.id}", "sk": "RUN"}
            try:
                self._upd(_update(key, set_=value, cond=cond))
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                continue
            done.add(run.id)
        return done

    def set_token(self, run_id: str, expected: StateType, token_hash: str) -> bool:
        return self._guarded_update(run_id, expected, {"token_hash": token_hash})

    def replace_token(self, run_id: str, old_hash: str, new_hash: str) -> bool:
        return self._guarded_update(run_id, old_hash, {"token_hash": new_hash}, "token_hash")

    def record_heartbeat(self, run_id: str, now: datetime) -> None:
        try:
            self._upd(
                _update(
                    {"pk": f"RUN#{run_id}", "sk": "RUN"},
                    set_={"heartbeat_at": ts(now)},
                    cond=lambda e: "attribute_exists(pk)",
                )
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise RunNotFound(run_id) from exc
            raise

    def runs_in_states(
        self,
        states: Sequence[StateType],
        limit: int,
        *,
        before: datetime | None = None,
        since: datetime | None = None,
        auto_scheduled: bool | None = None,
        deployment_id: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[FlowRun]:
        def sk(e: _Expr, k: str) -> str:
            if after is not None:  # the index's sort key is (expected_start, id) already
                return f"{e.n(k)} > {e.v(_order(*after))}"
            if since is not None and before is not None:
                return f"{e.n(k)} BETWEEN {e.v(ts(since))} AND {e.v(ts(before))}"
            if before is not None:
                return f"{e.n(k)} < {e.v(ts(before))}"
            assert since is not None
            return f"{e.n(k)} >= {e.v(ts(since))}"

        def filt(e: _Expr) -> str:
            parts = []
            if auto_scheduled is not None:
                parts.append(f"{e.n('auto_scheduled')} = {e.v(auto_scheduled)}")
            if deployment_id is not None:
                parts.append(f"{e.n('deployment_id')} = {e.v(deployment_id)}")
            return " AND ".join(parts)

        has_filter = auto_scheduled is not None or deployment_id is not None
        ranged = before is not None or since is not None or after is not None
        iters = [
            self._query(
                "gsi1pk",
                f"STATE#{s.value}",
                index="by_state",
                sk=sk if ranged else None,
                filt=filt if has_filter else None,
                page=None if has_filter else limit,
            )
            for s in dict.fromkeys(states)
        ]
        out: list[FlowRun] = []
        for item in heapq.merge(*iters, key=lambda i: i["gsi1sk"]):
            if before is not None and item["gsi1sk"] >= ts(before):
                break  # BETWEEN is inclusive, ``before`` is not; the rest are later still
            out.append(self._run(item))
            if len(out) >= limit:
                break
        return out

    def _insert_run(self, run: FlowRun, extra: list[dict[str, Any]] | None = None) -> int:
        """Create the run (conditional on its id) with its first history entry."""
        ops = [*(extra or [])]
        ops.append(
            {
                "Put": {
                    "Item": _enc(self._run_item(run)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        )
        ops.append({"Put": {"Item": _enc(self._history_item(run.id, 1, run.state))}})
        ops += [{"Put": {"Item": _enc(key)}} for key in ref_keys(run.id, run.name)]
        if run.state.type in ACTIVE:
            ops += self._counter_ops(run, +1)
        try:
            self._transact(ops)
        except ClientError as exc:
            if _code(exc) == "TransactionCanceledException":
                reasons = _reasons(exc)
                if len(reasons) > len(extra or []) and reasons[len(extra or [])] != "None":
                    return 0
            raise
        return 1

    def _delete_run(self, item: Item) -> int:
        """Delete a ``SCHEDULED`` run with its idempotency key (one transaction: the key
        is free again exactly when the run is gone), then its history; 1 if deleted."""
        run_id = item["id"]
        ops: list[dict[str, Any]] = [
            {
                "Delete": {"Key": _enc({"pk": f"RUN#{run_id}", "sk": "RUN"})}
                | _cond(lambda e: f"{e.n('state_type')} = {e.v('SCHEDULED')}")
            }
        ]
        if item.get("idempotency_key") is not None:
            key = f"IDEM#{item.get('deployment_id')}#{item['idempotency_key']}"
            ops.append({"Delete": {"Key": _enc({"pk": key, "sk": "IDEM"})}})
        ops += [{"Delete": {"Key": _enc(k)}} for k in ref_keys(run_id, item.get("name"))]
        try:
            self._transact(ops)
        except ClientError as exc:
            if _cancelled(exc)[0] == "ConditionalCheckFailed":
                return 0  # claimed or moved meanwhile: it stays
            raise
        for h in self._query("pk", f"RUN#{run_id}", consistent=True):
            self._delete(h["pk"], h["sk"])
        self.delete_logs(run_ids=[run_id])
        return 1

    def next_scheduled_start(self, after: datetime) -> datetime | None:
        bound = ts(after) + "$"
        for item in self._query(
            "gsi1pk",
            "STATE#SCHEDULED",
            index="by_state",
            sk=lambda e, k: f"{e.n(k)} > {e.v(bound)}",
            page=1,
        ):
            return from_ts(item["expected_start"])
        return None

    # -- teardown queue ------------------------------------------------------------------
    def pending_teardowns(self, limit: int) -> list[Teardown]:
        out = []
        for item in self._query("pk", "TEARDOWN", page=limit, consistent=True):
            out.append(
                Teardown(
                    id=item["id"],
                    run_id=item["run_id"],
                    work_pool=item["work_pool"],
                    infra=json.loads(item["infra"]),
                    created_at=from_ts(item["created_at"]),
                )
            )
            if len(out) >= limit:
                break
        return out

    def finish_teardown(self, teardown_id: int) -> None:
        self._delete("TEARDOWN", f"{teardown_id:020d}")
