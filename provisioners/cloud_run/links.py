"""Pointers for humans: console links for a run's job and its logs, image push commands."""

from __future__ import annotations

from urllib.parse import quote

CONSOLE = "https://console.cloud.google.com"


def job_url(project: str, region: str, job_id: str) -> str:
    return f"{CONSOLE}/run/jobs/details/{region}/{job_id}/executions?project={project}"


def log_filter(region: str, job_id: str) -> str:
    """The Cloud Logging filter for everything a job's executions wrote."""
    return (
        'resource.type="cloud_run_job"'
        f' AND resource.labels.job_name="{job_id}"'
        f' AND resource.labels.location="{region}"'
    )


def logs_url(project: str, region: str, job_id: str) -> str:
    query = quote(log_filter(region, job_id), safe="")
    return f"{CONSOLE}/logs/query;query={query}?project={project}"


def registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def image_uri(project: str, region: str, repository: str, tag: str = "latest") -> str:
    return f"{registry_host(region)}/{project}/{repository}/pushpool-runner:{tag}"


def push_commands(project: str, region: str, repository: str) -> list[str]:
    """Shell commands that build ``runner_image/Dockerfile`` and push it to the repository."""
    image = image_uri(project, region, repository)
    return [
        f"gcloud auth configure-docker {registry_host(region)}",
        f"docker build -f runner_image/Dockerfile -t {image} .",
        f"docker push {image}",
    ]
