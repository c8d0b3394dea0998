"""docs/security.md lists every hostile attempt of issue 8 with the tests that pin it:
each test it names exists (a renamed or deleted test fails here, not silently)."""

from __future__ import annotations

import re

from support.factories import REPO

TABLE = REPO / "docs" / "security.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def test_every_test_the_security_table_names_exists() -> None:
    named = TEST_ID.findall(TABLE.read_text())
    assert len(named) >= 40
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not (REPO / path).is_file()
        or not re.search(rf"^(async )?def {name}\(", (REPO / path).read_text(), re.M)
    ]
    assert not missing, missing


def test_every_row_names_a_test() -> None:
    rows = [
        line
        for line in TABLE.read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| attempt", "|---"))
    ]
    assert len(rows) >= 35
    assert [row for row in rows if not TEST_ID.search(row)] == []
