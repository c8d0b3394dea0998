"""Block secrets at rest: encrypted in the raw store (SQLite rows, DynamoDB items), the
key file 0600, keys from settings or AWS Secrets Manager (moto), and key rotation that
keeps every secret readable."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import dynamo_store
from cryptography.fernet import Fernet, InvalidToken
from moto import mock_aws
from pydantic import SecretStr
from support.blocks import MARKER, VALID
from support.clock import FakeClock
from typer.testing import CliRunner

from service.blocks import ops
from service.blocks.crypto import (
    KEY_FILE,
    FileKeys,
    Keyring,
    SecretsManagerKeys,
    fernet_key,
    new_key,
)
from service.blocks.rotation import rotate
from service.errors import BlockKeyError
from service.services import Services, build_services
from service.settings import Settings


def _fill(svc: Services) -> None:
    for slug, values in VALID.items():
        ops.put_block(svc, slug, "main", ops.BlockValues(values=values))


def _all_values(svc: Services) -> dict[str, dict[str, Any]]:
    return {slug: ops.read_values(svc, slug, "main") for slug in VALID}


def test_sqlite_rows_hold_tokens_only(services: Services, tmp_path: Path) -> None:
    _fill(services)
    raw = sqlite3.connect(tmp_path / "store.db")
    rows = raw.execute("SELECT type, name, doc, secrets FROM block_documents").fetchall()
    assert len(rows) == len(VALID)
    assert MARKER not in json.dumps(rows)
    key_file = services.settings.home / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    fernet = Fernet(key_file.read_text().strip().encode())
    secret_row = next(r for r in rows if r[0] == "secret")
    assert (
        fernet.decrypt(json.loads(secret_row[3])["value"].encode()) == json.dumps(MARKER).encode()
    )
    assert _all_values(services) == VALID  # and back in clear through the keyring


def test_dynamodb_items_hold_tokens_only(settings: Settings, tmp_path: Path) -> None:
    with dynamo_store(tmp_path) as store:
        svc = build_services(settings, store, FakeClock())
        _fill(svc)
        client: Any = store.client  # type: ignore[attr-defined]
        items = client.scan(TableName="pushpool-test")["Items"]
        blocks = [i for i in items if i["pk"]["S"] == "BLOCK"]
        assert len(blocks) == len(VALID) and MARKER not in json.dumps(items)
        assert _all_values(svc) == VALID


def test_key_rotation_keeps_every_secret_readable(services: Services) -> None:
    _fill(services)
    key_file = services.settings.home / KEY_FILE
    old_key = key_file.read_text().strip()
    before = {d.ref: d.secrets for d in services.store.list_blocks(None)}
    assert rotate(services) == sum(1 for v in before.values() if v)
    new_keys = key_file.read_text().split()
    assert len(new_keys) == 1 and new_keys[0] != old_key  # the old key is gone
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    after = {d.ref: d.secrets for d in services.store.list_blocks(None)}
    old = Fernet(old_key.encode())
    for ref, tokens in after.items():
        assert tokens.keys() == before[ref].keys()
        for field, token in tokens.items():
            assert token != before[ref][field]
            with pytest.raises(InvalidToken):  # only the new key opens it now
                old.decrypt(token.encode())
    assert _all_values(services) == VALID
    # Another server process with its own keyring follows the file (re-read on change).
    other = Keyring(FileKeys(key_file))
    assert json.loads(other.decrypt(after["secret/main"]["value"])) == MARKER


def test_the_rotate_command_prints_no_secret(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli.main import app

    _fill(services)
    monkeypatch.setenv("PUSHPOOL_HOME", str(services.settings.home))
    monkeypatch.setenv("PUSHPOOL_DATABASE_URL", str(services.store.url))  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["admin", "rotate-blocks-key"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted the secrets of 7 block(s)" in result.output
    assert MARKER not in result.output
    assert _all_values(services) == VALID


def test_keys_from_settings_and_a_passphrase(tmp_path: Path, services: Services) -> None:
    first = "a passphrase of at least thirty-two characters"
    services.settings.blocks_keys = SecretStr(first)
    services.dispatcher._keyring = None
    _fill(services)
    assert not (services.settings.home / KEY_FILE).exists()  # the settings' key is used
    # The operator puts a new key first, keeping the old one; re-encrypt; drop the old.
    services.settings.blocks_keys = SecretStr(f"{new_key()},{first}")
    services.dispatcher._keyring = None
    with pytest.raises(BlockKeyError):  # settings cannot be written by the command
        rotate(services)
    assert rotate(services, add_key=False, drop_old=False) == 7
    services.settings.blocks_keys = SecretStr(
        services.settings.blocks_keys.get_secret_value().split(",")[0]
    )
    services.dispatcher._keyring = None
    assert _all_values(services) == VALID
    with pytest.raises(BlockKeyError):
        fernet_key("too short")


def test_keys_from_aws_secrets_manager(services: Services) -> None:
    with mock_aws():
        sm = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        arn = sm.create_secret(Name="pushpool/blocks", SecretString="x" * 40)["ARN"]
        services.dispatcher._keyring = Keyring(SecretsManagerKeys(arn, client=sm))
        _fill(services)
        assert rotate(services) == 7
        stored = sm.get_secret_value(SecretId=arn)["SecretString"]
        assert "," not in stored and stored != "x" * 40  # only the new key is left
        assert _all_values(services) == VALID
        missing = Keyring(SecretsManagerKeys(arn + "-gone", client=sm))
        with pytest.raises(BlockKeyError) as exc:
            missing.encrypt("v")
        assert "-gone" in str(exc.value)


def test_a_token_no_key_opens_is_a_clear_error(services: Services) -> None:
    _fill(services)
    (services.settings.home / KEY_FILE).write_text(new_key() + "\n")  # keys lost
    with pytest.raises(BlockKeyError) as exc:
        ops.read_values(services, "secret", "main")
    assert MARKER not in str(exc.value)
