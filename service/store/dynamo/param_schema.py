"""A deployment's parameter schema recorded once (DynamoDB): :class:`DynamoParameterSchema`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from service.errors import DeploymentNotFound
from service.models import Deployment
from service.store.dynamo._table import _code

_RETRIES = 5


class DynamoParameterSchema:
    """Mixed into :class:`~service.store.dynamo.DynamoStore`: read the deployment item,
    then one ``UpdateItem`` of its ``doc`` conditional on the doc being the one read (a
    concurrent replace or record makes it read again)."""

    table: str
    client: Any
    _get: Any

    def record_parameter_schema(
        self, deployment_id: str, schema: dict[str, Any], at: datetime
    ) -> bool:
        for _ in range(_RETRIES):
            item = self._get(f"DEP#{deployment_id}", "DEP")
            if item is None:
                raise DeploymentNotFound(deployment_id)
            current = Deployment.model_validate_json(item["doc"])
            if current.parameter_schema is not None:
                return False
            stored = current.model_copy(update={"parameter_schema": schema, "updated_at": at})
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"DEP#{deployment_id}"}, "sk": {"S": "DEP"}},
                    UpdateExpression="SET #doc = :new",
                    ConditionExpression="#doc = :old",
                    ExpressionAttributeNames={"#doc": "doc"},
                    ExpressionAttributeValues={
                        ":new": {"S": stored.model_dump_json()},
                        ":old": {"S": item["doc"]},
                    },
                )
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    continue
                raise
            return True
        raise RuntimeError(f"deployment {deployment_id}: the schema record kept conflicting")
