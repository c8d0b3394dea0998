"""``pushpool block``: create (``--set`` / ``-f``), ls, inspect, delete, and block types
(from a schema file or a ``Block`` subclass in code), against a live server. The marker
secret is in no output, and errors are one line with a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.blocks import MARKER
from support.e2e import cli_server, invoke
from support.server import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    with cli_server(tmp_path / "home", monkeypatch) as server:
        yield server


def test_block_commands_never_print_a_secret(live: LiveServer, tmp_path: Path) -> None:
    values = tmp_path / "smtp.yaml"
    values.write_text(f"host: smtp.example.com\nport: 2525\npassword: {MARKER}\n")
    outputs = []
    for args in (
        ("block", "create", "secret/db-password", "--set", f"value={MARKER}"),
        ("block", "create", "smtp/mail", "-f", str(values)),
        # A replace: the secret left out is kept.
        ("block", "create", "smtp/mail", "--set", "host=smtp.example.com", "--set", "port=587"),
        ("block", "ls"),
        ("block", "ls", "--type", "smtp", "--output", "json"),
        ("block", "inspect", "smtp/mail"),
        ("block", "inspect", "secret/db-password", "--output", "json"),
        ("block", "type", "ls"),
        ("block", "type", "inspect", "smtp", "--output", "json"),
    ):
        code, out = invoke(*args)
        assert code == 0, (args, out)
        outputs.append(out)
    assert MARKER not in "".join(outputs)
    listed = json.loads(outputs[4])
    assert (
        listed[0]["values"]
        == {
            "host": "smtp.example.com",
            "port": 587,
            "password": "********",
            "use_tls": True,
        }
        or listed[0]["values"]["password"] == "********"
    )
    assert json.loads(outputs[6])["values"] == {"value": "********"}
    assert 'password: "********" (secret)' in outputs[5]
    assert json.loads(outputs[8])["secret_fields"] == ["password"]
    code, out = invoke("block", "delete", "secret/db-password")
    assert code == 0 and "Deleted block secret/db-password" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("block", "create", "no-slash"), "must be TYPE/NAME"),
        (("block", "create", "smtp/x", "--set", "host=h", "--set", "port=0"), "values.port"),
        (("block", "inspect", "secret/none"), "block 'secret/none' not found"),
        (("block", "ls", "--output", "yaml"), "--output must be table or json"),
        (("block", "type", "register", "schema.json"), "give --slug"),
    ],
)
def test_errors_are_one_line(
    live: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "schema.json").write_text('{"type": "object"}')
    code, out = invoke(*args)
    assert code != 0 and message in out and len(out.strip().splitlines()) == 1, out


def test_a_bad_values_file_is_not_echoed(live: LiveServer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"password: [{MARKER}\n")
    code, out = invoke("block", "create", "secret/x", "-f", str(bad))
    assert code == 1 and "not valid YAML at line" in out and MARKER not in out


def test_types_from_code_and_from_a_schema_file(live: LiveServer, tmp_path: Path) -> None:
    (tmp_path / "my_blocks.py").write_text(
        "from pydantic import SecretStr\n"
        "from pushpool.blocks import Block\n\n\n"
        "class WarehouseLogin(Block):\n"
        '    """Our data warehouse."""\n\n'
        "    account: str\n"
        "    password: SecretStr\n"
    )
    code, out = invoke("block", "type", "register", f"{tmp_path / 'my_blocks.py'}:WarehouseLogin")
    assert code == 0 and "warehouse-login" in out and "secret fields: password" in out, out
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"k": {"type": "integer"}}}))
    code, out = invoke("block", "type", "register", str(schema), "--slug", "counter")
    assert code == 0, out
    types = {t["slug"]: t for t in live.client.get("/block-types").json()}
    assert types["warehouse-login"]["secret_fields"] == ["password"]
    assert types["warehouse-login"]["description"] == "Our data warehouse."
    assert types["counter"]["secret_fields"] == []
    code, out = invoke(
        "block",
        "create",
        "warehouse-login/main",
        "--set",
        "account=acme",
        "--set",
        f"password={MARKER}",
    )
    assert code == 0 and MARKER not in out
    code, out = invoke("block", "type", "delete", "counter")
    assert code == 0, out
