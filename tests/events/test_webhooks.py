"""Webhooks: signatures (GitHub, Stripe), the sandboxed template, and calls over real HTTP
that make an event — or a clear 4xx and nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import LiveServer, live_server

from service.errors import BadSignature, InvalidInput
from service.event_records import Webhook
from service.settings import Settings
from service.webhooks import render, verify

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECRET = "it-is-a-secret"
TEMPLATE = (
    '{"name": "github.{{ headers["x-github-event"] }}", '
    '"resource": {"id": "github.repo.{{ body.repository.full_name }}", '
    '"labels": {"ref": {{ body.ref | tojson }}}}, '
    '"payload": {"pusher": {{ body.pusher.name | tojson }}, "q": {{ query.get("x") | tojson }}}}'
)


def hook(signature: str = "none", template: str = TEMPLATE) -> Webhook:
    secret = None if signature == "none" else SECRET
    return Webhook(
        name="h", slug="s", template=template, signature=signature, secret=secret, created_at=T0
    )  # type: ignore[arg-type]


def github_sig(raw: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def stripe_sig(raw: bytes, at: int) -> str:
    v1 = hmac.new(SECRET.encode(), f"{at}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={at},v1={v1}"


RAW = json.dumps(
    {"ref": "refs/heads/main", "repository": {"full_name": "acme/etl"}, "pusher": {"name": "ann"}}
).encode()


def test_github_signatures() -> None:
    verify(hook("github"), RAW, {"x-hub-signature-256": github_sig(RAW)}, T0)
    with pytest.raises(BadSignature):
        verify(hook("github"), RAW, {"x-hub-signature-256": github_sig(RAW + b" ")}, T0)
    with pytest.raises(BadSignature):
        verify(hook("github"), RAW, {}, T0)


def test_stripe_signatures_and_their_age() -> None:
    now = int(T0.timestamp())
    verify(hook("stripe"), RAW, {"stripe-signature": stripe_sig(RAW, now - 60)}, T0)
    with pytest.raises(BadSignature, match="too old"):
        verify(hook("stripe"), RAW, {"stripe-signature": stripe_sig(RAW, now - 3600)}, T0)
    with pytest.raises(BadSignature, match="does not match"):
        verify(hook("stripe"), RAW, {"stripe-signature": stripe_sig(b"{}", now)}, T0)
    with pytest.raises(BadSignature):
        verify(hook("stripe"), RAW, {"stripe-signature": "v1=abc"}, T0)


def test_the_template_makes_the_event_from_body_headers_and_query() -> None:
    event = render(hook(), RAW, {"x-github-event": "push"}, {"x": "1"})
    assert event.name == "github.push"
    assert event.resource is not None and event.resource.id == "github.repo.acme/etl"
    assert event.resource.labels == {"ref": "refs/heads/main"}
    assert event.payload == {"pusher": "ann", "q": "1"}


@pytest.mark.parametrize(
    ("template", "raw", "message"),
    [
        (TEMPLATE, b'{"ref": "x"}', "template failed"),  # body.repository undefined
        (TEMPLATE, b"not json", "template failed"),  # body is None
        ('{{ "".__class__.__mro__ }}', b"{}", "template failed"),  # the sandbox refuses
        ("{{ body.a }}", b'{"a": 1}', "did not make an event"),  # not a JSON object
        ('{"name": "x", "extra": 1}', b"{}", "did not make an event"),  # not an event
    ],
)
def test_a_template_that_cannot_make_an_event_is_invalid_input(
    template: str, raw: bytes, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        render(hook(template=template), raw, {"x-github-event": "push"}, {})


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(home=tmp_path / "home", max_body_bytes=64 * 1024)
    with live_server(settings) as server:
        yield server


def create(live: LiveServer, **body: Any) -> dict[str, Any]:
    r = live.client.post("/webhooks", json={"name": "gh", "template": TEMPLATE} | body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def events(live: LiveServer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = live.client.get("/events", params={"name": "github.*"}).json()[
        "items"
    ]
    return items


def test_a_call_without_a_key_makes_an_event(live: LiveServer) -> None:
    made = create(live, signature="github", secret=SECRET)
    assert "secret" not in made and len(made["slug"]) >= 32
    url = f"{live.url}/api/hooks/{made['slug']}?x=7"
    headers = {"x-github-event": "push", "x-hub-signature-256": github_sig(RAW)}
    r = httpx.post(url, content=RAW, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "github.push" and r.json()["payload"]["q"] == "7"
    assert {x["id"] for x in r.json()["related"]} == {"pushpool.webhook.gh"}
    assert [e["id"] for e in events(live)] == [r.json()["id"]]
    assert SECRET not in live.client.get("/webhooks").text


@pytest.mark.parametrize(
    ("raw", "headers", "status"),
    [
        (RAW, {"x-github-event": "push"}, 401),  # no signature
        (b'{"ref": 1}', {"x-github-event": "push"}, 422),  # the template fails
        (b"x" * (65 * 1024), {}, 413),  # oversized
    ],
)
def test_a_bad_call_is_a_clear_4xx_and_makes_nothing(
    live: LiveServer, raw: bytes, headers: dict[str, str], status: int
) -> None:
    made = create(
        live,
        signature="github" if status == 401 else "none",
        secret=SECRET if status == 401 else None,
    )
    r = httpx.post(f"{live.url}/api/hooks/{made['slug']}", content=raw, headers=headers)
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text and r.json()["detail"]
    assert events(live) == []


def test_unknown_or_deleted_slugs_are_404(live: LiveServer) -> None:
    made = create(live)
    assert httpx.post(f"{live.url}/api/hooks/nope", content=RAW).status_code == 404
    assert live.client.delete("/webhooks/gh").status_code == 204
    assert httpx.post(f"{live.url}/api/hooks/{made['slug']}", content=RAW).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"template": "{% if %}"}, "template"),
        ({"signature": "github"}, "secret"),
        ({"secret": "lonely-secret"}, "secret"),
    ],
)
def test_a_bad_webhook_is_refused(live: LiveServer, body: dict[str, Any], field: str) -> None:
    r = live.client.post("/webhooks", json={"name": "bad", "template": TEMPLATE} | body)
    assert r.status_code == 422 and field in r.text
    assert live.client.get("/webhooks").json() == []


def test_a_webhook_flooded_gets_429_with_retry_after_per_webhook(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", webhook_rate_limit_per_second=0.01, webhook_rate_limit_burst=2
    )
    with live_server(settings) as live:
        flooded = create(live, signature="github", secret=SECRET)
        other = create(live, name="other")
        url = f"{live.url}/api/hooks/{flooded['slug']}"
        forged = {"x-github-event": "push", "x-hub-signature-256": "sha256=00"}
        assert httpx.post(url, content=RAW, headers=forged).status_code == 401  # counts too
        signed = {"x-github-event": "push", "x-hub-signature-256": github_sig(RAW)}
        assert httpx.post(url, content=RAW, headers=signed).status_code == 201
        r = httpx.post(url, content=RAW, headers=signed)
        assert r.status_code == 429 and "this webhook" in r.json()["detail"]
        assert int(r.headers["retry-after"]) >= 1
        assert len(events(live)) == 1
        # Other webhooks have their own budget; unknown slugs are 404, spending none.
        other_url = f"{live.url}/api/hooks/{other['slug']}"
        push = {"x-github-event": "push"}
        assert httpx.post(other_url, content=RAW, headers=push).status_code == 201
        for _ in range(3):
            assert httpx.post(f"{live.url}/api/hooks/nope", content=RAW).status_code == 404
