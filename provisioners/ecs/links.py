"""Pointers for humans: console links for a run's task and log stream, push commands."""

from __future__ import annotations

from urllib.parse import quote


def _console(region: str) -> str:
    return f"https://{region}.console.aws.amazon.com"


def task_url(region: str, cluster_arn: str, task_arn: str) -> str:
    cluster = cluster_arn.rsplit("/", 1)[-1]
    task_id = task_arn.rsplit("/", 1)[-1]
    return (
        f"{_console(region)}/ecs/v2/clusters/{quote(cluster, safe='')}/tasks/"
        f"{task_id}/configuration?region={region}"
    )


def _console_escape(value: str) -> str:
    """The CloudWatch console's fragment encoding: percent-encode, then ``%`` -> ``$25``."""
    return quote(value, safe="").replace("%", "$25")


def log_stream_url(region: str, group: str, stream: str) -> str:
    return (
        f"{_console(region)}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
        f"{_console_escape(group)}/log-events/{_console_escape(stream)}"
    )


def push_commands(repository_uri: str, region: str, tag: str = "latest") -> list[str]:
    """Shell commands that build ``runner_image/Dockerfile`` and push it to the repository."""
    registry = repository_uri.split("/", 1)[0]
    image = f"{repository_uri}:{tag}"
    return [
        f"aws ecr get-login-password --region {region} | "
        f"docker login --username AWS --password-stdin {registry}",
        f"docker build -f runner_image/Dockerfile -t {image} .",
        f"docker push {image}",
    ]
