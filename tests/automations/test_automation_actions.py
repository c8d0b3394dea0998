"""The e-mail action through a local SMTP sink (STARTTLS, AUTH), pausing a pool or a
deployment's schedules, and who may create which action — through the API and the tick's
outbox worker on the conftest's services."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.factories import deployment_body
from support.smtp_sink import PASSWORD, USER, Sink, smtp_sink

from service.automation_actions import work
from service.automations import render, template_context
from service.errors import InvalidInput
from service.event_records import EventFilter, Resource, new_event
from service.events import record
from service.services import Services
from service.settings import Settings

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    with smtp_sink(tmp_path) as s:
        # The worker verifies the server against the default trust store: trust the sink.
        monkeypatch.setenv("SSL_CERT_FILE", str(s.cert))
        yield s


@pytest.fixture
def mail_api(api: TestClient, services: Services, sink: Sink) -> TestClient:
    """The API with an ``smtp/ops`` block for the sink, which the admin allows."""
    services.settings.automation_smtp_allowlist = [f"localhost:{sink.port}"]
    services.settings.automation_allowed_networks = ["127.0.0.0/8", "::1/128"]
    services.settings.automation_retry_seconds = 1
    values = {
        "host": "localhost",
        "port": sink.port,
        "username": USER,
        "password": PASSWORD,
        "from_address": "pushpool@example.test",
    }
    r = api.put("/api/blocks/smtp/ops", json={"values": values})
    assert r.status_code in (200, 201), r.text
    return api


def email(**fields: Any) -> dict[str, Any]:
    return {"type": "email", "smtp": "smtp/ops", "to": ["oncall@example.test"]} | fields


def automation(*actions: dict[str, Any], name: str = "a") -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {"event": "pushpool.flow-run.Failed"},
        "actions": list(actions),
    }


def failed(services: Services, run_name: str, at: datetime = T0) -> None:
    resource = Resource(id="pushpool.flow-run.r1", labels={"name": run_name, "flow": "etl"})
    record(services.store, "pushpool.flow-run.Failed", resource, now=at)


def outcomes(services: Services, name: str = "a") -> list[dict[str, Any]]:
    flt = EventFilter(resource=f"pushpool.automation.{name}")
    return [
        {"name": e.name, **e.payload}
        for e in services.store.list_events(flt, 50).items
        if e.name != "pushpool.automation.triggered"
    ]


def test_a_failed_run_sends_an_email_naming_it_and_the_password_stays_secret(
    mail_api: TestClient, services: Services, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    subject = "Run {{ event.resource.labels.name }} failed"
    r = mail_api.post("/api/automations", json=automation(email(subject=subject)))
    assert r.status_code == 201, r.text
    caplog.set_level(logging.DEBUG, logger="pushpool")
    failed(services, "brave-otter")
    assert work(services, T0 + timedelta(seconds=1)) == 1
    [msg] = sink.messages
    assert msg["Subject"] == "Run brave-otter failed"
    assert msg["To"] == "oncall@example.test" and msg["From"] == "pushpool@example.test"
    assert "brave-otter" in msg.get_content()  # the default body names the resource
    assert sink.logins == [USER]  # logged in with the block's password, over STARTTLS
    [outcome] = outcomes(services)
    assert outcome["name"] == "pushpool.automation.action.succeeded"
    assert outcome["action"] == "email" and outcome["to"] == ["oncall@example.test"]
    everything = [e.model_dump_json() for e in services.store.list_events(EventFilter(), 500).items]
    seen = "\n".join([*everything, caplog.text, mail_api.get("/api/automations").text])
    assert PASSWORD not in seen


def test_a_failing_smtp_server_is_retried_with_backoff_then_recorded_failed(
    mail_api: TestClient, services: Services, sink: Sink
) -> None:
    services.settings.automation_action_attempts = 2
    sink.refuse = f"451 try later {PASSWORD}"  # a reply text is never recorded
    assert mail_api.post("/api/automations", json=automation(email())).status_code == 201
    failed(services, "r1")
    assert work(services, T0) == 1  # try 1 fails at once: the tick goes on
    assert work(services, T0 + timedelta(milliseconds=500)) == 0  # backing off
    assert outcomes(services) == []
    assert work(services, T0 + timedelta(seconds=2)) == 1
    [outcome] = outcomes(services)
    assert outcome["name"] == "pushpool.automation.action.failed"
    assert outcome["error"] == "SMTP send failed: the server answered 451"
    assert outcome["attempts"] == 2 and sink.messages == []
    assert services.store.due_action_jobs(T0 + timedelta(days=1), 10) == []


def test_an_email_is_sent_only_with_tls_verified_for_the_host(
    mail_api: TestClient, services: Services, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")  # the sink's certificate is not trusted now
    services.settings.automation_action_attempts = 1
    assert mail_api.post("/api/automations", json=automation(email())).status_code == 201
    failed(services, "r1")
    work(services, T0)
    [outcome] = outcomes(services)
    assert outcome["error"] == "SMTP starttls failed: SSLCertVerificationError"
    assert sink.messages == [] and sink.logins == []


def test_a_templated_subject_cannot_add_headers(
    mail_api: TestClient, services: Services, sink: Sink
) -> None:
    body = automation(email(subject="{{ event.resource.labels.name }}"))
    assert mail_api.post("/api/automations", json=body).status_code == 201
    failed(services, "x\r\nBcc: victim@example.test")
    work(services, T0)
    [msg] = sink.messages
    assert msg["Bcc"] is None and msg["Subject"] == "x Bcc: victim@example.test"


@pytest.mark.parametrize(
    ("action", "field", "message"),
    [
        (email(smtp="smtp/nope"), "actions.0.smtp", "does not exist"),
        (email(to=["not an address"]), "actions[0].email.to[0]", "pattern"),
        (email(to=[]), "actions[0].email.to", "at least 1"),
        (email(subject="{{ x"), "actions.0.subject", "line 1"),
        (email(body="{% for %}"), "actions.0.body", "line 1"),
        (email(smtp="secret/ops"), "actions[0].email.smtp", "pattern"),
        ({"type": "pause-work-pool", "work_pool": "nope"}, "actions.0.work_pool", "no such"),
        ({"type": "pause-schedules", "deployment": "x/y"}, "actions.0.deployment", "no such"),
        ({"type": "resume-work-pool"}, "actions[0].resume-work-pool.work_pool", "required"),
    ],
)
def test_new_actions_are_checked_at_create_time(
    mail_api: TestClient, action: dict[str, Any], field: str, message: str
) -> None:
    r = mail_api.post("/api/automations", json=automation(action))
    assert r.status_code == 422, r.text
    assert field in r.json()["message"] and message in r.text
    assert mail_api.get("/api/automations").json() == []


def test_an_smtp_server_the_admin_did_not_allow_is_refused(
    mail_api: TestClient, services: Services, sink: Sink
) -> None:
    services.settings.automation_smtp_allowlist = ["smtp.example.test"]
    r = mail_api.post("/api/automations", json=automation(email()))
    assert r.status_code == 422 and "actions.0.smtp" in r.text and "allowlist" in r.text
    services.settings.automation_smtp_allowlist = [f"localhost:{sink.port}"]
    values = {"host": "localhost", "port": sink.port, "password": PASSWORD, "use_tls": False}
    mail_api.put("/api/blocks/smtp/clear", json={"values": values | {"from_address": "a@b.c"}})
    r = mail_api.post("/api/automations", json=automation(email(smtp="smtp/clear")))
    assert r.status_code == 422 and "in clear" in r.text
    assert PASSWORD not in r.text


def test_pause_and_resume_a_pool(api: TestClient, services: Services) -> None:
    pause = {"type": "pause-work-pool", "work_pool": "local"}
    resume = {"type": "resume-work-pool", "work_pool": "local"}
    assert api.post("/api/automations", json=automation(pause)).status_code == 201
    failed(services, "r1")
    work(services, T0)
    assert api.get("/api/work-pools/local").json()["paused"] is True
    assert outcomes(services)[0]["name"] == "pushpool.automation.action.succeeded"
    pool_events = services.store.list_events(EventFilter(names=("pushpool.work-pool.*",)), 10)
    assert pool_events.items[0].name == "pushpool.work-pool.paused"
    assert api.post("/api/automations", json=automation(resume, name="b")).status_code == 201
    api.delete("/api/automations/a")
    failed(services, "r2")
    work(services, T0 + timedelta(seconds=1))
    assert api.get("/api/work-pools/local").json()["paused"] is False


def test_pause_schedules_only_then_resume_them(api: TestClient, services: Services) -> None:
    schedules = [{"interval_seconds": 3600}, {"cron": "0 3 * * *"}]
    dep = api.post("/api/deployments", json=deployment_body(schedules=schedules)).json()
    action = {"type": "pause-schedules", "deployment": "hello/default"}
    assert api.post("/api/automations", json=automation(action)).status_code == 201
    failed(services, "r1")
    work(services, T0)
    after = api.get(f"/api/deployments/{dep['id']}").json()
    assert after["paused"] is False  # the deployment itself still takes runs
    assert [s["active"] for s in after["schedules"]] == [False, False]
    assert api.post(f"/api/deployments/{dep['id']}/runs", json={}).status_code == 201
    assert outcomes(services)[0]["schedules"] == 2
    resume = {"type": "resume-schedules", "deployment": dep["id"]}
    api.delete("/api/automations/a")
    assert api.post("/api/automations", json=automation(resume, name="b")).status_code == 201
    failed(services, "r2")
    work(services, T0 + timedelta(seconds=1))
    after = api.get(f"/api/deployments/{dep['id']}").json()
    assert [s["active"] for s in after["schedules"]] == [True, True]


def test_a_deployment_without_schedules_is_refused_for_pause_schedules(
    api: TestClient,
) -> None:
    api.post("/api/deployments", json=deployment_body())
    action = {"type": "pause-schedules", "deployment": "hello/default"}
    r = api.post("/api/automations", json=automation(action))
    assert r.status_code == 422 and "has no schedules" in r.text


def key(api: TestClient, role: str, **fields: Any) -> TestClient:
    made = api.post("/api/api-keys", json={"name": role, "role": role} | fields).json()
    return TestClient(api.app, headers={"Authorization": f"Bearer {made['key']}"})


def test_an_automation_action_beyond_the_creators_role_is_403(api: TestClient) -> None:
    deployer = key(api, "deployer")
    pause = automation({"type": "pause-work-pool", "work_pool": "local"})
    r = deployer.post("/api/automations", json=pause)
    assert r.status_code == 403 and "admin" in r.text and "pause-work-pool" in r.text
    limited = key(api, "deployer", name="limited", pools=["local"])
    schedules = automation({"type": "pause-schedules", "deployment": "hello/default"})
    r = limited.post("/api/automations", json=schedules)
    assert r.status_code == 403 and "'notify' or 'email'" in r.text
    assert api.get("/api/automations").json() == []


def test_a_viewer_key_creates_no_automation(api: TestClient) -> None:
    viewer = key(api, "viewer")
    notify = automation({"type": "notify", "url": "https://hooks.example.test/x"})
    r = viewer.post("/api/automations", json=notify)
    assert r.status_code == 403 and "deployer" in r.text
    assert api.get("/api/automations").json() == []


def test_templates_never_see_block_secrets(mail_api: TestClient, services: Services) -> None:
    services.settings.automation_notify_allowlist = ["https://hooks.example.test/"]
    mail_api.put("/api/blocks/secret/db", json={"values": {"value": PASSWORD}})
    notify = {"type": "notify", "url": "https://hooks.example.test/x"}
    r = mail_api.post(
        "/api/automations", json=automation(notify | {"body": "{{ block:secret/db }}"})
    )
    assert r.status_code == 422 and "actions.0.body" in r.text  # env syntax is no template
    context = template_context("a", new_event("x", Resource(id="r"), occurred=T0))
    assert set(context) == {"event", "automation"}  # nothing else is in scope
    for text in ("{{ blocks }}", "{{ smtp.password }}", "{{ secret }}"):
        with pytest.raises(InvalidInput, match="undefined"):
            render(text, context)


@pytest.mark.parametrize("address", ["10.0.0.5", "169.254.169.254", "127.0.0.1"])
def test_an_smtp_server_on_an_internal_address_is_refused(address: str) -> None:
    from service import mail
    from service.notify import Refused

    settings = Settings(automation_smtp_allowlist=["smtp.example.test"])
    server = mail.Server(host="smtp.example.test", from_address="a@example.test")
    msg = mail.message("a@example.test", ["b@example.test"], "s", "b")
    with pytest.raises(Refused, match="non-public"):
        mail.send(server, msg, settings, resolver=lambda host: [address])


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_on_the_smtps_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import mail

    with smtp_sink(tmp_path, implicit_tls=True) as sink:
        monkeypatch.setattr(mail, "IMPLICIT_TLS_PORT", sink.port)  # 465 is not free here
        settings = Settings(
            automation_smtp_allowlist=["localhost"], automation_allowed_networks=["127.0.0.0/8"]
        )
        server = mail.Server(host="localhost", port=sink.port, username=USER, password=PASSWORD)
        msg = mail.message(USER, ["b@example.test"], "implicit", "b")
        context = sink.client_context()
        assert mail.send(server, msg, settings, context=context, resolver=lambda h: ["127.0.0.1"])
        assert [m["Subject"] for m in sink.messages] == ["implicit"] and sink.logins == [USER]
