"""Blocks over the API: types, validation naming the field, masking, roles, deletion
refused while a deployment uses a block; the marker secret never comes back."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.blocks import INVALID, MARKER, VALID
from support.factories import deployment_body

from pushpool.blocks import BUILTIN_BLOCKS, SLUG_PATTERN
from service.blocks import models, ops
from service.models import Role
from service.services import Services

Client = Callable[[Role], TestClient]


@pytest.fixture
def as_role(services: Services, api: TestClient) -> Client:
    def make(role: Role) -> TestClient:
        key = api.post("/api/api-keys", json={"name": f"k-{role}", "role": role}).json()["key"]
        return TestClient(api.app, headers={"Authorization": f"Bearer {key}"})

    return make


def put(api: TestClient, ref: str, values: dict[str, Any]) -> Any:
    return api.put(f"/api/blocks/{ref}", json={"values": values})


def test_builtin_types_come_from_the_sdk_models(api: TestClient) -> None:
    """One definition: the server's built-in types are the SDK's pydantic models."""
    types = {t["slug"]: t for t in api.get("/api/block-types").json()}
    assert set(BUILTIN_BLOCKS) <= set(types) and len(BUILTIN_BLOCKS) == 8
    for slug, cls in BUILTIN_BLOCKS.items():
        assert types[slug]["json_schema"] == cls.model_json_schema()
        assert types[slug]["builtin"] is True
        secret = {n for n, f in cls.model_fields.items() if "SecretStr" in str(f.annotation)}
        assert set(types[slug]["secret_fields"]) == secret
    assert SLUG_PATTERN == models.SLUG_PATTERN
    assert types["secret"]["secret_fields"] == ["value"]
    assert types["json"]["secret_fields"] == []


@pytest.mark.parametrize("slug", sorted(VALID))
def test_every_builtin_type_validates_and_masks(api: TestClient, slug: str) -> None:
    created = put(api, f"{slug}/main", VALID[slug])
    assert created.status_code == 201, created.text
    shown = [created, api.get(f"/api/blocks/{slug}/main"), api.get("/api/blocks")]
    for r in shown:
        assert MARKER not in r.text
    block = shown[1].json()
    for field in block["secret_fields"]:
        if field in VALID[slug]:
            assert block["values"][field] == ops.MASK
    plain = {k: v for k, v in VALID[slug].items() if k not in block["secret_fields"]}
    assert {k: block["values"][k] for k in plain} == plain
    bad, field = INVALID[slug]
    r = put(api, f"{slug}/bad", bad)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", *field.split(".")]
    assert MARKER not in r.text
    assert api.get(f"/api/blocks/{slug}/bad").status_code == 404  # nothing half-written


def test_an_invalid_secret_is_not_echoed(api: TestClient) -> None:
    api.post(
        "/api/block-types",
        json={
            "slug": "pin",
            "json_schema": {
                "type": "object",
                "properties": {"pin": {"type": "string", "writeOnly": True, "maxLength": 4}},
            },
        },
    )
    r = put(api, "pin/x", {"pin": MARKER})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "values", "pin"]
    assert MARKER not in r.text


def test_a_secret_is_replaced_but_never_read_back(
    api: TestClient, as_role: Client, services: Services
) -> None:
    assert put(api, "smtp/ops", VALID["smtp"]).status_code == 201
    # Left out or sent masked: kept. Replaced: the new one is stored.
    kept = put(api, "smtp/ops", {"host": "smtp2.example.com", "password": ops.MASK})
    assert kept.status_code == 200 and kept.json()["version"] == 2
    assert ops.read_values(services, "smtp", "ops")["password"] == MARKER
    put(api, "smtp/ops", {"host": "smtp2.example.com", "password": "new-password-1"})
    assert ops.read_values(services, "smtp", "ops")["password"] == "new-password-1"
    for role in Role:  # not even an admin key reads it
        client = as_role(role)
        for path in ("/api/blocks/smtp/ops", "/api/blocks", "/api/blocks?type=smtp"):
            r = client.get(path)
            assert r.status_code == 200 and "new-password-1" not in r.text
    masked = put(api, "secret/new", {"value": ops.MASK})
    assert masked.status_code == 422 and masked.json()["detail"][0]["loc"][-1] == "value"


def test_roles_viewers_read_deployers_write(as_role: Client) -> None:
    viewer, deployer = as_role(Role.VIEWER), as_role(Role.DEPLOYER)
    assert put(viewer, "secret/a", {"value": MARKER}).status_code == 403
    assert put(deployer, "secret/a", {"value": MARKER}).status_code == 201
    assert viewer.get("/api/blocks/secret/a").status_code == 200
    assert viewer.delete("/api/blocks/secret/a").status_code == 403
    assert viewer.post("/api/block-types", json={"slug": "x", "json_schema": {}}).status_code == 403
    assert deployer.delete("/api/blocks/secret/a").status_code == 204


def test_user_types_from_a_schema(api: TestClient) -> None:
    schema = {
        "type": "object",
        "properties": {"host": {"type": "string"}, "token": {"type": "string", "writeOnly": True}},
        "required": ["host"],
        "additionalProperties": False,
    }
    r = api.post("/api/block-types", json={"slug": "my-api", "json_schema": schema})
    assert r.status_code == 201 and r.json()["secret_fields"] == ["token"]
    assert put(api, "my-api/prod", {"host": "h", "token": MARKER}).json()["values"] == {
        "host": "h",
        "token": ops.MASK,
    }
    # Same schema again: fine; another schema while documents exist: refused.
    assert (
        api.post("/api/block-types", json={"slug": "my-api", "json_schema": schema}).status_code
        == 200
    )
    changed = {**schema, "required": ["host", "token"]}
    assert (
        api.post("/api/block-types", json={"slug": "my-api", "json_schema": changed}).status_code
        == 409
    )
    assert api.delete("/api/block-types/my-api").status_code == 409
    assert api.delete("/api/blocks/my-api/prod").status_code == 204
    assert api.delete("/api/block-types/my-api").status_code == 204
    assert api.get("/api/block-types/my-api").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"slug": "secret", "json_schema": {"type": "object"}}, 409, None),
        ({"slug": "Bad Slug", "json_schema": {"type": "object"}}, 422, "slug"),
        ({"slug": "arr", "json_schema": {"type": "array"}}, 422, "json_schema.type"),
        ({"slug": "bad", "json_schema": {"type": "object", "minProperties": "x"}}, 422, None),
        (
            {
                "slug": "nested",
                "json_schema": {
                    "type": "object",
                    "properties": {
                        "a": {"type": "object", "properties": {"b": {"writeOnly": True}}}
                    },
                },
            },
            422,
            "json_schema.properties.a.properties.b.writeOnly",
        ),
    ],
)
def test_bad_types_are_refused(
    api: TestClient, body: dict[str, Any], status: int, field: str | None
) -> None:
    r = api.post("/api/block-types", json=body)
    assert r.status_code == status, r.text
    if field is not None:
        assert ".".join(str(p) for p in r.json()["detail"][0]["loc"][1:]) == field


def test_unknown_type_and_block_are_404(api: TestClient) -> None:
    assert put(api, "no-such-type/x", {"value": 1}).status_code == 404
    assert api.get("/api/blocks/secret/none").status_code == 404
    assert api.delete("/api/blocks/secret/none").status_code == 404


def test_a_block_a_deployment_uses_cannot_be_deleted(api: TestClient) -> None:
    put(api, "secret/db-password", {"value": MARKER})
    put(api, "database-url/main", {"url": f"postgresql://u:{MARKER}@h/db"})
    body = deployment_body(
        blocks=["secret/db-password"],
        job_variables={"env": {"DB_URL": "{{ block:database-url/main }}"}},
    )
    r = api.post("/api/deployments", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["blocks"] == ["database-url/main", "secret/db-password"]
    assert MARKER not in r.text
    for ref in ("secret/db-password", "database-url/main"):
        refused = api.delete(f"/api/blocks/{ref}")
        assert refused.status_code == 409 and "hello/default" in refused.json()["detail"]
    api.delete(f"/api/deployments/{r.json()['id']}")
    assert api.delete("/api/blocks/secret/db-password").status_code == 204


def test_a_block_deleted_after_the_deploy_checked_it_is_a_422(
    api: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deploy's existence check and its write are not one step: a delete in between
    is caught by the store, and the deploy fails naming the block, writing nothing."""
    from service import deployments

    put(api, "secret/db-password", {"value": MARKER})
    checked = deployments._blocks

    def check_then_lose_it(*args: Any) -> list[str]:
        wanted = checked(*args)
        assert api.delete("/api/blocks/secret/db-password").status_code == 204
        return wanted

    monkeypatch.setattr(deployments, "_blocks", check_then_lose_it)
    r = api.post("/api/deployments", json=deployment_body(blocks=["secret/db-password"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "blocks"]
    assert "secret/db-password" in r.json()["message"]
    assert api.get("/api/deployments").json() == []


def test_too_many_blocks_are_a_422(api: TestClient) -> None:
    refs = [f"secret/s{i}" for i in range(deployments_max() + 1)]
    r = api.post("/api/deployments", json=deployment_body(blocks=refs))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", "blocks"]


def deployments_max() -> int:
    from service.deployments import MAX_BLOCKS

    return MAX_BLOCKS


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"blocks": ["secret/missing"]}, "blocks[0]"),
        ({"blocks": ["not a ref"]}, "blocks[0]"),
        ({"job_variables": {"env": {"X": "{{ block:secret/missing }}"}}}, "job_variables"),
        ({"job_variables": {"command": ["{{ block:secret/present }}"]}}, None),
    ],
)
def test_deployments_name_only_existing_blocks(
    api: TestClient, extra: dict[str, Any], field: str | None
) -> None:
    put(api, "secret/present", {"value": MARKER})
    r = api.post("/api/deployments", json=deployment_body(**extra))
    assert r.status_code == 422, r.text
    if field is not None:
        assert re.sub(r"^body\.", "", ".".join(map(str, r.json()["detail"][0]["loc"]))).startswith(
            field.split("[")[0]
        )


def test_references_only_where_the_platform_has_a_secret_channel() -> None:
    from service.blocks.refs import check_references
    from service.errors import InvalidInput

    jv = {"env": {"A": "{{ block:secret/a }}", "B": "x-{{block:smtp/m/password}}"}}
    for pool_type in ("process", "ecs", "cloud-run", "aci"):
        assert check_references(jv, pool_type) == ["secret/a", "smtp/m"]
    for pool_type in ("some-other-type",):  # a platform whose secret channel is not wired
        with pytest.raises(InvalidInput) as exc:
            check_references(jv, pool_type)
        assert exc.value.field == "job_variables.env.A"
