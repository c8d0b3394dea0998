"""Compare-and-set of a meta value (DynamoDB): :class:`DynamoSharedMeta`."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class DynamoSharedMeta:
    """Mixed into :class:`~service.store.dynamo.DynamoStore`: one conditional put on the
    ``META`` item (``attribute_not_exists`` or ``value = :expected``)."""

    table: str
    client: Any

    def compare_and_set_meta(self, key: str, expected: str | None, value: str) -> bool:
        params: dict[str, Any] = {
            "TableName": self.table,
            "Item": {"pk": {"S": "META"}, "sk": {"S": key}, "value": {"S": value}},
        }
        if expected is None:
            params["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            params |= {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "value"},
                "ExpressionAttributeValues": {":expected": {"S": expected}},
            }
        try:
            self.client.put_item(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
