"""The dashboard in a real browser: headless Chromium (the OS's) driven by Playwright,
against a live server on loopback with the ``process`` pool and the real runner.

Screenshots of the main pages go to ``$PUSHPOOL_SCREENSHOTS`` (default
``tests/.artifacts/screenshots``) for a person to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.browser import FLAGS, BrowserUnavailable, find_chromium, screenshots_dir
from support.e2e import invoke
from support.factories import EXAMPLES
from support.server import LiveServer, live_server

from service.models import Role
from service.security import create_api_key
from service.settings import Settings

pytestmark = pytest.mark.slow
REPO = EXAMPLES.parent
LIVE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        binary = find_chromium()
    except BrowserUnavailable as exc:
        pytest.skip(f"browser tests: {exc}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(binary), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        home=tmp_path_factory.mktemp("web") / "home",
        heartbeat_seconds=1,
        cancel_grace_seconds=3,
        submit_timeout_seconds=10,
        report_grace_seconds=0,
    )
    with pytest.MonkeyPatch.context() as mp, live_server(settings, run_scheduler=True) as server:
        mp.setenv("PUSHPOOL_API_URL", server.url)
        mp.setenv("PUSHPOOL_API_KEY", server.api_key)
        yield server


def deploy(entrypoint: str, name: str = "example") -> str:
    """Deploy an example through the CLI, as a user would; return its id."""
    code, out = invoke("deploy", f"examples/{entrypoint}", "--name", name, "--source", str(REPO))
    assert code == 0, out
    found = re.search(r"\(([0-9a-f-]{36})\)", out)
    assert found, out
    return found.group(1)


def start(live: LiveServer, deployment_id: str, **parameters: Any) -> str:
    r = live.client.post(f"/deployments/{deployment_id}/runs", json={"parameters": parameters})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def signed_in(chromium: Any, live: LiveServer, key: str, **context: Any) -> Any:
    """A new browser context (its own cookies) signed in with ``key`` through the form."""
    page = chromium.new_context(**context).new_page()
    page.goto(live.url + "/")
    assert page.url.endswith("/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/runs$"))
    return page


def shot(page: Any, name: str) -> Path:
    path = screenshots_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_state(page: Any, state: str) -> None:
    """Until the run page's live part (htmx poll, no reload) shows ``state``."""
    page.wait_for_selector(f'#run-live[data-state="{state}"]', timeout=LIVE_TIMEOUT_MS)


@pytest.fixture(scope="module")
def admin(chromium: Any, live: LiveServer) -> Iterator[Any]:
    page = signed_in(chromium, live, live.api_key, viewport={"width": 1280, "height": 900})
    yield page
    page.context.close()


def test_session_cookie_is_http_only_strict_and_secure(admin: Any) -> None:
    (cookie,) = admin.context.cookies()
    assert cookie["name"] == "pushpool_session"
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert admin.evaluate("document.cookie") == ""  # the page's JavaScript never sees it


def test_deploy_run_from_the_form_and_watch_it_complete(admin: Any, live: LiveServer) -> None:
    dep_id = deploy("typed_params.py:add")
    admin.goto(live.url + "/deployments")
    assert admin.locator('tr[data-deployment="add/example"]').count() == 1
    shot(admin, "deployments")
    admin.click("text=add/example")
    admin.wait_for_url(f"**/deployments/{dep_id}")
    # Client-side validation: the required parameter is missing, nothing is submitted.
    admin.click('button[data-action="run"]')
    assert admin.url.endswith(f"/deployments/{dep_id}")
    assert admin.eval_on_selector("#p-a", "el => el.validity.valueMissing")
    admin.fill("#p-a", "40")
    admin.fill("#p-label", "answer")
    shot(admin, "deployment-run-form")
    admin.click('button[data-action="run"]')
    admin.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    wait_state(admin, "COMPLETED")
    admin.wait_for_selector("#log-lines >> text=answer: 40 + 2 = 42", timeout=LIVE_TIMEOUT_MS)
    assert '"total": 42' in admin.inner_text("#result")
    shot(admin, "run-completed")
    admin.goto(live.url + "/runs")
    assert admin.locator("table.runs tbody tr").count() >= 1
    # The list is live: a run started elsewhere shows up without a reload.
    other = start(live, dep_id, a=1)
    admin.wait_for_selector(f'tr[data-run="{other}"]', timeout=LIVE_TIMEOUT_MS)
    shot(admin, "runs")


def test_server_refuses_parameters_the_schema_refuses(admin: Any, live: LiveServer) -> None:
    dep_id = deploy("typed_params.py:add", name="server-check")
    admin.goto(f"{live.url}/deployments/{dep_id}")
    admin.fill("#p-a", "7")
    admin.evaluate("document.querySelector('#p-a').setAttribute('type', 'text')")
    admin.fill("#p-a", "seven")  # past the browser's checks: the server names the field
    admin.click('button[data-action="run"]')
    assert "parameters.a" in admin.inner_text("#form-error")


def test_cancel_a_sleeping_run_from_its_page(admin: Any, live: LiveServer) -> None:
    run_id = start(live, deploy("sleepy.py:sleep"), seconds=60)
    admin.goto(f"{live.url}/runs/{run_id}")
    wait_state(admin, "RUNNING")
    admin.wait_for_selector("#log-lines >> text=Sleeping for 60", timeout=LIVE_TIMEOUT_MS)
    admin.click('button[data-action="cancel"]')
    wait_state(admin, "CANCELLED")
    assert admin.locator('button[data-action="cancel"]').count() == 0


def test_failed_run_shows_its_traceback(admin: Any, live: LiveServer) -> None:
    run_id = start(live, deploy("failing.py:fail"), message="kaput")
    admin.goto(f"{live.url}/runs/{run_id}")
    wait_state(admin, "FAILED")
    traceback = admin.inner_text("#traceback")
    assert "Traceback" in traceback and "ValueError: kaput" in traceback
    shot(admin, "run-failed")


def test_graph_of_mapped_tasks(admin: Any, live: LiveServer) -> None:
    run_id = start(live, deploy("etl.py:etl"), rows=3, failure_rate=0)
    admin.goto(f"{live.url}/runs/{run_id}")
    wait_state(admin, "COMPLETED")
    nodes = admin.eval_on_selector_all(
        "svg.graph g.node", "els => els.map(e => [e.dataset.id, e.dataset.name])"
    )
    names = {node_id: name for node_id, name in nodes}
    edges = admin.eval_on_selector_all(
        "svg.graph path.edge", "els => els.map(e => [e.dataset.source, e.dataset.target])"
    )
    mapped = [f"transform[{i}]" for i in range(3)]
    assert sorted(names.values()) == ["extract", "load", *mapped]
    named = sorted((names[s], names[t]) for s, t in edges)
    assert named == [("extract", m) for m in mapped] + [(m, "load") for m in mapped]
    shot(admin, "run-graph")


def test_viewer_sees_no_actions_and_forged_posts_get_403(chromium: Any, live: LiveServer) -> None:
    _, secret = create_api_key(live.services.store, "watcher", live.services.clock(), Role.VIEWER)
    dep_id = deploy("typed_params.py:add", name="viewed")
    run_id = start(live, dep_id, a=1)
    page = signed_in(chromium, live, secret, viewport={"width": 1280, "height": 900})
    try:
        for path in (f"/runs/{run_id}", f"/deployments/{dep_id}", "/work-pools/local"):
            page.goto(live.url + path)
            assert page.locator("[data-action]").count() == 0, path
        assert page.locator("#run-form").count() == 0
        token = page.eval_on_selector("body", "b => JSON.parse(b.getAttribute('hx-headers'))")
        headers = {**token, "Origin": live.url}
        for action in (f"/runs/{run_id}/cancel", f"/deployments/{dep_id}/run"):
            r = page.request.post(live.url + action, headers=headers, form={"param.a": "1"})
            assert r.status == 403, action
        before = live.client.get(f"/flow-runs?deployment_id={dep_id}").json()["items"]
        assert len(before) == 1  # the forged run was not created
        shot(page, "viewer-run")
    finally:
        page.context.close()


def test_phone_and_dark_theme(chromium: Any, live: LiveServer) -> None:
    page = signed_in(
        chromium,
        live,
        live.api_key,
        viewport={"width": 390, "height": 844},
        color_scheme="dark",
        is_mobile=True,
    )
    try:
        page.goto(live.url + "/runs")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling on a phone
        shot(page, "phone-runs-dark")
        page.click("table.runs tbody tr >> nth=0 >> a")
        page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
        shot(page, "phone-run-dark")
        page.click("#theme-toggle")
        assert page.evaluate("document.documentElement.dataset.theme") == "light"
    finally:
        page.context.close()


def test_keyboard_reaches_the_navigation(admin: Any, live: LiveServer) -> None:
    admin.goto(live.url + "/runs")
    seen = []
    for _ in range(6):
        admin.keyboard.press("Tab")
        seen.append(admin.evaluate("document.activeElement.textContent.trim()"))
    assert "Deployments" in seen


def test_revoking_the_key_signs_the_browser_out(chromium: Any, live: LiveServer) -> None:
    record, secret = create_api_key(
        live.services.store, "short", live.services.clock(), Role.VIEWER
    )
    page = signed_in(chromium, live, secret)
    try:
        live.services.store.revoke_api_key(record.id, live.services.clock())
        started = time.monotonic()
        page.goto(live.url + "/runs")
        assert page.url.endswith("/login") and time.monotonic() - started < 10
    finally:
        page.context.close()


SECRET_MARKER = "br0wser-SECRET-7c1d"


def test_admin_creates_a_key_and_sees_its_secret_once(admin: Any, live: LiveServer) -> None:
    admin.goto(live.url + "/api-keys")
    admin.fill("#key-name", "browser-made")
    admin.select_option("#key-role", "viewer")
    admin.click('button[data-action="create-key"]')
    secret = admin.inner_text("#new-secret").strip()
    assert secret.startswith("pp_")
    assert admin.locator('tr[data-key="browser-made"]').count() == 1
    shot(admin, "api-keys-created")
    with_key = {"Authorization": f"Bearer {secret}"}
    assert live.client.get("/work-pools", headers=with_key).status_code == 200
    admin.goto(live.url + "/api-keys")  # never shown again
    assert admin.locator("#new-secret").count() == 0 and secret not in admin.content()


def test_admin_creates_a_pool_through_the_form(admin: Any, live: LiveServer) -> None:
    admin.goto(live.url + "/work-pools")
    admin.click('a[data-action="new-pool"]')
    admin.select_option("#pool-type", "ecs")  # the form follows the type's schema
    admin.wait_for_selector("#c-cluster")
    admin.select_option("#pool-type", "process")
    admin.wait_for_selector("#c-working_dir")
    admin.fill("#pool-name", "browser-pool")
    admin.fill("#c-working_dir", "/tmp")
    admin.fill("#c-env", '{"A": 1}')  # valid JSON, refused by the model: shown by the field
    admin.click('button[data-action="save-pool"]')
    assert "config.env" not in admin.inner_text("#form-error")
    assert admin.locator('[data-field="env"] .field-error').count() == 1
    shot(admin, "pool-form-error")
    admin.fill("#c-env", '{"A": "1"}')
    admin.fill("#pool-limit", "2")
    admin.click('button[data-action="save-pool"]')
    admin.wait_for_url(re.compile(r"/work-pools/browser-pool$"))
    pool = live.client.get("/work-pools/browser-pool").json()
    assert pool["config"] == {"working_dir": "/tmp", "env": {"A": "1"}}
    assert pool["concurrency_limit"] == 2
    shot(admin, "pool-created")
    admin.click('a[data-action="edit-pool"]')
    assert admin.input_value("#c-working_dir") == "/tmp"
    shot(admin, "pool-edit")


def test_events_page_shows_a_runs_events(admin: Any, live: LiveServer) -> None:
    run_id = start(live, deploy("typed_params.py:add", name="evented"), a=2)
    admin.goto(f"{live.url}/runs/{run_id}")
    wait_state(admin, "COMPLETED")
    admin.click("#run-events")
    admin.wait_for_url(re.compile(r"/events\?resource="))
    for name in ("Scheduled", "Pending", "Running", "Completed"):
        admin.wait_for_selector(f'tr[data-event="pushpool.flow-run.{name}"]')
    names = admin.eval_on_selector_all("tr[data-event]", "els => els.map(e => e.dataset.event)")
    assert names[0] == "pushpool.flow-run.Completed"  # newest first
    shot(admin, "events")
    admin.click('tr[data-event="pushpool.flow-run.Completed"] a >> nth=0')
    admin.wait_for_url(re.compile(r"/events/[^/?]+\?at="))
    assert run_id in admin.inner_text("#event-resource")
    assert "pushpool.deployment." in admin.inner_text("#event-related")
    shot(admin, "event")


def test_block_form_masks_the_secret(admin: Any, live: LiveServer) -> None:
    admin.goto(live.url + "/blocks")
    admin.click('tr[data-type="secret"] a[data-action="new-block"]')
    assert admin.get_attribute("#v-value", "type") == "password"
    admin.fill("#block-name", "browser-secret")
    admin.fill("#v-value", SECRET_MARKER)
    admin.click('button[data-action="save-block"]')
    admin.wait_for_url(re.compile(r"/blocks/secret/browser-secret$"))
    assert admin.input_value("#v-value") == ""  # never prefilled
    assert "********" in admin.inner_text("#block-values")
    assert SECRET_MARKER not in admin.content()
    shot(admin, "block")
    admin.click('button[data-action="save-block"]')  # replaced, the secret left empty: kept
    admin.wait_for_url(re.compile(r"/blocks/secret/browser-secret$"))
    assert "version 2" in admin.inner_text("h1")
    admin.goto(live.url + "/blocks")
    assert SECRET_MARKER not in admin.content()
    shot(admin, "blocks")
    from service.blocks import ops

    assert ops.read_values(live.services, "secret", "browser-secret") == {"value": SECRET_MARKER}


def test_automations_pages(admin: Any, live: LiveServer) -> None:
    body = {
        "name": "browser-auto",
        "trigger": {"event": "pushpool.flow-run.Failed", "threshold": 3, "within": 600},
        "actions": [{"type": "pause-deployment", "deployment": "add/evented"}],
    }
    assert live.client.post("/automations", json=body).status_code == 201
    admin.goto(live.url + "/automations")
    assert admin.locator('tr[data-automation="browser-auto"]').count() == 1
    shot(admin, "automations")
    admin.click("text=browser-auto")
    admin.click('button[data-action="pause"]')
    admin.wait_for_selector("h1 .pill.paused")
    assert "pause-deployment" in admin.inner_text("#automation-yaml")
    shot(admin, "automation")
