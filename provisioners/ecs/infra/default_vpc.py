"""The default VPC: where an account has one, the pool uses it and creates no network."""

from __future__ import annotations

from typing import Any

from provisioners.ecs.infra.base import Context, Found, Resource
from provisioners.ecs.infra.ec2 import default_vpc
from provisioners.errors import ProvisionerError


class DefaultVpc(Resource):
    """The default VPC: used as it is, never created or removed."""

    kind = "default-vpc"

    def find(self, ctx: Context) -> Found | None:
        vpc = default_vpc(ctx)
        return Found(vpc["VpcId"], owned=False) if vpc else None

    def create(self, ctx: Context) -> str:
        raise ProvisionerError("the default VPC is gone; plan again")

    def delete(self, ctx: Context, resource_id: str) -> None:
        raise ProvisionerError("pushpool never removes a default VPC")

    def _subnets(self, ctx: Context, vpc_id: str) -> list[str]:
        filters = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "default-for-az", "Values": ["true"]},
        ]
        subnets = ctx.aws.pages("ec2", "describe_subnets", "Subnets", Filters=filters)
        return [s["SubnetId"] for s in sorted(subnets, key=lambda s: s["AvailabilityZone"])]

    def _security_group(self, ctx: Context, vpc_id: str) -> str:
        filters = [
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": ["default"]},
        ]
        groups = list(
            ctx.aws.pages("ec2", "describe_security_groups", "SecurityGroups", Filters=filters)
        )
        return str(groups[0]["GroupId"])

    def detail(self, ctx: Context, found: Found | None) -> str:
        where = f"{found.id}: " if found else ""
        return f"{where}uses its default subnets and security group; creates nothing"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        subnets = self._subnets(ctx, resource_id)
        if not subnets:
            raise ProvisionerError(f"the default VPC {resource_id} has no default subnets")
        return {"subnets": subnets, "security_groups": [self._security_group(ctx, resource_id)]}
