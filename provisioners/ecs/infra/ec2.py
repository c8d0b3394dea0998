"""EC2 plumbing shared by the network resources: tags, filters, lookups by id."""

from __future__ import annotations

from typing import Any

from provisioners.ecs.errors import AwsError
from provisioners.ecs.infra.base import Context
from provisioners.ecs.names import POOL_TAG

#: EC2 refuses to delete what something still uses (ENIs of stopping tasks, ...).
BUSY = frozenset({"DependencyViolation"})


def tag_spec(ctx: Context, resource_type: str, name: str) -> list[dict[str, Any]]:
    tags = [{"Key": "Name", "Value": name}, {"Key": POOL_TAG, "Value": ctx.pool}]
    return [{"ResourceType": resource_type, "Tags": tags}]


def tag_filters(ctx: Context, name: str) -> list[dict[str, Any]]:
    return [
        {"Name": "tag:Name", "Values": [name]},
        {"Name": f"tag:{POOL_TAG}", "Values": [ctx.pool]},
    ]


def by_id(ctx: Context, operation: str, key: str, ids_param: str, resource_id: str) -> Any:
    """The EC2 resource with ``resource_id``, or ``None`` if EC2 does not know it."""
    try:
        items = ctx.aws.call("ec2", operation, **{ids_param: [resource_id]}).get(key, [])
    except AwsError as exc:
        if exc.code.endswith(".NotFound"):
            return None
        raise
    return items[0] if items else None


def default_vpc(ctx: Context) -> dict[str, Any] | None:
    filters = [{"Name": "isDefault", "Values": ["true"]}]
    return next(iter(ctx.aws.pages("ec2", "describe_vpcs", "Vpcs", Filters=filters)), None)


def existing_cidrs(ctx: Context) -> list[str]:
    blocks = []
    for vpc in ctx.aws.pages("ec2", "describe_vpcs", "Vpcs"):
        blocks.append(vpc["CidrBlock"])
        blocks.extend(a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", []))
    return blocks
