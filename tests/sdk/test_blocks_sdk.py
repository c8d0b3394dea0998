"""The SDK's blocks: ``Block.load`` through the run environment's reader, errors naming
the block, secrets masked in repr, and ``import pushpool`` still light."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from support.blocks import MARKER

from pushpool.blocks import SMTP, Block, BlockError, Secret, SlackWebhook
from pushpool.context import RunEnvironment, use_environment
from pushpool.reporting import LocalReporter
from pushpool.results import LocalResultStore


def _env(tmp_path: Any, blocks: dict[str, dict[str, Any]]) -> RunEnvironment:
    def read(slug: str, name: str) -> dict[str, Any]:
        ref = f"{slug}/{name}"
        if ref not in blocks:
            raise BlockError(f"block {ref!r} is not declared")
        return blocks[ref]

    return RunEnvironment(
        reporter=LocalReporter(), result_store=LocalResultStore(tmp_path), blocks=read
    )


def test_load_reads_through_the_run_environment(tmp_path: Any) -> None:
    blocks = {
        "secret/db-password": {"value": MARKER},
        "slack-webhook/ops": {"url": f"https://hooks.slack.com/{MARKER}"},
        "smtp/mail": {"host": "smtp.example.com", "password": MARKER},
    }
    with use_environment(_env(tmp_path, blocks)):
        secret = Secret.load("db-password")
        hook = SlackWebhook.load("ops")
        mail = SMTP.load("mail")
        with pytest.raises(BlockError, match="secret/other"):
            Secret.load("other")
    assert secret.get() == MARKER
    assert hook.url.get_secret_value().endswith(MARKER)
    assert mail.port == 587 and mail.password is not None
    for block in (secret, hook, mail):
        assert MARKER not in repr(block) and MARKER not in str(block)


def test_load_outside_a_run_is_refused_naming_the_block() -> None:
    with pytest.raises(BlockError, match="secret/db-password"):
        Secret.load("db-password")


def test_slugs_of_user_blocks() -> None:
    class WarehouseLogin(Block):
        account: str

    class Named(Block):
        block_type = "my-named"

    assert WarehouseLogin.type_slug() == "warehouse-login"
    assert Named.type_slug() == "my-named"
    assert Secret.type_slug() == "secret"


def test_import_pushpool_does_not_import_blocks_or_pydantic() -> None:
    code = (
        "import sys, pushpool; print('pydantic' in sys.modules, 'pushpool.blocks' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
