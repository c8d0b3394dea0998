"""The dashboard's run page links to a real ECS run's task and CloudWatch log stream: a run
dispatched through the service to an ECS pool in moto, the page read through the
dashboard, the links built from the run's recorded infrastructure ref."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient
from support.factories import image_deployment_body
from support.web import ORIGIN, sign_in

from service.app import create_app
from service.deployments import DeploymentCreate, deploy
from service.pools import WorkPoolCreate, create_pool
from service.runs import RunCreate, create_run
from service.services import Services
from service.states import StateType

from .conftest import REGION


def test_run_page_links_to_the_ecs_task_and_its_log_stream(
    services: Services, admin_key: str, pool_config: dict[str, Any], tasks_pinned: None
) -> None:
    create_pool(services, WorkPoolCreate(name="links", type="ecs", config=pool_config))
    dep, _ = deploy(services, DeploymentCreate.model_validate(image_deployment_body("links")))
    run, _ = create_run(services, dep.id, RunCreate())
    ref = services.store.get_run(run.id).infra
    assert ref is not None and services.store.get_run(run.id).state.type == StateType.PENDING
    task_id = ref.id.rsplit("/", 1)[-1]
    stream = str(ref.data["log_stream"])
    assert task_id in stream  # the awslogs stream is named after the task
    with TestClient(create_app(services), base_url=ORIGIN, follow_redirects=False) as web:
        sign_in(web, admin_key)
        page = web.get(f"/runs/{run.id}").text
    links = {
        label: html.unescape(url)
        for url, label in re.findall(r'<a href="([^"]+)" target="_blank"[^>]*>(\w+) ↗</a>', page)
    }
    console = f"https://{REGION}.console.aws.amazon.com"
    assert links["task"] == (
        f"{console}/ecs/v2/clusters/pushpool-demo/tasks/{task_id}/configuration?region={REGION}"
    )
    escaped_stream = stream.replace("/", "$252F")
    assert links["logs"] == (
        f"{console}/cloudwatch/home?region={REGION}#logsV2:log-groups/log-group/"
        f"$252Fpushpool$252Fdemo/log-events/{escaped_stream}"
    )
