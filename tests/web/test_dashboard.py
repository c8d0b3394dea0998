"""The dashboard without a browser: sessions, CSRF, roles, paging, forms, the graph."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.clock import FakeClock
from support.factories import deployment_body
from support.web import ORIGIN, key_with, post, sign_in

from service.errors import InvalidInput
from service.models import Role
from service.schedules import CronSchedule
from service.security import create_api_key
from service.services import Services
from service.store.base import RunFilter
from service.task_runs import GraphEdge, GraphNode, TaskGraph
from service.web import forms
from service.web.graph import layout
from service.web.pages_deployments import schedule_view
from service.web.pages_pools import masked


def deploy(api: TestClient, **body: Any) -> str:
    r = api.post("/api/deployments", json=deployment_body(**body))
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


@pytest.fixture
def dep_id(api: TestClient) -> str:
    return deploy(api)


def test_signed_out_pages_go_to_sign_in(web: TestClient) -> None:
    r = web.get("/runs")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    poll = web.get("/runs/table", headers={"HX-Request": "true"})
    assert poll.status_code == 401 and poll.headers["HX-Redirect"] == "/login"
    assert web.post("/runs/x/cancel").status_code == 303  # no session: to sign-in


def test_sign_in_sets_a_strict_http_only_secure_cookie(web: TestClient, admin_key: str) -> None:
    bad = web.post("/login", data={"api_key": "pp_nope"}, headers={"Origin": ORIGIN})
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    r = web.post("/login", data={"api_key": admin_key}, headers={"Origin": ORIGIN})
    cookie = r.headers["set-cookie"].lower()
    assert all(flag in cookie for flag in ("httponly", "secure", "samesite=strict", "path=/"))
    for path in ("/runs", "/deployments", "/work-pools", "/api-keys"):
        page = web.get(path)
        assert page.status_code == 200 and admin_key not in page.text, path
        assert page.headers["cache-control"] == "no-store"


def test_sign_out_needs_the_token_and_clears_the_cookie(web: TestClient, admin_key: str) -> None:
    token = sign_in(web, admin_key)
    assert post(web, "/logout", None).status_code == 403
    r = post(web, "/logout", token)
    assert r.status_code == 303 and 'pushpool_session=""' in r.headers["set-cookie"]
    assert web.get("/runs").headers["location"] == "/login"


def test_sign_in_from_another_site_is_refused(web: TestClient, admin_key: str) -> None:
    r = web.post("/login", data={"api_key": admin_key}, headers={"Origin": "https://evil.test"})
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_actions_need_the_sessions_csrf_token_and_our_origin(
    web: TestClient, admin_key: str, dep_id: str, api: TestClient
) -> None:
    token = sign_in(web, admin_key)
    assert post(web, f"/deployments/{dep_id}/pause", None).status_code == 403
    assert post(web, f"/deployments/{dep_id}/pause", "0" * 64).status_code == 403
    evil = web.post(
        f"/deployments/{dep_id}/pause",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.test"},
    )
    assert evil.status_code == 403
    assert api.get(f"/api/deployments/{dep_id}").json()["paused"] is False
    ok = web.post(f"/deployments/{dep_id}/pause", headers={"X-CSRF-Token": token})
    assert ok.status_code == 303
    assert api.get(f"/api/deployments/{dep_id}").json()["paused"] is True


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        (Role.VIEWER, "/deployments/{dep}/pause", False),
        (Role.VIEWER, "/deployments/{dep}/run", False),
        (Role.DEPLOYER, "/deployments/{dep}/pause", True),
        (Role.DEPLOYER, "/work-pools/local/pause", False),
        (Role.ADMIN, "/work-pools/local/pause", True),
    ],
)
def test_roles_decide_actions(
    web: TestClient, services: Services, dep_id: str, role: Role, path: str, allowed: bool
) -> None:
    token = sign_in(web, key_with(services, role))
    r = post(web, path.format(dep=dep_id), token)
    assert r.status_code == (303 if allowed else 403), r.text
    if not allowed:  # and nothing changed
        assert services.store.count_runs(RunFilter()) == 0
        assert not services.store.get_deployment(dep_id).paused
        assert not services.store.get_pool("local").paused


def test_viewer_pages_show_no_actions(web: TestClient, services: Services, dep_id: str) -> None:
    sign_in(web, key_with(services, Role.VIEWER))
    for path in (f"/deployments/{dep_id}", "/work-pools/local"):
        assert "data-action" not in web.get(path).text, path
    assert web.get("/api-keys").status_code == 403  # only admins see keys


def test_revoking_the_key_ends_the_session_at_once(web: TestClient, services: Services) -> None:
    record, secret = create_api_key(services.store, "short", services.clock(), Role.VIEWER)
    sign_in(web, secret)
    services.store.revoke_api_key(record.id, services.clock())
    assert web.get("/runs").headers["location"] == "/login"


def test_runs_list_newest_first_with_cursor_paging_and_filters(
    web: TestClient, admin_key: str, api: TestClient, dep_id: str, clock: FakeClock
) -> None:
    later = clock() + timedelta(days=1)
    ids = []
    for i in range(55):  # not due: they stay SCHEDULED, none is pushed
        start = (later + timedelta(minutes=i)).isoformat()
        r = api.post(
            f"/api/deployments/{dep_id}/runs",
            json={"scheduled_start": start, "name": f"run-{i}", "tags": ["t" if i % 2 else "u"]},
        )
        ids.append(r.json()["id"])
    sign_in(web, admin_key)
    first = web.get("/runs")
    shown = re.findall(r'data-run="([0-9a-f-]{36})"', first.text)
    assert shown == ids[::-1][:50]
    assert 'hx-trigger="every 2s' in first.text  # the first page follows live
    cursor = re.search(r'href="(/runs\?cursor=[^"]+)"', first.text)
    assert cursor
    second = web.get(cursor.group(1).replace("&amp;", "&"))
    assert re.findall(r'data-run="([0-9a-f-]{36})"', second.text) == ids[::-1][50:]
    assert "hx-trigger" not in second.text.split('id="runs-table"')[1].split(">")[0]
    by_name = web.get("/runs", params={"q": "run-7"})
    assert re.findall(r'data-run="([0-9a-f-]{36})"', by_name.text) == [ids[7]]
    by_tag = web.get("/runs", params={"tag": "u"})
    assert len(re.findall(r'data-run="', by_tag.text)) == 28
    table = web.get("/runs/table", params={"state": "COMPLETED"})
    assert "No runs match." in table.text


def test_run_form_fields_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 9},
            "x": {"type": ["number", "null"]},
            "mode": {"enum": ["fast", "slow", 3]},
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "on": {"type": "boolean", "default": True},
            "cfg": {"type": "object"},
            "name": {"type": "string", "maxLength": 5},
        },
        "required": ["n", "mode"],
    }
    fields = forms.fields(schema, {"x": 1.5})
    kinds = {f.name: f.kind for f in fields}
    assert kinds == {
        "n": "integer",
        "x": "number",
        "mode": "select",
        "day": "date",
        "at": "datetime",
        "on": "boolean",
        "cfg": "json",
        "name": "text",
    }
    by = {f.name: f for f in fields}
    assert by["n"].attrs == {"step": "1", "min": "1", "max": "9"} and by["n"].required
    assert by["x"].value == "1.5" and not by["x"].required
    assert by["on"].value == "true" and by["name"].attrs == {"maxlength": "5"}
    parsed = forms.parse(
        fields,
        {
            "param.n": "3",
            "param.mode": "3",
            "param.day": "2026-02-01",
            "param.at": "2026-02-01T09:30",
            "param.on": "false",
            "param.cfg": '{"a": [1]}',
            "param.name": "",
        },
    )
    assert parsed == {
        "n": 3,
        "mode": 3,
        "day": "2026-02-01",
        "at": "2026-02-01T09:30:00+00:00",
        "on": False,
        "cfg": {"a": [1]},
    }
    with pytest.raises(InvalidInput, match="not a whole number") as exc:
        forms.parse(fields, {"param.n": "three"})
    assert exc.value.field == "parameters.n"


def test_run_form_refuses_what_the_schema_refuses_and_creates_nothing(
    web: TestClient, admin_key: str, api: TestClient, services: Services
) -> None:
    schema = {"type": "object", "properties": {"name": {"enum": ["Ada", "Grace"]}}}
    dep_id = deploy(api, name="checked", parameter_schema=schema, parameters={"name": "Ada"})
    token = sign_in(web, admin_key)
    r = post(web, f"/deployments/{dep_id}/run", token, **{"param.name": '"Linus"'})
    assert r.status_code == 422 and "parameters.name" in r.text
    assert 'selected>"' not in r.text
    assert services.store.count_runs(RunFilter()) == 0


def test_next_ten_fire_times_in_the_schedules_zone(clock: FakeClock) -> None:
    view = schedule_view(CronSchedule(cron="0 9 * * *", timezone="Europe/Berlin"), clock())
    assert len(view.next_fires) == 10 and view.zone == "Europe/Berlin"
    assert all(t.hour == 9 and t.minute == 0 for t in view.next_fires)
    assert all(str(t.tzinfo) == "Europe/Berlin" for t in view.next_fires)


def test_deployment_page_shows_schedules_and_recent_runs(
    web: TestClient, admin_key: str, api: TestClient
) -> None:
    schedules = [{"cron": "30 6 * * 1", "timezone": "America/New_York"}]
    dep_id = deploy(api, name="weekly", schedules=schedules)
    sign_in(web, admin_key)
    page = web.get(f"/deployments/{dep_id}").text
    assert "cron 30 6 * * 1" in page and "America/New_York" in page
    assert len(re.findall(r"<li>Mon \d{4}-\d\d-\d\d 06:30:00 E[SD]T</li>", page)) == 10


def test_waiting_reasons_on_the_run_page(
    web: TestClient, admin_key: str, api: TestClient, dep_id: str
) -> None:
    api.patch("/api/work-pools/local", json={"paused": True})
    run = api.post(f"/api/deployments/{dep_id}/runs", json={}).json()
    sign_in(web, admin_key)
    page = web.get(f"/runs/{run['id']}").text
    assert "work pool &#39;local&#39; is paused" in page
    assert web.get("/runs/nope-nope").status_code == 404


def test_graph_layers_nodes_by_longest_upstream_path() -> None:
    def node(i: str) -> GraphNode:
        return GraphNode(
            id=i,
            name=i,
            state="COMPLETED",
            start_time=None,
            end_time=None,
            duration_seconds=None,
            attempts=1,
        )

    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("a", "d")]
    graph = TaskGraph(
        flow_run_id="r",
        nodes=[node(i) for i in "abcd"],
        edges=[GraphEdge(source=s, target=t) for s, t in edges],
    )
    placed = layout(graph)
    x = {n.id: n.x for n in placed.nodes}
    assert x["a"] < x["b"] == x["d"] < x["c"]  # c waits for b: one layer further
    assert len(placed.edges) == 4
    assert placed.width > x["c"] and placed.height > max(n.y for n in placed.nodes)


def test_static_files_are_content_hashed_and_cached(web: TestClient, admin_key: str) -> None:
    sign_in(web, admin_key)
    page = web.get("/runs").text
    names = re.findall(r"/static/([a-z]+\.[0-9a-f]{10}\.(?:css|js|min\.js))\b", page)
    assert sorted(n.split(".")[0] for n in names) == ["app", "app", "htmx"]
    for name in names:
        r = web.get(f"/static/{name}")
        assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
        again = web.get(f"/static/{name}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304
    assert web.get("/static/app.0000000000.css").status_code == 404


def test_secret_looking_pool_config_is_masked() -> None:
    shown = masked({"region": "x", "client_secret": "s", "nested": {"db_password": "p"}})
    assert shown == {"region": "x", "client_secret": "••••••", "nested": {"db_password": "••••••"}}


def test_dashboard_routes_are_not_in_the_api_document(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert all(p.startswith("/api/") for p in paths)
