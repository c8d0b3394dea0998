"""The pool's ECS cluster, CloudWatch log group and ECR repository."""

from __future__ import annotations

from typing import Any

from provisioners.ecs.errors import AwsError
from provisioners.ecs.infra.base import Context, Found, Resource, ignore
from provisioners.ecs.names import POOL_TAG

CAPACITY_PROVIDERS = ["FARGATE", "FARGATE_SPOT"]
#: Tasks still stopping keep a cluster from being deleted for a little while.
_CLUSTER_BUSY = frozenset({"ClusterContainsTasksException"})


class Cluster(Resource):
    kind = "ecs-cluster"

    def find(self, ctx: Context) -> Found | None:
        page = ctx.aws.call("ecs", "describe_clusters", clusters=[self.name], include=["TAGS"])
        for cluster in page.get("clusters", []):
            if cluster.get("status") == "ACTIVE":
                return Found(cluster["clusterArn"], ctx.owned(cluster.get("tags")))
        return None

    def create(self, ctx: Context) -> str:
        cluster = ctx.aws.call(
            "ecs",
            "create_cluster",
            clusterName=self.name,
            capacityProviders=CAPACITY_PROVIDERS,
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
            tags=[{"key": POOL_TAG, "value": ctx.pool}],
        )["cluster"]
        return str(cluster["clusterArn"])

    def delete(self, ctx: Context, resource_id: str) -> None:
        ctx.retry(
            lambda: ignore(
                frozenset({"ClusterNotFoundException"}),
                lambda: ctx.aws.call("ecs", "delete_cluster", cluster=resource_id),
            ),
            _CLUSTER_BUSY,
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or "capacity providers FARGATE, FARGATE_SPOT"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"cluster": resource_id}


class LogGroup(Resource):
    kind = "log-group"

    def find(self, ctx: Context) -> Found | None:
        groups = ctx.aws.pages(
            "logs", "describe_log_groups", "logGroups", logGroupNamePrefix=self.name
        )
        group = next((g for g in groups if g["logGroupName"] == self.name), None)
        if group is None:
            return None
        arn = group.get("logGroupArn") or str(group["arn"]).removesuffix(":*")
        tags = ctx.aws.call("logs", "list_tags_for_resource", resourceArn=arn).get("tags")
        return Found(self.name, ctx.owned(tags))

    def create(self, ctx: Context) -> str:
        ctx.aws.call("logs", "create_log_group", logGroupName=self.name, tags={POOL_TAG: ctx.pool})
        ctx.aws.call(
            "logs",
            "put_retention_policy",
            logGroupName=self.name,
            retentionInDays=ctx.retention_days,
        )
        return self.name

    def delete(self, ctx: Context, resource_id: str) -> None:
        ignore(
            frozenset({"ResourceNotFoundException"}),
            lambda: ctx.aws.call("logs", "delete_log_group", logGroupName=self.name),
        )

    def detail(self, ctx: Context, found: Found | None) -> str:
        return super().detail(ctx, found) or f"retention {ctx.retention_days} days"

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"log_group": resource_id}


class Repository(Resource):
    kind = "ecr-repository"

    def find(self, ctx: Context) -> Found | None:
        try:
            page = ctx.aws.call("ecr", "describe_repositories", repositoryNames=[self.name])
        except AwsError as exc:
            if exc.code == "RepositoryNotFoundException":
                return None
            raise
        repo = page["repositories"][0]
        tags = ctx.aws.call("ecr", "list_tags_for_resource", resourceArn=repo["repositoryArn"])
        return Found(repo["repositoryUri"], ctx.owned(tags.get("tags")))

    def create(self, ctx: Context) -> str:
        repo = ctx.aws.call(
            "ecr",
            "create_repository",
            repositoryName=self.name,
            imageScanningConfiguration={"scanOnPush": True},
            tags=[{"Key": POOL_TAG, "Value": ctx.pool}],
        )["repository"]
        return str(repo["repositoryUri"])

    def delete(self, ctx: Context, resource_id: str) -> None:
        ignore(
            frozenset({"RepositoryNotFoundException"}),
            lambda: ctx.aws.call("ecr", "delete_repository", repositoryName=self.name, force=True),
        )

    def outputs(self, ctx: Context, resource_id: str) -> dict[str, Any]:
        return {"ecr_repository_uri": resource_id}
