"""Automations end to end over real HTTP: uvicorn on loopback, the process pool, the real
runner, and a local HTTP sink standing in for a Slack-style incoming webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.factories import EXAMPLES
from support.server import LiveServer, live_server
from support.smtp_sink import PASSWORD, USER, smtp_sink
from support.smtp_sink import Sink as SmtpSink

from service.settings import Settings

pytestmark = pytest.mark.slow


class Sink:
    """A local HTTP server that keeps every POST body it receives."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                sink.bodies.append(json.loads(raw))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def live(tmp_path: Path, sink: Sink) -> Iterator[LiveServer]:
    settings = Settings(
        home=tmp_path / "home",
        heartbeat_seconds=1,
        submit_timeout_seconds=10,
        report_grace_seconds=0,
        automation_notify_allowlist=["http://127.0.0.1:"],
        automation_allowed_networks=["127.0.0.0/8"],
    )
    with live_server(settings) as server:
        yield server


def wait(live: LiveServer, what: str, done: Callable[[], Any], timeout: float = 60) -> Any:
    """Tick over HTTP until ``done()`` is truthy (the tick works the action outbox)."""
    deadline = time.monotonic() + timeout
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        live.client.post("/scheduler/tick")
        time.sleep(0.2)


def deploy(live: LiveServer, entrypoint: str) -> dict[str, Any]:
    body = {
        "name": "e2e",
        "flow_name": entrypoint.rsplit(":", 1)[1],
        "entrypoint": entrypoint,
        "work_pool": "local",
        "source": {"type": "local", "path": str(EXAMPLES)},
    }
    r = live.client.post("/deployments", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def automate(live: LiveServer, body: dict[str, Any]) -> None:
    r = live.client.post("/automations", json=body)
    assert r.status_code == 201, r.text


def test_a_failed_run_notifies_the_sink_with_its_name(live: LiveServer, sink: Sink) -> None:
    automate(
        live,
        {
            "name": "notify-on-failure",
            "trigger": {"event": "pushpool.flow-run.Failed"},
            "actions": [
                {
                    "type": "notify",
                    "url": sink.url,
                    "body": '{"text": {{ ("Run " ~ event.resource.labels.name ~ " failed")'
                    " | tojson }}}",
                }
            ],
        },
    )
    dep = deploy(live, "failing.py:fail")
    r = live.client.post(f"/deployments/{dep['id']}/runs", json={})
    assert r.status_code == 201, r.text
    run = r.json()
    bodies = wait(live, "the notification", lambda: sink.bodies)
    assert bodies == [{"text": f"Run {run['name']} failed"}]
    history = live.client.get("/events", params={"resource": "pushpool.automation.*"}).json()
    names = [e["name"] for e in history["items"]]
    assert names == ["pushpool.automation.action.succeeded", "pushpool.automation.triggered"]


def test_a_failed_run_emails_its_name_through_the_smtp_block(
    live: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_sink(tmp_path) as mail:
        _email_on_failure(live, mail, monkeypatch)
        dep = deploy(live, "failing.py:fail")
        run = live.client.post(f"/deployments/{dep['id']}/runs", json={}).json()
        [msg] = wait(live, "the e-mail", lambda: mail.messages)
    assert msg["Subject"] == f"Run {run['name']} failed" and msg["To"] == "ops@example.test"
    assert run["name"] in msg.get_content() and mail.logins == [USER]
    history = live.client.get("/events", params={"resource": "pushpool.automation.*"}).text
    assert '"action":"email"' in history and PASSWORD not in history


def _email_on_failure(live: LiveServer, mail: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(mail.cert))  # trust the sink's certificate
    live.services.settings.automation_smtp_allowlist = ["localhost"]
    block = {"host": "localhost", "port": mail.port, "username": USER, "password": PASSWORD}
    r = live.client.put("/blocks/smtp/ops", json={"values": block | {"from_address": USER}})
    assert r.status_code == 201, r.text
    email = {
        "type": "email",
        "smtp": "smtp/ops",
        "to": ["ops@example.test"],
        "subject": "Run {{ event.resource.labels.name }} failed",
    }
    trigger = {"event": "pushpool.flow-run.Failed"}
    automate(live, {"name": "mail-on-failure", "trigger": trigger, "actions": [email]})


def test_a_webhook_call_runs_a_deployment_with_a_parameter_from_the_body(
    live: LiveServer,
) -> None:
    dep = deploy(live, "hello.py:hello")
    template = (
        '{"name": "shop.order", "resource": {"id": "shop.order.{{ body.id }}"}, '
        '"payload": {"customer": {{ body.customer | tojson }}}}'
    )
    r = live.client.post("/webhooks", json={"name": "shop", "template": template})
    assert r.status_code == 201, r.text
    automate(
        live,
        {
            "name": "greet-customer",
            "trigger": {"event": "shop.order"},
            "actions": [
                {
                    "type": "run-deployment",
                    "deployment": "hello/e2e",
                    "parameters": {"name": "{{ event.payload.customer }}"},
                }
            ],
        },
    )
    url = f"{live.url}/api/hooks/{r.json()['slug']}"
    assert httpx.post(url, json={"id": 7, "customer": "ada"}).status_code == 201

    def runs() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = live.client.get(
            "/flow-runs", params={"deployment_id": dep["id"]}
        ).json()["items"]
        return items

    made = wait(live, "the run", runs)
    assert [run["parameters"] for run in made] == [{"name": "ada"}]
