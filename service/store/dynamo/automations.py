"""Automations in the DynamoDB store: conditional writes make each firing happen once.

A mixin of :class:`service.store.dynamo.DynamoStore`; it needs only ``client`` and
``table``. Items:

=================  ====================  ===========  ==================================
item               pk                    sk           attributes
=================  ====================  ===========  ==================================
automation         ``AUTOMATION``        name         doc (JSON)
firing             ``FIRING#<key>``      ``FIRING``   fired_at, expires_at (TTL: 31 days
                                                      after the longest window closes)
action job         ``AJOB#<id>``         ``AJOB``     doc (JSON), attempts; by_kind:
                                                      ``AJOBS`` / ``<due T>#<id>``
due instance       ``ADUE#<automation>`` instance     due; by_kind: ``ADUES`` /
                                                      ``<due T>#<automation>#<instance>``
=================  ====================  ===========  ==================================

A firing is one ``TransactWriteItems``: the firing item conditional on
``attribute_not_exists(pk)`` and the puts of its jobs, so of concurrent evaluations (other
replicas, overlapping Lambda invocations) exactly one commits. Due jobs are read from
``by_kind`` up to ``now`` (cost: the jobs due); a claim is an update conditional on the
job's ``attempts`` (the GSI only proposes: a stale entry costs a failed condition).
Proactive triggers' due instances are read the same way (``ADUES`` up to ``now``: one
Query, cost the instances due); arming is a put conditional on ``attribute_not_exists``,
moving a deadline an update or delete conditional on the ``due`` read. Firing keys expire
by the table's TTL (``expires_at``), so :meth:`purge_automation_firings` deletes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from service.automation_records import FIRING_KEPT, ActionJob, Automation, DueInstance
from service.errors import AlreadyExists, AutomationNotFound
from service.store.dynamo.events import _dec, _enc, _ser, from_ts, ts

_AUTO = "AUTOMATION"
_JOBS = "AJOBS"
_DUES = "ADUES"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _job_item(job: ActionJob) -> dict[str, Any]:
    return {
        "pk": f"AJOB#{job.id}",
        "sk": "AJOB",
        "doc": job.model_dump_json(),
        "attempts": job.attempts,
        "gsi3pk": _JOBS,
        "gsi3sk": f"{ts(job.due_at)}#{job.id}",
    }


def _due_key(automation_id: str, instance: str) -> dict[str, Any]:
    return _enc({"pk": f"ADUE#{automation_id}", "sk": instance or "-"})


def _due_sort(automation_id: str, instance: str, due_at: datetime) -> str:
    return f"{ts(due_at)}#{automation_id}#{instance}"


class DynamoAutomationsMixin:
    """Automations, firings and action jobs for :class:`DynamoStore`."""

    if TYPE_CHECKING:
        client: Any
        table: str

    def _au_get(self, name: str) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=self.table, Key=_enc({"pk": _AUTO, "sk": name}), ConsistentRead=True
        )
        raw = resp.get("Item")
        return _dec(raw) if raw else None

    def create_automation(self, automation: Automation) -> Automation:
        item = {"pk": _AUTO, "sk": automation.name, "doc": automation.model_dump_json()}
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_enc(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise AlreadyExists("automation", automation.name) from exc
        return automation

    def get_automation(self, name: str) -> Automation:
        item = self._au_get(name)
        if item is None:
            raise AutomationNotFound(name)
        return Automation.model_validate(json.loads(item["doc"]))

    def list_automations(self) -> list[Automation]:
        kw: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :p",
            "ExpressionAttributeValues": {":p": _ser.serialize(_AUTO)},
            "ConsistentRead": True,
        }
        out: list[Automation] = []
        while True:
            resp = self.client.query(**kw)
            out += [Automation.model_validate_json(_dec(r)["doc"]) for r in resp.get("Items", [])]
            if not resp.get("LastEvaluatedKey"):
                return out
            kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def set_automation_paused(self, name: str, paused: bool, now: datetime) -> Automation:
        current = self.get_automation(name)
        changed = current.model_copy(update={"paused": paused, "updated_at": now})
        try:
            self.client.put_item(
                TableName=self.table,
                Item=_enc({"pk": _AUTO, "sk": name, "doc": changed.model_dump_json()}),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise AutomationNotFound(name) from exc
        return changed

    def delete_automation(self, name: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key=_enc({"pk": _AUTO, "sk": name}),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise AutomationNotFound(name) from exc

    def fire_automation(self, key: str, jobs: Sequence[ActionJob], now: datetime) -> bool:
        firing = {
            "pk": f"FIRING#{key}",
            "sk": "FIRING",
            "fired_at": ts(now),
            "expires_at": math.ceil((now + FIRING_KEPT).timestamp()),
        }
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": _enc(firing),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        ops += [{"Put": {"TableName": self.table, "Item": _enc(_job_item(j))}} for j in jobs]
        try:
            self.client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or [{}]
            if reasons[0].get("Code") != "ConditionalCheckFailed":
                raise
            return False
        return True

    def _due_items(self, partition: str, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` items of ``by_kind``'s ``partition`` whose sort key (``<due
        T>#…``) is due by ``now``, earliest first: one Query."""
        resp = self.client.query(
            TableName=self.table,
            IndexName="by_kind",
            KeyConditionExpression="gsi3pk = :p AND gsi3sk <= :u",
            ExpressionAttributeValues={
                ":p": _ser.serialize(partition),
                ":u": _ser.serialize(ts(now) + "#\uffff"),
            },
            Limit=limit,
        )
        return [_dec(raw) for raw in resp.get("Items", [])]

    def due_action_jobs(self, now: datetime, limit: int) -> list[ActionJob]:
        out = []
        for item in self._due_items(_JOBS, now, limit):
            job = ActionJob.model_validate_json(item["doc"])
            due = item["gsi3sk"].split("#", 1)[0]
            out.append(
                job.model_copy(update={"attempts": int(item["attempts"]), "due_at": from_ts(due)})
            )
        return out

    def claim_action_job(self, job: ActionJob, due_at: datetime) -> bool:
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_enc({"pk": f"AJOB#{job.id}", "sk": "AJOB"}),
                UpdateExpression="SET attempts = :n, gsi3sk = :s",
                ConditionExpression="attempts = :a",
                ExpressionAttributeValues={
                    ":a": _ser.serialize(job.attempts),
                    ":n": _ser.serialize(job.attempts + 1),
                    ":s": _ser.serialize(f"{ts(due_at)}#{job.id}"),
                },
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def delete_action_job(self, job_id: str) -> None:
        self.client.delete_item(
            TableName=self.table, Key=_enc({"pk": f"AJOB#{job_id}", "sk": "AJOB"})
        )

    def purge_automation_firings(self, before: datetime, limit: int) -> int:
        return 0  # firing items carry ``expires_at``: the table's TTL deletes them

    # -- proactive triggers' due index -------------------------------------------------
    def _conditional(self, call: Any, **kw: Any) -> bool:
        """``call(**kw)``; ``False`` if its condition failed."""
        try:
            call(TableName=self.table, **kw)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def arm_automation(self, automation_id: str, instance: str, due_at: datetime) -> bool:
        item = _dec(_due_key(automation_id, instance)) | {
            "due": ts(due_at),
            "automation_id": automation_id,
            "instance": instance,
            "gsi3pk": _DUES,
            "gsi3sk": _due_sort(automation_id, instance, due_at),
        }
        return self._conditional(
            self.client.put_item, Item=_enc(item), ConditionExpression="attribute_not_exists(pk)"
        )

    def move_automation_due(
        self, automation_id: str, instance: str, was: datetime | None, due_at: datetime | None
    ) -> bool:
        if was is None:
            return due_at is not None and self.arm_automation(automation_id, instance, due_at)
        key = _due_key(automation_id, instance)
        cond = {"ConditionExpression": "due = :was"}
        values = {":was": _ser.serialize(ts(was))}
        if due_at is None:
            return self._conditional(
                self.client.delete_item, Key=key, ExpressionAttributeValues=values, **cond
            )
        values |= {
            ":d": _ser.serialize(ts(due_at)),
            ":s": _ser.serialize(_due_sort(automation_id, instance, due_at)),
        }
        return self._conditional(
            self.client.update_item,
            Key=key,
            UpdateExpression="SET due = :d, gsi3sk = :s",
            ExpressionAttributeValues=values,
            **cond,
        )

    def automation_due(self, automation_id: str, instance: str) -> datetime | None:
        resp = self.client.get_item(
            TableName=self.table, Key=_due_key(automation_id, instance), ConsistentRead=True
        )
        raw = resp.get("Item")
        return from_ts(_dec(raw)["due"]) if raw else None

    def due_automations(self, now: datetime, limit: int) -> list[DueInstance]:
        return [
            DueInstance(
                automation_id=item["automation_id"],
                instance=item["instance"],
                due_at=from_ts(item["due"]),
            )
            for item in self._due_items(_DUES, now, limit)
        ]
