"""Dashboard pages for admins (keys, pool forms), events, automations, blocks, older log
lines and the rate limit, without a browser."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.factories import deployment_body
from support.web import ORIGIN, key_with, post, sign_in

from service.app import create_app
from service.blocks import ops
from service.models import LogLine, Role
from service.services import Services
from service.web import forms

MARKER = "s3cr3t-MARKER-91f2"


def test_admin_creates_a_key_and_sees_its_secret_once(
    web: TestClient, admin_key: str, api: TestClient
) -> None:
    token = sign_in(web, admin_key)
    r = post(web, "/api-keys", token, name="ci-bot", role="deployer", pools="local")
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    secret = re.search(r'<code id="new-secret">([^<]+)</code>', r.text)
    assert secret
    again = web.get("/api-keys")
    assert 'data-key="ci-bot"' in again.text and secret.group(1) not in again.text
    with TestClient(api.app, headers={"Authorization": f"Bearer {secret.group(1)}"}) as other:
        assert other.get("/api/work-pools").status_code == 200
    (made,) = [k for k in api.get("/api/api-keys").json() if k["name"] == "ci-bot"]
    assert made["role"] == "deployer" and made["pools"] == ["local"]
    bad = post(web, "/api-keys", token, name="", role="viewer")
    assert bad.status_code == 422 and "api_key.name" in bad.text
    assert post(web, "/api-keys", token, name="v", role="root").status_code == 422


@pytest.mark.parametrize("role", [Role.VIEWER, Role.DEPLOYER])
def test_only_admins_post_admin_forms(
    web: TestClient, services: Services, api: TestClient, role: Role
) -> None:
    token = sign_in(web, key_with(services, role))
    assert web.get("/work-pools/new").status_code == 403
    assert web.get("/work-pools/local/edit").status_code == 403
    assert post(web, "/api-keys", token, name="sneaky", role="viewer").status_code == 403
    created = post(web, "/work-pools/new", token, type="process", name="sneaky")
    assert created.status_code == 403
    edited = post(web, "/work-pools/local/edit", token, **{"config.python": "/bin/sh"})
    assert edited.status_code == 403
    assert all(k["name"] != "sneaky" for k in api.get("/api/api-keys").json())
    assert api.get("/api/work-pools/sneaky").status_code == 404
    assert api.get("/api/work-pools/local").json()["config"].get("python") != "/bin/sh"


def test_pool_form_follows_the_type_schema_and_shows_errors_by_the_field(
    web: TestClient, admin_key: str, api: TestClient
) -> None:
    token = sign_in(web, admin_key)
    form = web.get("/work-pools/new", params={"type": "ecs"})
    assert form.status_code == 200
    assert 'name="config.cluster"' in form.text and 'name="config.log_retention_days"' in form.text
    assert 'name="config.assign_public_ip"' in form.text  # a boolean: unset / true / false
    bad = post(
        web,
        "/work-pools/new",
        token,
        type="ecs",
        name="cloud",
        **{"config.log_retention_days": "-5", "config.region": "eu-west-1"},
    )
    assert bad.status_code == 422
    field = bad.text.split('data-field="log_retention_days"')[1].split("</div>")[0]
    assert 'class="field-error"' in field
    assert 'value="eu-west-1"' in bad.text  # what was typed is shown again
    assert api.get("/api/work-pools/cloud").status_code == 404  # nothing created
    ok = post(
        web,
        "/work-pools/new",
        token,
        type="process",
        name="extra",
        concurrency_limit="3",
        **{"config.working_dir": "/tmp", "config.allow_job_commands": ""},
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/work-pools/extra"
    pool = api.get("/api/work-pools/extra").json()
    assert pool["config"] == {"working_dir": "/tmp"} and pool["concurrency_limit"] == 3


def test_pool_edit_replaces_the_config_as_patch_does(
    web: TestClient, admin_key: str, api: TestClient
) -> None:
    body = {"name": "edit-me", "type": "process", "config": {"working_dir": "/tmp"}}
    assert api.post("/api/work-pools", json={**body, "paused": True}).status_code == 201
    token = sign_in(web, admin_key)
    form = web.get("/work-pools/edit-me/edit")
    assert 'name="config.working_dir"' in form.text and 'value="/tmp"' in form.text
    r = post(
        web,
        "/work-pools/edit-me/edit",
        token,
        concurrency_limit="",
        **{"config.python": "/usr/bin/python3", "config.working_dir": ""},
    )
    assert r.status_code == 303
    pool = api.get("/api/work-pools/edit-me").json()
    assert pool["config"] == {"python": "/usr/bin/python3"}
    assert pool["paused"] is True and pool["concurrency_limit"] is None
    bad = post(web, "/work-pools/edit-me/edit", token, **{"config.env": "[1]"})
    assert bad.status_code == 422 and 'class="field-error"' in bad.text
    assert api.get("/api/work-pools/edit-me").json()["config"] == {"python": "/usr/bin/python3"}


def test_events_feed_filters_pages_and_shows_an_event(
    web: TestClient, admin_key: str, api: TestClient, services: Services
) -> None:
    dep = api.post("/api/deployments", json=deployment_body()).json()
    later = (services.clock() + timedelta(days=1)).isoformat()
    run_ids = [
        api.post(f"/api/deployments/{dep['id']}/runs", json={"scheduled_start": later}).json()["id"]
        for _ in range(3)
    ]
    for i in range(55):
        body = {"name": f"custom.tick.{i}", "resource": {"id": "custom.thing"}, "payload": {"i": i}}
        assert api.post("/api/events", json=body).status_code == 201
    sign_in(web, admin_key)
    feed = web.get("/events", params={"name": "custom.*"})
    shown = re.findall(r'data-event="(custom\.tick\.\d+)"', feed.text)
    assert shown == [f"custom.tick.{i}" for i in range(54, 4, -1)]  # newest first, 50
    assert 'hx-get="/events/table?name=custom.%2A"' in feed.text
    cursor = re.search(r'href="(/events\?[^"]*cursor=[^"]+)"', feed.text)
    assert cursor
    older = web.get(cursor.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-event="(custom\.tick\.\d+)"', older.text)[-1] == "custom.tick.0"
    run_page = web.get(f"/runs/{run_ids[0]}")
    link = re.search(r'href="(/events\?resource=[^"]+)"', run_page.text)
    assert link
    run_events = web.get(link.group(1).replace("&amp;", "&"))
    assert 'data-event="pushpool.flow-run.Scheduled"' in run_events.text
    assert run_ids[1] not in run_events.text
    detail_link = re.search(r'href="(/events/[^"?]+\?at=[^"]+)"', run_events.text)
    assert detail_link
    detail = web.get(detail_link.group(1).replace("&amp;", "&"))
    assert detail.status_code == 200 and f'href="/runs/{run_ids[0]}"' in detail.text
    assert f"pushpool.deployment.{dep['id']}" in detail.text  # a related resource
    assert web.get("/events", params={"label": "nolabel"}).status_code == 422
    assert web.get("/events/nope", params={"at": later}).status_code == 404


def test_automations_list_detail_and_actions(
    web: TestClient, admin_key: str, api: TestClient, services: Services
) -> None:
    token = sign_in(web, admin_key)
    bad = post(web, "/automations", token, yaml="name: x\ntrigger: {}\n")
    assert bad.status_code == 422 and "automation.trigger" in bad.text
    text = (
        "name: on-fail\ntrigger:\n  event: pushpool.flow-run.Failed\n  threshold: 2\n"
        "  within: 60\nactions:\n  - type: pause-deployment\n    deployment: hello/default\n"
    )
    api.post("/api/deployments", json=deployment_body())
    created = post(web, "/automations", token, yaml=text)
    assert created.status_code == 303, created.text
    listing = web.get("/automations")
    assert 'data-automation="on-fail"' in listing.text
    assert "2 of pushpool.flow-run.Failed within 60 s" in listing.text
    detail = web.get("/automations/on-fail")
    assert "pause-deployment" in detail.text and "No firings yet." in detail.text
    assert post(web, "/automations/on-fail/pause", token).status_code == 303
    assert api.get("/api/automations/on-fail").json()["paused"] is True
    assert post(web, "/automations/on-fail/resume", token).status_code == 303
    assert api.get("/api/automations/on-fail").json()["paused"] is False
    viewer = TestClient(web.app, base_url=ORIGIN, follow_redirects=False)
    viewer_token = sign_in(viewer, key_with(services, Role.VIEWER))
    assert viewer.get("/automations").status_code == 403
    assert post(viewer, "/automations/on-fail/delete", viewer_token).status_code == 403
    assert post(web, "/automations/on-fail/delete", token).status_code == 303
    assert api.get("/api/automations/on-fail").status_code == 404


def test_block_forms_mask_secrets_and_keep_them_on_replace(
    web: TestClient, admin_key: str, api: TestClient, services: Services
) -> None:
    token = sign_in(web, admin_key)
    form = web.get("/blocks/smtp/+new")
    assert 'type="password"' in form.text and 'name="value.password"' in form.text
    missing = post(web, "/blocks/smtp/+new", token, name="mail", **{"value.password": MARKER})
    assert missing.status_code == 422 and "host" in missing.text and MARKER not in missing.text
    typed = {"value.host": "h", "value.port": "0", "value.password": MARKER}
    bad = post(web, "/blocks/smtp/+new", token, name="mail", **typed)
    assert bad.status_code == 422 and MARKER not in bad.text
    assert 'class="field-error"' in bad.text.split('data-field="port"')[1].split("</div>")[0]
    values = {"value.host": "mail.test", "value.password": MARKER, "value.use_tls": "false"}
    assert post(web, "/blocks/smtp/+new", token, name="mail", **values).status_code == 303
    replace = post(web, "/blocks/smtp/mail", token, **{"value.host": "smtp.test"})
    assert replace.status_code == 303
    kept = ops.read_values(services, "smtp", "mail")
    assert kept["password"] == MARKER and kept["host"] == "smtp.test"
    assert "use_tls" not in kept  # left unset on replace: back to the default
    api.post("/api/deployments", json=deployment_body(blocks=["smtp/mail"]))
    refused = post(web, "/blocks/smtp/mail/delete", token)
    assert refused.status_code == 409 and "hello/default" in refused.text
    pages = [web.get(p) for p in ("/blocks", "/blocks/smtp/mail", "/events", "/runs")]
    pages += [web.get("/events", params={"name": "pushpool.block.*"})]
    for r in [*pages, bad, replace, refused]:
        assert MARKER not in r.text
    assert "********" in web.get("/blocks/smtp/mail").text


def test_a_run_page_loads_older_log_lines_on_demand(
    web: TestClient, admin_key: str, api: TestClient, services: Services, clock: FakeClock
) -> None:
    dep = api.post("/api/deployments", json=deployment_body()).json()
    run = api.post(f"/api/deployments/{dep['id']}/runs", json={}).json()
    lines = [LogLine(run_id=run["id"], timestamp=clock(), message=f"line-{i}") for i in range(2500)]
    services.store.append_logs(run["id"], lines)
    sign_in(web, admin_key)
    shown = web.get(f"/runs/{run['id']}").text
    assert "line-1500<" in shown and "line-1499<" not in shown
    older = re.search(r'hx-get="(/runs/[^"]+/logs/older\?before=\d+)"', shown)
    assert older
    page2 = web.get(older.group(1)).text
    assert "line-500<" in page2 and "line-1499<" in page2 and "line-1500<" not in page2
    oldest = re.search(r'hx-get="(/runs/[^"]+/logs/older\?before=\d+)"', page2)
    assert oldest
    page3 = web.get(oldest.group(1)).text
    assert "line-0<" in page3 and "line-499<" in page3 and "logs/older" not in page3


def test_dashboard_requests_are_rate_limited_per_key(services: Services, admin_key: str) -> None:
    limited = services.settings.model_copy(
        update={"rate_limit_per_second": 0.01, "rate_limit_burst": 3}
    )
    svc = Services(**{**services.__dict__, "settings": limited})
    with TestClient(create_app(svc), base_url=ORIGIN, follow_redirects=False) as web:
        web.post("/login", data={"api_key": admin_key}, headers={"Origin": ORIGIN})
        codes = [web.get("/runs").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = web.get("/events")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert "Too many requests" in r.text
        other = key_with(svc, Role.VIEWER)  # another key has its own bucket
        web.post("/login", data={"api_key": other}, headers={"Origin": ORIGIN})
        assert web.get("/runs").status_code == 200


def test_document_fields_never_prefill_secrets_or_defaults() -> None:
    schema = {
        "properties": {
            "host": {"type": "string"},
            "port": {"type": "integer", "default": 587},
            "password": {"type": "string", "writeOnly": True},
            "tls": {"type": "boolean", "default": True},
        },
        "required": ["host"],
    }
    fields = {f.name: f for f in forms.document_fields(schema, {"host": "h", "password": "x"})}
    assert fields["host"].value == "h" and fields["host"].required
    assert fields["port"].value == "" and fields["port"].placeholder == "default: 587"
    assert fields["password"].kind == "password" and fields["password"].value == ""
    assert fields["tls"].kind == "select" and fields["tls"].value == ""
    parsed = forms.parse(list(fields.values()), {"v.port": "25", "v.tls": "false"}, "v.", "values")
    assert parsed == {"port": 25, "tls": False}


def test_every_dashboard_action_needs_the_csrf_token(web: TestClient, admin_key: str) -> None:
    from fastapi.routing import APIRoute

    from service.web.routes import AREAS, router

    token = sign_in(web, admin_key)
    routes = [*router.routes, *(r for area in AREAS for r in area.router.routes)]
    posts = [r.path for r in routes if isinstance(r, APIRoute) and "POST" in r.methods]
    assert len(posts) >= 20
    for path in posts:
        if path == "/login":
            continue
        concrete = re.sub(r"\{slug\}", "secret", re.sub(r"\{\w+\}", "x", path))
        r = web.post(concrete, data={"name": "x"}, headers={"Origin": ORIGIN})
        assert r.status_code == 403, (path, r.status_code)
        assert "CSRF" in r.text, path
    assert token
