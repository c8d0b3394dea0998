"""The README's examples, read from the README itself so tests keep them true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def section(title: str) -> str:
    """The text of the README's ``## title`` section (up to the next ``## ``)."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def yaml_blocks(title: str) -> list[str]:
    """Every fenced ```yaml block of the section."""
    return re.findall(r"```yaml\n(.*?)```", section(title), flags=re.S)


def readme_automation(name: str) -> str:
    """The complete automation named ``name`` among the Automations section's examples."""
    found = [b for b in yaml_blocks("Automations") if re.match(rf"name: {name}\n", b)]
    assert len(found) == 1, f"the README has {len(found)} automation(s) named {name}"
    return found[0]
