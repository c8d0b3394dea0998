"""Pointers for humans: the Azure portal page of a container group, image push commands."""

from __future__ import annotations

PORTAL = "https://portal.azure.com/#@"


def portal_url(resource_id: str) -> str:
    return f"{PORTAL}/resource{resource_id}/overview"


def push_commands(login_server: str, tag: str = "latest") -> list[str]:
    """Build ``runner_image/Dockerfile`` and push it to the pool's registry."""
    registry = login_server.split(".", 1)[0]
    image = f"{login_server}/pushpool-runner:{tag}"
    return [
        f"az acr login --name {registry}",
        f"docker build -f runner_image/Dockerfile -t {image} .",
        f"docker push {image}",
    ]
