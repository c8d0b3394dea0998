"""The pool's own network, where the account has no default VPC.

A VPC (DNS support and hostnames on) on a CIDR block no other VPC overlaps, two public
subnets in two availability zones, an internet gateway, a route table sending 0.0.0.0/0
to it, and a security group with no inbound rules (egress only).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from provisioners.ecs.infra import cidr
from provisioners.ecs.infra.base import Context, Found, Resource, ignore
from provisioners.ecs.infra.ec2 import BUSY, by_id, existing_cidrs, tag_filters, tag_spec
from provisioners.ecs.names import POOL_TAG
from provisioners.errors import ProvisionerError


class Vpc(Resource):
    kind = "vpc"

    def find(self, ctx: Context) -> Found | None:
        vpcs = ctx.aws.pages("ec2", "describe_vpcs", "Vpcs", Filters=tag_filters(ctx, self.name))
        vpc = next(iter(vpcs), None)
        return Found(vpc["VpcId"], owned=True) if vpc else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        vpc = by_id(ctx, "describe_vpcs", "Vpcs", "VpcIds", resource_id)
        if vpc is None:
            return None
        return Found(resource_id, ctx.owned(vpc.get("Tags")) and not vpc.get("IsDefault"))

    def create(self, ctx: Context) -> str:
        block = cidr.choose(existing_cidrs(ctx))
        vpc = ctx.aws.call(
            "ec2", "create_vpc", CidrBlock=block, TagSpecifications=tag_spec(ctx, "vpc", self.name)
        )["Vpc"]
        vpc_id = str(vpc["VpcId"])
        for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
            ctx.aws.call(
                "ec2", "modify_vpc_attribute", VpcId=vpc_id, **{attribute: {"Value": True}}
            )
        return vpc_id

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.retry(
            lambda: ignore(
                frozenset({"InvalidVpcID.NotFound"}),
                lambda: ctx.aws.call("ec2", "delete_vpc", VpcId=resource_id),
            ),
            BUSY,
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        if found is not None:
            return found.id
        return f"CIDR {cidr.choose(existing_cidrs(ctx))}, DNS hostnames on"


class InternetGateway(Resource):
    kind = "internet-gateway"

    def find(self, ctx: Context) -> Found | None:
        gateways = ctx.aws.pages(
            "ec2",
            "describe_internet_gateways",
            "InternetGateways",
            Filters=tag_filters(ctx, self.name),
        )
        gateway = next(iter(gateways), None)
        return Found(gateway["InternetGatewayId"], owned=True) if gateway else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        gateway = by_id(
            ctx, "describe_internet_gateways", "InternetGateways", "InternetGatewayIds", resource_id
        )
        return None if gateway is None else Found(resource_id, ctx.owned(gateway.get("Tags")))

    def create(self, ctx: Context) -> str:
        spec = tag_spec(ctx, "internet-gateway", self.name)
        gateway = ctx.aws.call("ec2", "create_internet_gateway", TagSpecifications=spec)
        gateway_id = str(gateway["InternetGateway"]["InternetGatewayId"])
        ctx.aws.call(
            "ec2", "attach_internet_gateway", InternetGatewayId=gateway_id, VpcId=_vpc(ctx)
        )
        return gateway_id

    def delete(self, ctx: Context, resource_id: str) -> None:
        gateway = by_id(
            ctx, "describe_internet_gateways", "InternetGateways", "InternetGatewayIds", resource_id
        )
        if gateway is None:
            return
        for attachment in gateway.get("Attachments", []):
            ctx.retry(partial(self._detach, ctx, resource_id, attachment["VpcId"]), BUSY)
        ctx.retry(
            lambda: ctx.aws.call("ec2", "delete_internet_gateway", InternetGatewayId=resource_id),
            BUSY,
        )

    @staticmethod
    def _detach(ctx: Context, gateway_id: str, vpc_id: str) -> None:
        ctx.aws.call("ec2", "detach_internet_gateway", InternetGatewayId=gateway_id, VpcId=vpc_id)


def _vpc(ctx: Context) -> str:
    vpc_id = ctx.id_of("vpc")
    if vpc_id is None:
        raise ProvisionerError("the pool's VPC must exist first")
    return vpc_id


class Subnet(Resource):
    kind = "subnet"

    def __init__(self, name: str, index: int) -> None:
        super().__init__(name)
        self.index = index

    def find(self, ctx: Context) -> Found | None:
        vpc_id = ctx.id_of("vpc")
        if vpc_id is None:
            return None
        filters = [*tag_filters(ctx, self.name), {"Name": "vpc-id", "Values": [vpc_id]}]
        subnet = next(
            iter(ctx.aws.pages("ec2", "describe_subnets", "Subnets", Filters=filters)), None
        )
        return Found(subnet["SubnetId"], owned=True) if subnet else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        subnet = by_id(ctx, "describe_subnets", "Subnets", "SubnetIds", resource_id)
        return None if subnet is None else Found(resource_id, ctx.owned(subnet.get("Tags")))

    def _zone(self, ctx: Context) -> str:
        filters = [
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]},
        ]
        zones = ctx.aws.call("ec2", "describe_availability_zones", Filters=filters)
        names = sorted(z["ZoneName"] for z in zones.get("AvailabilityZones", []))
        if len(names) <= self.index:
            raise ProvisionerError(f"the region has fewer than {self.index + 1} availability zones")
        return names[self.index]

    def create(self, ctx: Context) -> str:
        vpc_id = _vpc(ctx)
        vpc = by_id(ctx, "describe_vpcs", "Vpcs", "VpcIds", vpc_id)
        subnet = ctx.aws.call(
            "ec2",
            "create_subnet",
            VpcId=vpc_id,
            CidrBlock=cidr.subnet(vpc["CidrBlock"], self.index),
            AvailabilityZone=self._zone(ctx),
            TagSpecifications=tag_spec(ctx, "subnet", self.name),
        )["Subnet"]
        return str(subnet["SubnetId"])

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.retry(
            lambda: ignore(
                frozenset({"InvalidSubnetID.NotFound"}),
                lambda: ctx.aws.call("ec2", "delete_subnet", SubnetId=resource_id),
            ),
            BUSY,
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or f"public /{cidr.SUBNET_PREFIX}, zone #{self.index + 1}"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"subnets": [resource_id]}


class RouteTable(Resource):
    kind = "route-table"

    def find(self, ctx: Context) -> Found | None:
        tables = ctx.aws.pages(
            "ec2", "describe_route_tables", "RouteTables", Filters=tag_filters(ctx, self.name)
        )
        table = next(iter(tables), None)
        return Found(table["RouteTableId"], owned=True) if table else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        table = by_id(ctx, "describe_route_tables", "RouteTables", "RouteTableIds", resource_id)
        return None if table is None else Found(resource_id, ctx.owned(table.get("Tags")))

    def create(self, ctx: Context) -> str:
        table = ctx.aws.call(
            "ec2",
            "create_route_table",
            VpcId=_vpc(ctx),
            TagSpecifications=tag_spec(ctx, "route-table", self.name),
        )["RouteTable"]
        table_id = str(table["RouteTableId"])
        gateway = ctx.id_of("internet-gateway")
        ctx.aws.call(
            "ec2",
            "create_route",
            RouteTableId=table_id,
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=gateway,
        )
        for subnet_id in ctx.ids_of("subnet"):
            ctx.aws.call("ec2", "associate_route_table", RouteTableId=table_id, SubnetId=subnet_id)
        return table_id

    def delete(self, ctx: Context, resource_id: str) -> None:
        table = by_id(ctx, "describe_route_tables", "RouteTables", "RouteTableIds", resource_id)
        if table is None:
            return
        for association in table.get("Associations", []):
            if not association.get("Main"):
                ctx.aws.call(
                    "ec2",
                    "disassociate_route_table",
                    AssociationId=association["RouteTableAssociationId"],
                )
        ctx.retry(lambda: ctx.aws.call("ec2", "delete_route_table", RouteTableId=resource_id), BUSY)

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or "0.0.0.0/0 via the internet gateway"


class SecurityGroup(Resource):
    kind = "security-group"

    def find(self, ctx: Context) -> Found | None:
        vpc_id = ctx.id_of("vpc")
        if vpc_id is None:
            return None
        filters = [
            {"Name": "group-name", "Values": [self.name]},
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": f"tag:{POOL_TAG}", "Values": [ctx.pool]},
        ]
        groups = ctx.aws.pages("ec2", "describe_security_groups", "SecurityGroups", Filters=filters)
        group = next(iter(groups), None)
        return Found(group["GroupId"], owned=True) if group else None

    def check(self, ctx: Context, resource_id: str) -> Found | None:
        group = by_id(ctx, "describe_security_groups", "SecurityGroups", "GroupIds", resource_id)
        return None if group is None else Found(resource_id, ctx.owned(group.get("Tags")))

    def create(self, ctx: Context) -> str:
        # A new group allows all egress and no ingress: exactly what a run needs.
        group = ctx.aws.call(
            "ec2",
            "create_security_group",
            GroupName=self.name,
            Description="pushpool flow runs: egress only",
            VpcId=_vpc(ctx),
            TagSpecifications=tag_spec(ctx, "security-group", self.name),
        )
        return str(group["GroupId"])

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.retry(
            lambda: ignore(
                frozenset({"InvalidGroup.NotFound"}),
                lambda: ctx.aws.call("ec2", "delete_security_group", GroupId=resource_id),
            ),
            BUSY,
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or "egress only: no inbound rules"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"security_groups": [resource_id]}
