"""An ECS pool's infrastructure as a plan of resources (the engine: :mod:`provisioners.infra`):
roles, log group, repository, cluster, result bucket (and the task role's access to it),
and the default VPC or a network of its own.
Resources carry the pool's tag; removal skips any that no longer does.
"""

from __future__ import annotations

from typing import Any

from provisioners import infra
from provisioners.ecs.infra.base import Context, Resource
from provisioners.ecs.infra.default_vpc import DefaultVpc
from provisioners.ecs.infra.iam import execution_role, read_secrets_grant, task_role
from provisioners.ecs.infra.network import (
    InternetGateway,
    RouteTable,
    SecurityGroup,
    Subnet,
    Vpc,
)
from provisioners.ecs.infra.results import ResultAccess, ResultBucket
from provisioners.ecs.infra.services import Cluster, LogGroup, Repository

_LIST_OUTPUTS = frozenset({"subnets", "security_groups"})

__all__ = ["Context", "Infrastructure"]


class Infrastructure(infra.Infrastructure[Context]):
    """The ECS pool's resources: core (roles, log group, repository, cluster) and network."""

    def _core(self) -> list[Resource]:
        names = self.ctx.names
        return [
            execution_role(names.execution_role, names.log_group),
            read_secrets_grant(names.execution_role, names.secret_prefix),
            task_role(names.task_role),
            LogGroup(names.log_group),
            Repository(names.repository),
            Cluster(names.cluster),
            ResultBucket(names.result_bucket),
            ResultAccess(names.task_role),
        ]

    def _own_network(self) -> list[Resource]:
        names = self.ctx.names
        return [
            Vpc(names.network),
            InternetGateway(names.network),
            Subnet(names.subnet(0), 0),
            Subnet(names.subnet(1), 1),
            RouteTable(names.network),
            SecurityGroup(names.network),
        ]

    def resources(self) -> list[infra.Resource[Context]]:
        """What the pool needs here: the default VPC if there is one, else its own."""
        default = DefaultVpc("default")
        network = [default] if default.find(self.ctx) else self._own_network()
        return [*self._core(), *network]

    def every_resource(self) -> list[infra.Resource[Context]]:
        return [*self._core(), DefaultVpc("default"), *self._own_network()]

    def seen(self, resource: infra.Resource[Context], resource_id: str) -> None:
        self.ctx.ids[resource.key] = resource_id  # later resources look up earlier ids

    def merge(self, outputs: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key in _LIST_OUTPUTS:
                outputs.setdefault(key, []).extend(value)
            else:
                outputs[key] = value
